//! The worker's configuration, read once from the environment.

use std::net::SocketAddr;
use std::time::Duration;

use common::config::{self, http_url, millis, parse, parse_in, ConfigError, Env, RedisConfig};
use common::store::Lingers;

use crate::route::breaker::BreakerConfig;
use crate::route::health::HealthConfig;
use crate::route::policy::Policy;

pub mod vars {
    pub const PROCESSOR_DEFAULT_URL: &str = "PROCESSOR_DEFAULT_URL";
    pub const PROCESSOR_FALLBACK_URL: &str = "PROCESSOR_FALLBACK_URL";
    pub const CONCURRENCY: &str = "WORKER_CONCURRENCY";
    pub const BATCH_SIZE: &str = "WORKER_BATCH_SIZE";
    pub const METRICS_ADDR: &str = "WORKER_METRICS_ADDR";
    pub const CONSUMER_NAME: &str = "WORKER_CONSUMER_NAME";
    pub const CLAIM_IDLE_MS: &str = "WORKER_CLAIM_IDLE_MS";
    pub const PROCESSOR_TIMEOUT_MS: &str = "PROCESSOR_TIMEOUT_MS";
    pub const AMBIGUITY_GRACE_MS: &str = "AMBIGUITY_GRACE_MS";
    pub const AMBIGUITY_POLL_MS: &str = "AMBIGUITY_POLL_MS";
    pub const LATE_DELIVERY_MS: &str = "LATE_DELIVERY_MS";
    pub const RETRY_BASE_MS: &str = "RETRY_BASE_MS";
    pub const RETRY_MAX_MS: &str = "RETRY_MAX_MS";
    pub const MAX_ATTEMPTS: &str = "MAX_ATTEMPTS";
    pub const ROUTING_POLICY: &str = "ROUTING_POLICY";
    pub const MAX_HOLD_MS: &str = "MAX_HOLD_MS";
    pub const DRAIN_TIMEOUT_MS: &str = "DRAIN_TIMEOUT_MS";
    pub const HEALTH_POLL_MS: &str = "HEALTH_POLL_MS";
    pub const HEALTH_TIMEOUT_MS: &str = "HEALTH_TIMEOUT_MS";
    pub const HEALTH_REFRESH_MS: &str = "HEALTH_REFRESH_MS";
    pub const BREAKER_WINDOW_MS: &str = "BREAKER_WINDOW_MS";
    pub const BREAKER_MIN_CALLS: &str = "BREAKER_MIN_CALLS";
    pub const BREAKER_FAILURE_RATE: &str = "BREAKER_FAILURE_RATE";
    pub const BREAKER_SLOW_CALL_MS: &str = "BREAKER_SLOW_CALL_MS";
    pub const BREAKER_SLOW_RATE: &str = "BREAKER_SLOW_RATE";
    pub const BREAKER_OPEN_MS: &str = "BREAKER_OPEN_MS";
    pub const BREAKER_PROBES: &str = "BREAKER_PROBES";
    pub const THREADS: &str = "WORKER_THREADS";
    pub const BEGIN_LINGER_MS: &str = "BEGIN_LINGER_MS";
    pub const RECORD_LINGER_MS: &str = "RECORD_LINGER_MS";
    pub const SCRIPT_BATCH_MAX: &str = "SCRIPT_BATCH_MAX";
}

pub mod defaults {
    pub const PROCESSOR_DEFAULT_URL: &str = "http://127.0.0.1:8001";
    pub const PROCESSOR_FALLBACK_URL: &str = "http://127.0.0.1:8002";
    pub const CONCURRENCY: usize = 512;
    pub const BATCH_SIZE: usize = 100;
    pub const METRICS_ADDR: &str = "0.0.0.0:9100";
    pub const CLAIM_IDLE_MS: u64 = 15_000;
    pub const PROCESSOR_TIMEOUT_MS: u64 = 6_000;
    pub const AMBIGUITY_GRACE_MS: u64 = 6_000;
    pub const AMBIGUITY_POLL_MS: u64 = 200;
    /// A request the client gave up on can still reach the processor this much later: a
    /// proxy that buffers it, the kernel retransmitting an abandoned request, an accept
    /// queue read late. 30 s covers TCP's retransmissions of a request (and proxies that
    /// hold one) for the common defaults; what arrives later than this is outside the
    /// promise (docs/protocol.md §9).
    pub const LATE_DELIVERY_MS: u64 = 30_000;
    pub const RETRY_BASE_MS: u64 = 25;
    pub const RETRY_MAX_MS: u64 = 500;
    pub const MAX_ATTEMPTS: u32 = 2_000;
    pub const MAX_HOLD_MS: u64 = 30_000;
    /// Lingers of the begin and record batches: at the reference test's few hundred
    /// payments/s they put several payments in one script call (and one fsync) where each
    /// had its own; 5 / 10 ms measured ~12 % less CPU per payment for the backend than
    /// 0 / 1 ms; 10 / 50 ms fewer script calls again and the lowest CPU in both rounds of
    /// its comparison, by a margin the rounds' spread leaves unsettled (docs/benchmarks.md,
    /// "Lingers").
    pub const BEGIN_LINGER_MS: u64 = 10;
    pub const RECORD_LINGER_MS: u64 = 50;
    /// Most payments per `begin` / `record` call, and entries per heartbeat `touch` call.
    /// Redis runs nothing else during a script, and batches of 100+ held it 2.4–6 ms while
    /// a backlog was released, every accept waiting behind them; 16 against 128 cut the
    /// reference run's p99 in that second to about a third and its p99 by a quarter, with
    /// no CPU difference the runs resolve and possibly ~9 % less drain capacity (docs/benchmarks.md,
    /// *Smaller script batches*).
    pub const SCRIPT_BATCH_MAX: usize = 16;
    pub const DRAIN_TIMEOUT_MS: u64 = 10_000;
    /// Above the processors' 5 s window, so two polls never share a window.
    pub const HEALTH_POLL_MS: u64 = 5_100;
    pub const HEALTH_TIMEOUT_MS: u64 = 6_000;
    pub const HEALTH_REFRESH_MS: u64 = 250;
    pub const THREADS: usize = 1;
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub redis: RedisConfig,
    /// Base URLs of the processors, indexed by `Processor::index()`.
    pub processor_urls: [String; 2],
    /// Payments handled at once by this process (processor calls in flight + backoffs).
    pub concurrency: usize,
    /// Most entries read by one XREADGROUP / XAUTOCLAIM.
    pub batch_size: usize,
    /// Where `/metrics` is served; `None` disables it (tests).
    pub metrics_addr: Option<SocketAddr>,
    /// This process's consumer name in the group; unique per process.
    pub consumer: String,
    /// An entry idle this long on another consumer is taken over. Live consumers reset
    /// their entries' idle time every third of this, so only dead consumers lose entries.
    pub claim_idle: Duration,
    /// Client timeout of one payment call.
    pub processor_timeout: Duration,
    /// After an attempt with no known outcome, how long to wait before asking the
    /// processor whether it stored the payment (its delay runs before the store).
    pub ambiguity_grace: Duration,
    /// How often the processor is asked about an unanswered call while waiting for the
    /// grace: a payment it stored is recorded at once.
    pub ambiguity_poll: Duration,
    /// How long after its client gave up a request may still arrive at the processor. A
    /// 404 lets a payment leave its processor only once this has passed as well.
    pub late_delivery: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Definite failures after which a payment is dead-lettered.
    pub max_attempts: u32,
    pub policy: Policy,
    /// How long in-flight payments get to finish after shutdown starts.
    pub drain_timeout: Duration,
    pub health: HealthConfig,
    pub breaker: BreakerConfig,
    /// Runtime worker threads of the binary; 1 = single-threaded runtime.
    pub threads: usize,
    /// How long `begin` and `record` batches gather after their first payment.
    pub lingers: Lingers,
    /// Most payments in one `begin` / `record` script call, entries in one `touch` call.
    pub script_batch_max: usize,
}

impl WorkerConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let metrics_addr = match config::raw(env, vars::METRICS_ADDR).as_deref() {
            Some("off") | Some("none") => None,
            _ => Some(parse(
                env,
                vars::METRICS_ADDR,
                defaults::METRICS_ADDR
                    .parse()
                    .map_err(|e| ConfigError::new(vars::METRICS_ADDR, defaults::METRICS_ADDR, e))?,
            )?),
        };
        let consumer = config::raw(env, vars::CONSUMER_NAME).unwrap_or_else(default_consumer_name);
        let max_hold = millis(
            env,
            vars::MAX_HOLD_MS,
            defaults::MAX_HOLD_MS,
            0..=86_400_000,
        )?;
        let policy = Policy::parse(
            config::raw(env, vars::ROUTING_POLICY)
                .as_deref()
                .unwrap_or("fee-aware"),
            max_hold,
        )
        .map_err(|e| {
            ConfigError::new(
                vars::ROUTING_POLICY,
                config::raw(env, vars::ROUTING_POLICY).unwrap_or_default(),
                e,
            )
        })?;
        let retry_base = millis(
            env,
            vars::RETRY_BASE_MS,
            defaults::RETRY_BASE_MS,
            1..=60_000,
        )?;
        let retry_max = millis(env, vars::RETRY_MAX_MS, defaults::RETRY_MAX_MS, 1..=600_000)?;
        if retry_max < retry_base {
            return Err(ConfigError::new(
                vars::RETRY_MAX_MS,
                retry_max.as_millis().to_string(),
                format!(
                    "must be at least {} ({})",
                    vars::RETRY_BASE_MS,
                    retry_base.as_millis()
                ),
            ));
        }
        let breaker_defaults = BreakerConfig::default();
        let breaker = BreakerConfig {
            window: millis(
                env,
                vars::BREAKER_WINDOW_MS,
                breaker_defaults.window.as_millis() as u64,
                10..=600_000,
            )?,
            min_calls: parse_in(
                env,
                vars::BREAKER_MIN_CALLS,
                breaker_defaults.min_calls,
                1..=100_000,
            )?,
            failure_rate: parse_in(
                env,
                vars::BREAKER_FAILURE_RATE,
                breaker_defaults.failure_rate,
                0.01..=1.0,
            )?,
            slow_call: millis(
                env,
                vars::BREAKER_SLOW_CALL_MS,
                breaker_defaults.slow_call.as_millis() as u64,
                1..=600_000,
            )?,
            slow_rate: parse_in(
                env,
                vars::BREAKER_SLOW_RATE,
                breaker_defaults.slow_rate,
                0.01..=1.0,
            )?,
            open_for: millis(
                env,
                vars::BREAKER_OPEN_MS,
                breaker_defaults.open_for.as_millis() as u64,
                1..=600_000,
            )?,
            probes: parse_in(
                env,
                vars::BREAKER_PROBES,
                breaker_defaults.probes,
                1..=10_000,
            )?,
        };
        let health = HealthConfig {
            interval: millis(
                env,
                vars::HEALTH_POLL_MS,
                defaults::HEALTH_POLL_MS,
                10..=600_000,
            )?,
            timeout: millis(
                env,
                vars::HEALTH_TIMEOUT_MS,
                defaults::HEALTH_TIMEOUT_MS,
                10..=600_000,
            )?,
            refresh: millis(
                env,
                vars::HEALTH_REFRESH_MS,
                defaults::HEALTH_REFRESH_MS,
                5..=60_000,
            )?,
        };
        let redis = RedisConfig::from_env(env)?;
        let lingers = Lingers {
            begin: millis(
                env,
                vars::BEGIN_LINGER_MS,
                defaults::BEGIN_LINGER_MS,
                0..=100,
            )?,
            record: millis(
                env,
                vars::RECORD_LINGER_MS,
                defaults::RECORD_LINGER_MS,
                0..=100,
            )?,
        };
        let config = Self {
            lingers,
            script_batch_max: parse_in(
                env,
                vars::SCRIPT_BATCH_MAX,
                defaults::SCRIPT_BATCH_MAX,
                1..=common::store::MAX_BATCH,
            )?,
            threads: parse_in(env, vars::THREADS, defaults::THREADS, 1..=256)?,
            health,
            breaker,
            redis,
            processor_urls: [
                http_url(
                    env,
                    vars::PROCESSOR_DEFAULT_URL,
                    defaults::PROCESSOR_DEFAULT_URL,
                )?,
                http_url(
                    env,
                    vars::PROCESSOR_FALLBACK_URL,
                    defaults::PROCESSOR_FALLBACK_URL,
                )?,
            ],
            concurrency: parse_in(env, vars::CONCURRENCY, defaults::CONCURRENCY, 1..=100_000)?,
            batch_size: parse_in(env, vars::BATCH_SIZE, defaults::BATCH_SIZE, 1..=10_000)?,
            metrics_addr,
            consumer,
            claim_idle: millis(
                env,
                vars::CLAIM_IDLE_MS,
                defaults::CLAIM_IDLE_MS,
                100..=3_600_000,
            )?,
            processor_timeout: millis(
                env,
                vars::PROCESSOR_TIMEOUT_MS,
                defaults::PROCESSOR_TIMEOUT_MS,
                10..=600_000,
            )?,
            ambiguity_grace: millis(
                env,
                vars::AMBIGUITY_GRACE_MS,
                defaults::AMBIGUITY_GRACE_MS,
                0..=600_000,
            )?,
            ambiguity_poll: millis(
                env,
                vars::AMBIGUITY_POLL_MS,
                defaults::AMBIGUITY_POLL_MS,
                5..=600_000,
            )?,
            late_delivery: millis(
                env,
                vars::LATE_DELIVERY_MS,
                defaults::LATE_DELIVERY_MS,
                0..=600_000,
            )?,
            retry_base,
            retry_max,
            max_attempts: parse_in(
                env,
                vars::MAX_ATTEMPTS,
                defaults::MAX_ATTEMPTS,
                1..=1_000_000,
            )?,
            policy,
            drain_timeout: millis(
                env,
                vars::DRAIN_TIMEOUT_MS,
                defaults::DRAIN_TIMEOUT_MS,
                0..=600_000,
            )?,
        };
        // `begin` is asked after the send window starts (`pipeline`): a batch that lingers
        // the whole window would miss it every time and confirm ownership again for ever.
        if config.lingers.begin >= config.send_window() {
            return Err(ConfigError::new(
                vars::BEGIN_LINGER_MS,
                format!("{}", config.lingers.begin.as_millis()),
                format!(
                    "must be shorter than the send window, a third of {} ({} ms)",
                    vars::CLAIM_IDLE_MS,
                    config.send_window().as_millis()
                ),
            ));
        }
        let retention = config.redis.retention.payment_retention;
        let least = config.min_payment_retention();
        if retention < least {
            return Err(ConfigError::new(
                common::retention::vars::PAYMENT_RETENTION,
                format!("{}ms", retention.as_millis()),
                format!(
                    "must be at least {}s with this configuration: the reused-id margin ({}s) \
                     + {RETENTION_SAFETY_FACTOR} x ({} + {} + {})",
                    least.as_millis().div_ceil(1000),
                    REUSE_MARGIN.as_secs(),
                    vars::CLAIM_IDLE_MS,
                    vars::PROCESSOR_TIMEOUT_MS,
                    vars::AMBIGUITY_GRACE_MS,
                ),
            ));
        }
        Ok(config)
    }
}

impl WorkerConfig {
    /// How long after `begin` confirmed ownership a call may still start. A third of the
    /// claim idle time: `begin` resets the entry's idle time, so no other consumer can
    /// claim the entry within the window, and the heartbeat (same period) keeps it so.
    pub fn send_window(&self) -> Duration {
        self.claim_idle / 3
    }

    /// The longest a payment's attempt can stay open after its ownership was confirmed, as
    /// this configuration bounds it: the entry stays with a consumer that stopped for up to
    /// the claim idle time (the send window is a third of it), the call lasts up to the client
    /// timeout, and the processor may store it up to the grace after that.
    pub fn in_flight_bound(&self) -> Duration {
        self.claim_idle + self.processor_timeout + self.ambiguity_grace
    }

    /// The least `PAYMENT_RETENTION` this configuration allows (docs/operations.md, "Retention and the
    /// idempotency window"). Two things need a terminal status hash to outlive the payment's
    /// last traces:
    /// - the reused-id check ([`REUSE_MARGIN`]): an id accepted again after its status
    ///   expired is told from the old payment by a processor's stored `requestedAt` older
    ///   than the earliest this payment sent. The old one was sent at least the retention
    ///   earlier, so the check holds while the old payment's worker was not ahead of the new
    ///   one's by more than that: the margin is the worker-to-worker clock difference it
    ///   tolerates;
    /// - a late answer: a call still open when another consumer recorded the payment ends
    ///   within the in-flight bound, and a `200` is recorded without the reused-id check. Its
    ///   record must still find the terminal status (a duplicate: nothing counted), which
    ///   holds while the id cannot have been accepted again. A worker frozen for longer
    ///   with an answer in hand is not covered by any retention (docs/protocol.md §9).
    ///
    /// Hence the margin plus [`RETENTION_SAFETY_FACTOR`] times the in-flight bound: that term
    /// is the tolerance for a worker clock running ahead, and covers a grace raised at run
    /// time by a processor's reported delay (`2 x delay + 1 s`) up to about
    /// `RETENTION_SAFETY_FACTOR / 2` times the configured bound. With the defaults (claim idle
    /// 15 s, timeout 6 s, grace 6 s): 10 min + 10 x 27 s = 14 min 30 s.
    pub fn min_payment_retention(&self) -> Duration {
        REUSE_MARGIN + self.in_flight_bound() * RETENTION_SAFETY_FACTOR
    }
}

/// How far the worker that sent an earlier payment's `requestedAt` may be ahead of the workers
/// of a later payment with the same id (accepted again after the first one's status expired)
/// before the later one's lookup takes the earlier payment for its own
/// (`pipeline::record_found`). Below the least `PAYMENT_RETENTION` by the safety term of
/// [`WorkerConfig::min_payment_retention`]; far above any sane clock difference.
pub const REUSE_MARGIN: Duration = Duration::from_secs(10 * 60);

/// How many in-flight bounds a terminal status outlives beyond [`REUSE_MARGIN`].
pub const RETENTION_SAFETY_FACTOR: u32 = 10;

/// `<host>-<pid>-<random>`: unique per process, readable in `XINFO CONSUMERS`.
fn default_consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "worker".into());
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_gateways_first_attempt_bound_is_what_a_worker_with_defaults_needs() {
        // A smaller bound would make every first attempt begin again; a larger one only
        // delays proving a crashed worker's first attempt absent.
        let cfg = WorkerConfig::from_env(&HashMap::<&str, &str>::new()).unwrap();
        let needs =
            cfg.send_window() + cfg.processor_timeout + cfg.late_delivery + cfg.ambiguity_grace;
        assert_eq!(
            needs,
            Duration::from_millis(gateway::config::defaults::FIRST_ATTEMPT_MS)
        );
    }

    #[test]
    fn defaults_are_valid_and_errors_name_the_variable() {
        let cfg = WorkerConfig::from_env(&HashMap::<&str, &str>::new()).unwrap();
        assert_eq!(cfg.processor_urls[0], "http://127.0.0.1:8001");
        assert_ne!(
            cfg.consumer,
            WorkerConfig::from_env(&HashMap::<&str, &str>::new())
                .unwrap()
                .consumer
        );
        for (var, value) in [
            (vars::PROCESSOR_DEFAULT_URL, "localhost:8001"),
            (vars::CONCURRENCY, "0"),
            (vars::BATCH_SIZE, "many"),
            (vars::CLAIM_IDLE_MS, "5"),
            (vars::ROUTING_POLICY, "random"),
            (vars::METRICS_ADDR, "x"),
            (common::retention::vars::PAYMENT_RETENTION, "10m"),
            (vars::BEGIN_LINGER_MS, "101"),
            (vars::RECORD_LINGER_MS, "-1"),
            (vars::SCRIPT_BATCH_MAX, "0"),
            (vars::SCRIPT_BATCH_MAX, "129"),
        ] {
            let env = HashMap::from([(var, value)]);
            assert_eq!(WorkerConfig::from_env(&env).unwrap_err().var, var, "{var}");
        }
        assert_eq!(
            (cfg.lingers.begin, cfg.lingers.record),
            (Duration::from_millis(10), Duration::from_millis(50))
        );
        assert_eq!(cfg.script_batch_max, defaults::SCRIPT_BATCH_MAX);
        let env = HashMap::from([(vars::BEGIN_LINGER_MS, "0"), (vars::RECORD_LINGER_MS, "0")]);
        let lingers = WorkerConfig::from_env(&env).unwrap().lingers;
        assert_eq!(
            (lingers.begin, lingers.record),
            (Duration::ZERO, Duration::ZERO)
        );
        let env = HashMap::from([(vars::RETRY_BASE_MS, "100"), (vars::RETRY_MAX_MS, "50")]);
        assert_eq!(
            WorkerConfig::from_env(&env).unwrap_err().var,
            vars::RETRY_MAX_MS
        );
    }

    #[test]
    fn the_least_retention_follows_the_in_flight_bounds() {
        let retention = common::retention::vars::PAYMENT_RETENTION;
        // The defaults: 10 min + 10 x (15 s + 6 s + 6 s) = 870 s.
        let defaults = WorkerConfig::from_env(&HashMap::<&str, &str>::new()).unwrap();
        assert_eq!(defaults.min_payment_retention(), Duration::from_secs(870));
        let ok = HashMap::from([(retention, "870s")]);
        assert!(WorkerConfig::from_env(&ok).is_ok());
        let short = HashMap::from([(retention, "869999ms")]);
        let err = WorkerConfig::from_env(&short).unwrap_err();
        assert_eq!(err.var, retention);
        assert!(err.reason.contains("at least 870s"), "{err}");
        assert!(err.reason.contains(vars::CLAIM_IDLE_MS), "{err}");

        // Longer in-flight bounds raise it; shorter ones lower it, never below the margin.
        let long = HashMap::from([(retention, "15m"), (vars::PROCESSOR_TIMEOUT_MS, "30000")]);
        assert_eq!(WorkerConfig::from_env(&long).unwrap_err().var, retention);
        let long = HashMap::from([(retention, "20m"), (vars::PROCESSOR_TIMEOUT_MS, "30000")]);
        assert_eq!(
            WorkerConfig::from_env(&long)
                .unwrap()
                .min_payment_retention(),
            Duration::from_secs(600 + 10 * (15 + 30 + 6))
        );
        let fast = HashMap::from([
            (retention, "602s"),
            (vars::CLAIM_IDLE_MS, "100"),
            (vars::PROCESSOR_TIMEOUT_MS, "10"),
            (vars::AMBIGUITY_GRACE_MS, "0"),
        ]);
        let cfg = WorkerConfig::from_env(&fast).unwrap();
        assert_eq!(cfg.min_payment_retention(), Duration::from_millis(601_100));
        assert!(cfg.min_payment_retention() > REUSE_MARGIN);
    }

    #[test]
    fn the_begin_linger_must_be_shorter_than_the_send_window() {
        // Claim idle 150 ms: a send window of 50 ms.
        let env = |linger: &'static str| {
            HashMap::from([
                (vars::CLAIM_IDLE_MS, "150"),
                (vars::BEGIN_LINGER_MS, linger),
                (common::retention::vars::PAYMENT_RETENTION, "1h"),
            ])
        };
        assert!(WorkerConfig::from_env(&env("49")).is_ok());
        let err = WorkerConfig::from_env(&env("50")).unwrap_err();
        assert_eq!(err.var, vars::BEGIN_LINGER_MS);
        assert!(err.reason.contains("send window"), "{err}");
        assert!(err.reason.contains(vars::CLAIM_IDLE_MS), "{err}");
    }
}
