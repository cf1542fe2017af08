//! Retention settings: how long terminal statuses, dead letters and the summary's
//! millisecond detail are kept, and how often the worker enforces it, read from the
//! environment.
//!
//! Imports only [`super::env`](mod@super::env). Before it: the environment. After it:
//! [`super::redis::RedisOptions`] (a terminal status's expiry, set by `record.lua` /
//! `fail.lua`) and the worker's retention task, which runs [`crate::retention`]'s steps
//! with these values.

use std::time::Duration;

use super::env::{duration, raw, ConfigError, Env};

/// The idempotency window: how long a terminal payment's status (and a dead letter) is kept.
pub const DEFAULT_PAYMENT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Age after which the summary's per-payment detail is compacted.
pub const DEFAULT_DETAIL_HORIZON: Duration = Duration::from_secs(3600);
/// How long the summary's millisecond detail is kept (then only whole-second windows are
/// answered for that time): the idempotency window's default.
pub const DEFAULT_DETAIL_RETENTION: Duration = DEFAULT_PAYMENT_RETENTION;
/// How often the worker's retention task runs.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Names of the retention variables.
pub mod vars {
    pub const PAYMENT_RETENTION: &str = "PAYMENT_RETENTION";
    pub const SUMMARY_DETAIL_HORIZON: &str = "SUMMARY_DETAIL_HORIZON";
    pub const SUMMARY_DETAIL_RETENTION: &str = "SUMMARY_DETAIL_RETENTION";
    pub const RETENTION_INTERVAL: &str = "RETENTION_INTERVAL";
}

/// Retention settings, read once at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Terminal status hashes and dead letters live this long (the idempotency window).
    pub payment_retention: Duration,
    /// The summary's per-payment detail older than this is compacted.
    pub detail_horizon: Duration,
    /// The compacted millisecond detail older than this is dropped.
    pub detail_retention: Duration,
    /// Period of the worker's retention task.
    pub interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            payment_retention: DEFAULT_PAYMENT_RETENTION,
            detail_horizon: DEFAULT_DETAIL_HORIZON,
            detail_retention: DEFAULT_DETAIL_RETENTION,
            interval: DEFAULT_INTERVAL,
        }
    }
}

impl RetentionConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let positive = |var: &'static str, default: Duration| {
            let d = duration(env, var, default)?;
            if d.is_zero() {
                return Err(ConfigError::new(var, "0", "must be more than zero"));
            }
            Ok(d)
        };
        let detail_horizon = duration(env, vars::SUMMARY_DETAIL_HORIZON, DEFAULT_DETAIL_HORIZON)?;
        let detail_retention = duration(
            env,
            vars::SUMMARY_DETAIL_RETENTION,
            DEFAULT_DETAIL_RETENTION,
        )?;
        // The detail is dropped from its compacted form only: it must be compacted first.
        if detail_retention <= detail_horizon {
            return Err(ConfigError::new(
                vars::SUMMARY_DETAIL_RETENTION,
                raw(env, vars::SUMMARY_DETAIL_RETENTION)
                    .unwrap_or_else(|| format!("{detail_retention:?} (the default)")),
                format!(
                    "must be longer than {} ({detail_horizon:?})",
                    vars::SUMMARY_DETAIL_HORIZON
                ),
            ));
        }
        Ok(Self {
            payment_retention: positive(vars::PAYMENT_RETENTION, DEFAULT_PAYMENT_RETENTION)?,
            detail_horizon,
            detail_retention,
            interval: positive(vars::RETENTION_INTERVAL, DEFAULT_INTERVAL)?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn settings_parse_with_units_and_name_the_variable() {
        assert_eq!(
            RetentionConfig::from_env(&HashMap::<&str, &str>::new()).unwrap(),
            RetentionConfig::default()
        );
        let env = HashMap::from([
            (vars::PAYMENT_RETENTION, "24h"),
            (vars::SUMMARY_DETAIL_HORIZON, "0"),
            (vars::RETENTION_INTERVAL, "500ms"),
            (vars::SUMMARY_DETAIL_RETENTION, "2d"),
        ]);
        let cfg = RetentionConfig::from_env(&env).unwrap();
        assert_eq!(cfg.payment_retention, Duration::from_secs(86_400));
        assert_eq!(cfg.detail_horizon, Duration::ZERO);
        assert_eq!(cfg.interval, Duration::from_millis(500));
        assert_eq!(cfg.detail_retention, Duration::from_secs(2 * 86_400));
        for (var, value) in [
            (vars::PAYMENT_RETENTION, "0"),
            (vars::PAYMENT_RETENTION, "7 weeks"),
            (vars::SUMMARY_DETAIL_HORIZON, "-1h"),
            (vars::SUMMARY_DETAIL_RETENTION, "1h"),
            (vars::SUMMARY_DETAIL_RETENTION, "30m"),
            (vars::RETENTION_INTERVAL, "0s"),
        ] {
            let bad = HashMap::from([(var, value)]);
            assert_eq!(RetentionConfig::from_env(&bad).unwrap_err().var, var);
        }
        // A horizon past the default detail retention: the retention is what must change.
        let bad = HashMap::from([(vars::SUMMARY_DETAIL_HORIZON, "8d")]);
        let e = RetentionConfig::from_env(&bad).unwrap_err();
        assert_eq!(e.var, vars::SUMMARY_DETAIL_RETENTION);
    }
}
