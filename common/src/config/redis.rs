//! Redis settings: how to reach it ([`RedisOptions`]: URL, timeouts, how long a terminal
//! status is kept) and the key prefix, as the gateway and the worker read them from the
//! environment ([`RedisConfig`]).
//!
//! Imports only [`super::env`](mod@super::env), [`super::retention`] and [`crate::keys`]. Before it: the
//! environment. After it: [`crate::store::Store::connect_lazy`], which opens the connection
//! these describe.

use std::time::Duration;

use super::env::{defaults, millis, raw, vars, ConfigError, Env};
use super::retention::{RetentionConfig, DEFAULT_PAYMENT_RETENTION};
use crate::keys::Keys;

/// Redis connection settings shared by the gateway and the worker.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    pub url: String,
    /// A command that takes longer than this fails (the gateway answers 503).
    pub response_timeout: Duration,
    pub connect_timeout: Duration,
    /// How long a terminal payment's status is kept (`PAYMENT_RETENTION`; see
    /// [`crate::retention`]).
    pub payment_retention: Duration,
}

impl RedisOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            response_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            payment_retention: DEFAULT_PAYMENT_RETENTION,
        }
    }

    pub fn client(&self) -> Result<redis::Client, redis::RedisError> {
        redis::Client::open(self.url.as_str())
    }
}

/// Redis settings and key prefix, shared by the gateway and the worker.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub options: RedisOptions,
    pub keys: Keys,
    /// What is kept in Redis and for how long (the worker enforces it).
    pub retention: RetentionConfig,
}

impl RedisConfig {
    pub fn from_env(env: &dyn Env) -> Result<Self, ConfigError> {
        let url = raw(env, vars::REDIS_URL).unwrap_or_else(|| defaults::REDIS_URL.to_string());
        redis::Client::open(url.as_str())
            .map_err(|e| ConfigError::new(vars::REDIS_URL, url.clone(), e))?;
        let prefix = raw(env, vars::KEY_PREFIX).unwrap_or_else(|| defaults::KEY_PREFIX.to_string());
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError::new(
                vars::KEY_PREFIX,
                prefix,
                "only letters, digits, '-' and '_' are allowed",
            ));
        }
        let timeout = millis(
            env,
            vars::REDIS_TIMEOUT_MS,
            defaults::REDIS_TIMEOUT_MS,
            10..=60_000,
        )?;
        let mut options = RedisOptions::new(url);
        options.response_timeout = timeout;
        options.connect_timeout = timeout.min(Duration::from_secs(1));
        let retention = RetentionConfig::from_env(env)?;
        options.payment_retention = retention.payment_retention;
        Ok(Self {
            options,
            keys: Keys::new(&prefix),
            retention,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn redis_config_validates_url_and_prefix() {
        let bad_url = HashMap::from([(vars::REDIS_URL, "postgres://x")]);
        assert_eq!(
            RedisConfig::from_env(&bad_url).unwrap_err().var,
            vars::REDIS_URL
        );
        let bad_prefix = HashMap::from([(vars::KEY_PREFIX, "a}b")]);
        assert_eq!(
            RedisConfig::from_env(&bad_prefix).unwrap_err().var,
            vars::KEY_PREFIX
        );
        let ok = RedisConfig::from_env(&HashMap::<&str, &str>::new()).unwrap();
        assert_eq!(ok.keys.stream(), "{ps}:stream");
    }
}
