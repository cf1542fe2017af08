//! The gateway's configuration, read once from the environment.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use common::config::{self, parse, ConfigError, Env, RedisConfig, Secret};

pub mod vars {
    pub const LISTEN: &str = "GATEWAY_LISTEN";
    pub const METRICS_ADDR: &str = "GATEWAY_METRICS_ADDR";
    pub const THREADS: &str = "GATEWAY_THREADS";
    pub const ADMIN_TOKEN: &str = "ADMIN_TOKEN";
    pub const ALLOW_UNAUTHENTICATED_ADMIN: &str = "PAYSTREAM_ALLOW_UNAUTHENTICATED_ADMIN";
    pub const BACKLOG_LIMIT: &str = "BACKLOG_LIMIT";
    pub const MEMORY_HIGH_WATER: &str = "MEMORY_HIGH_WATER";
    pub const DRAIN_TIMEOUT_MS: &str = "DRAIN_TIMEOUT_MS";
    pub const FIRST_ATTEMPT_MS: &str = "FIRST_ATTEMPT_MS";
    pub const RATE_LIMIT_PER_CLIENT: &str = "RATE_LIMIT_PER_CLIENT";
    pub const RATE_LIMIT_GLOBAL: &str = "RATE_LIMIT_GLOBAL";
    pub const RATE_LIMIT_BURST: &str = "RATE_LIMIT_BURST";
}

pub mod defaults {
    pub const LISTEN: &str = "0.0.0.0:8080";
    /// Prometheus scrapes each gateway here; never on the public listener.
    pub const METRICS_ADDR: std::net::SocketAddr =
        std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 9110);
    pub const THREADS: usize = 1;
    /// Entries in the stream (queued + in flight) beyond which `POST /payments` sheds load.
    pub const BACKLOG_LIMIT: u64 = 500_000;
    /// Percent of Redis' `maxmemory` from which `POST /payments` sheds load: the rest is
    /// headroom for finishing what was accepted (records, dead letters, retention).
    pub const MEMORY_HIGH_WATER: u8 = 90;
    /// How often each gateway reads Redis' memory.
    pub const MEMORY_POLL: std::time::Duration = std::time::Duration::from_millis(250);
    pub const DRAIN_TIMEOUT_MS: u64 = 5_000;
    /// The bound of the first attempt each accept pins to default: the worker's defaults
    /// (send window 5 s = a third of the claim idle time, processor timeout 6 s, late
    /// delivery 30 s, grace 6 s) add up to this; a worker whose own sum is larger begins the
    /// attempt instead of sending it at once.
    pub const FIRST_ATTEMPT_MS: u64 = 47_000;
    /// Rate limits are off unless configured: the reference load test must not meet them.
    pub const RATE_LIMIT_PER_CLIENT: u32 = 0;
    pub const RATE_LIMIT_GLOBAL: u32 = 0;
    /// 0 = each limiter's burst is one second's worth of its rate.
    pub const RATE_LIMIT_BURST: u32 = 0;
    /// Highest accepted rate or burst: beyond it governor's per-cell interval loses precision,
    /// and no single gateway serves that much anyway.
    pub const RATE_LIMIT_MAX: u32 = 1_000_000;
}

/// `host:port`, or `unix:/path/to.sock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(std::path::PathBuf),
}

impl std::str::FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.strip_prefix("unix:") {
            Some("") => Err("empty unix socket path".into()),
            Some(path) => Ok(ListenAddr::Unix(path.into())),
            None => s
                .parse()
                .map(ListenAddr::Tcp)
                .map_err(|e| format!("expected host:port or unix:/path ({e})")),
        }
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: ListenAddr,
    /// Where `/metrics` is served (its own listener, off the public port); `None` = off.
    pub metrics_addr: Option<SocketAddr>,
    /// Runtime worker threads; 1 runs a single-threaded runtime (no cross-thread
    /// wake-ups: the lowest latency on a small box with several gateways).
    pub threads: usize,
    pub redis: RedisConfig,
    /// Who may call the admin endpoints (purge, re-drive).
    pub admin: AdminAccess,
    /// 0 disables load shedding.
    pub backlog_limit: u64,
    /// Percent of Redis' `maxmemory` from which accepts are shed; 0 = off (and off while
    /// Redis has no `maxmemory`).
    pub memory_high_water: u8,
    /// How long open connections get to finish after shutdown starts.
    pub drain_timeout: Duration,
    /// The bound of the first attempt each accept pins (`accept.lua`); zero pins none.
    pub first_attempt: Duration,
    /// `POST /payments` rate limits (off by default).
    pub rate_limit: RateLimitConfig,
}

/// Access to the admin endpoints. A deployment needs a token; running them open is an
/// explicit choice (the contest profile, whose load test purges without one), never a default.
#[derive(Debug, Clone)]
pub enum AdminAccess {
    /// Requests must carry this token in `X-Admin-Token`.
    Token(Secret),
    /// `PAYSTREAM_ALLOW_UNAUTHENTICATED_ADMIN=true` and no token: anyone who reaches the port.
    Open,
}

impl AdminAccess {
    /// A token when one is set (it wins over the opt-out); otherwise open only when the opt-out
    /// is given; otherwise the start fails naming `ADMIN_TOKEN`.
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let open = config::flag(env, vars::ALLOW_UNAUTHENTICATED_ADMIN, false)?;
        match config::raw(env, vars::ADMIN_TOKEN) {
            Some(token) => Ok(AdminAccess::Token(Secret::new(token))),
            None if open => Ok(AdminAccess::Open),
            None => Err(ConfigError::new(
                vars::ADMIN_TOKEN,
                "",
                format!(
                    "required: the admin endpoints (purge, re-drive) need a token; \
                     {}=true runs them without one (contest profile only)",
                    vars::ALLOW_UNAUTHENTICATED_ADMIN
                ),
            )),
        }
    }
}

/// Requests per second allowed on `POST /payments`; `None` = that limit is off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Per client (API key, forwarded address or peer address; see `limits`).
    pub per_client: Option<NonZeroU32>,
    /// All clients of this gateway instance together.
    pub global: Option<NonZeroU32>,
    /// Requests a bucket admits at once; `None` = the limiter's own rate.
    pub burst: Option<NonZeroU32>,
}

impl RateLimitConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let read = |var, default| {
            config::parse_in(env, var, default, 0..=defaults::RATE_LIMIT_MAX).map(NonZeroU32::new)
        };
        Ok(Self {
            per_client: read(vars::RATE_LIMIT_PER_CLIENT, defaults::RATE_LIMIT_PER_CLIENT)?,
            global: read(vars::RATE_LIMIT_GLOBAL, defaults::RATE_LIMIT_GLOBAL)?,
            burst: read(vars::RATE_LIMIT_BURST, defaults::RATE_LIMIT_BURST)?,
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.per_client.is_some() || self.global.is_some()
    }
}

impl GatewayConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        Ok(Self {
            listen: parse(
                env,
                vars::LISTEN,
                defaults::LISTEN
                    .parse()
                    .map_err(|e: String| ConfigError::new(vars::LISTEN, defaults::LISTEN, e))?,
            )?,
            metrics_addr: config::listen_addr_or_off(
                env,
                vars::METRICS_ADDR,
                defaults::METRICS_ADDR,
            )?,
            threads: config::parse_in(env, vars::THREADS, defaults::THREADS, 1..=256)?,
            redis: RedisConfig::from_env(env)?,
            admin: AdminAccess::from_env(env)?,
            backlog_limit: parse(env, vars::BACKLOG_LIMIT, defaults::BACKLOG_LIMIT)?,
            memory_high_water: config::parse_in(
                env,
                vars::MEMORY_HIGH_WATER,
                defaults::MEMORY_HIGH_WATER,
                0..=100,
            )?,
            drain_timeout: config::millis(
                env,
                vars::DRAIN_TIMEOUT_MS,
                defaults::DRAIN_TIMEOUT_MS,
                0..=600_000,
            )?,
            first_attempt: config::millis(
                env,
                vars::FIRST_ATTEMPT_MS,
                defaults::FIRST_ATTEMPT_MS,
                0..=3_600_000,
            )?,
            rate_limit: RateLimitConfig::from_env(env)?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_and_errors() {
        // A token is required (see `admin_access`): give one so each case tests its variable.
        let from_env = |mut env: HashMap<&'static str, &'static str>| {
            env.entry(vars::ADMIN_TOKEN).or_insert("t");
            GatewayConfig::from_env(&env)
        };
        let cfg = from_env(HashMap::new()).unwrap();
        assert_eq!(cfg.listen, ListenAddr::Tcp("0.0.0.0:8080".parse().unwrap()));
        let unix = HashMap::from([(vars::LISTEN, "unix:/tmp/gw.sock")]);
        assert_eq!(
            from_env(unix).unwrap().listen,
            ListenAddr::Unix("/tmp/gw.sock".into())
        );
        let bad = HashMap::from([(vars::LISTEN, "unix:")]);
        assert_eq!(from_env(bad).unwrap_err().var, vars::LISTEN);
        assert_eq!(cfg.metrics_addr, Some(defaults::METRICS_ADDR));
        let off = HashMap::from([(vars::METRICS_ADDR, "off")]);
        assert_eq!(from_env(off).unwrap().metrics_addr, None);
        let local = HashMap::from([(vars::METRICS_ADDR, "127.0.0.1:9111")]);
        assert_eq!(
            from_env(local).unwrap().metrics_addr,
            Some("127.0.0.1:9111".parse().unwrap())
        );
        let bad = HashMap::from([(vars::METRICS_ADDR, "9111")]);
        assert_eq!(from_env(bad).unwrap_err().var, vars::METRICS_ADDR);
        let bad = HashMap::from([(vars::THREADS, "0")]);
        assert_eq!(from_env(bad).unwrap_err().var, vars::THREADS);
        assert!(!cfg.rate_limit.is_enabled());
        let bad = HashMap::from([(vars::LISTEN, "nope")]);
        assert_eq!(from_env(bad).unwrap_err().var, vars::LISTEN);
        assert_eq!(cfg.memory_high_water, 90);
        let bad = HashMap::from([(vars::MEMORY_HIGH_WATER, "101")]);
        assert_eq!(from_env(bad).unwrap_err().var, vars::MEMORY_HIGH_WATER);
        let bad = HashMap::from([(vars::BACKLOG_LIMIT, "-1")]);
        assert_eq!(from_env(bad).unwrap_err().var, vars::BACKLOG_LIMIT);
        assert_eq!(cfg.first_attempt, Duration::from_millis(47_000));
        let bad = HashMap::from([(vars::FIRST_ATTEMPT_MS, "soon")]);
        assert_eq!(from_env(bad).unwrap_err().var, vars::FIRST_ATTEMPT_MS);
        let bad = HashMap::from([(vars::ALLOW_UNAUTHENTICATED_ADMIN, "perhaps")]);
        assert_eq!(
            from_env(bad).unwrap_err().var,
            vars::ALLOW_UNAUTHENTICATED_ADMIN
        );
    }

    #[test]
    fn rate_limits_parse_with_zero_meaning_off() {
        let env = HashMap::from([
            (vars::RATE_LIMIT_PER_CLIENT, "20"),
            (vars::RATE_LIMIT_GLOBAL, "0"),
            (vars::RATE_LIMIT_BURST, "40"),
        ]);
        let cfg = RateLimitConfig::from_env(&env).unwrap();
        assert_eq!(cfg.per_client, NonZeroU32::new(20));
        assert_eq!(cfg.global, None);
        assert_eq!(cfg.burst, NonZeroU32::new(40));
        assert!(cfg.is_enabled());

        let only_burst = HashMap::from([(vars::RATE_LIMIT_BURST, "5")]);
        assert!(!RateLimitConfig::from_env(&only_burst).unwrap().is_enabled());

        for (var, value) in [
            (vars::RATE_LIMIT_PER_CLIENT, "-1"),
            (vars::RATE_LIMIT_GLOBAL, "lots"),
            (vars::RATE_LIMIT_BURST, "1000001"),
        ] {
            let bad = HashMap::from([(var, value)]);
            assert_eq!(RateLimitConfig::from_env(&bad).unwrap_err().var, var);
        }
    }

    #[test]
    fn admin_access_needs_a_token_or_the_explicit_opt_out() {
        let none = GatewayConfig::from_env(&HashMap::<&str, &str>::new()).unwrap_err();
        assert_eq!(none.var, vars::ADMIN_TOKEN);
        assert!(none.reason.contains(vars::ALLOW_UNAUTHENTICATED_ADMIN));
        let refused = HashMap::from([(vars::ALLOW_UNAUTHENTICATED_ADMIN, "false")]);
        assert_eq!(
            GatewayConfig::from_env(&refused).unwrap_err().var,
            vars::ADMIN_TOKEN
        );
        let open = HashMap::from([(vars::ALLOW_UNAUTHENTICATED_ADMIN, "true")]);
        assert!(matches!(
            GatewayConfig::from_env(&open).unwrap().admin,
            AdminAccess::Open
        ));
        // A token wins over the opt-out.
        let env = HashMap::from([
            (vars::ALLOW_UNAUTHENTICATED_ADMIN, "true"),
            (vars::ADMIN_TOKEN, "t"),
        ]);
        match GatewayConfig::from_env(&env).unwrap().admin {
            AdminAccess::Token(token) => assert!(token.matches(b"t")),
            AdminAccess::Open => panic!("the token was ignored"),
        }
        let bad = HashMap::from([(vars::ALLOW_UNAUTHENTICATED_ADMIN, "perhaps")]);
        assert_eq!(
            GatewayConfig::from_env(&bad).unwrap_err().var,
            vars::ALLOW_UNAUTHENTICATED_ADMIN
        );
    }
}
