//! The gateway's configuration, read once from the environment.

use std::net::SocketAddr;
use std::time::Duration;

use common::config::{self, parse, ConfigError, Env, RedisConfig, Secret};

pub mod vars {
    pub const LISTEN: &str = "GATEWAY_LISTEN";
    pub const ADMIN_TOKEN: &str = "ADMIN_TOKEN";
    pub const BACKLOG_LIMIT: &str = "BACKLOG_LIMIT";
    pub const DRAIN_TIMEOUT_MS: &str = "DRAIN_TIMEOUT_MS";
}

pub mod defaults {
    pub const LISTEN: &str = "0.0.0.0:8080";
    /// Entries in the stream (queued + in flight) beyond which `POST /payments` sheds load.
    pub const BACKLOG_LIMIT: u64 = 500_000;
    pub const DRAIN_TIMEOUT_MS: u64 = 5_000;
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    pub redis: RedisConfig,
    /// When set, admin endpoints require it in `X-Admin-Token`.
    pub admin_token: Option<Secret>,
    /// 0 disables load shedding.
    pub backlog_limit: u64,
    /// How long open connections get to finish after shutdown starts.
    pub drain_timeout: Duration,
}

impl GatewayConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        Ok(Self {
            listen: parse(
                env,
                vars::LISTEN,
                defaults::LISTEN
                    .parse()
                    .map_err(|e| ConfigError::new(vars::LISTEN, defaults::LISTEN, e))?,
            )?,
            redis: RedisConfig::from_env(env)?,
            admin_token: config::raw(env, vars::ADMIN_TOKEN).map(Secret::new),
            backlog_limit: parse(env, vars::BACKLOG_LIMIT, defaults::BACKLOG_LIMIT)?,
            drain_timeout: config::millis(
                env,
                vars::DRAIN_TIMEOUT_MS,
                defaults::DRAIN_TIMEOUT_MS,
                0..=600_000,
            )?,
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
        let cfg = GatewayConfig::from_env(&HashMap::<&str, &str>::new()).unwrap();
        assert_eq!(cfg.listen.port(), 8080);
        assert!(cfg.admin_token.is_none());
        let bad = HashMap::from([(vars::LISTEN, "nope")]);
        assert_eq!(GatewayConfig::from_env(&bad).unwrap_err().var, vars::LISTEN);
        let bad = HashMap::from([(vars::BACKLOG_LIMIT, "-1")]);
        assert_eq!(
            GatewayConfig::from_env(&bad).unwrap_err().var,
            vars::BACKLOG_LIMIT
        );
    }
}
