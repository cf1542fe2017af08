//! Reading the environment: where values come from ([`Env`]: the process, or a map in
//! tests), the one error ([`ConfigError`], naming the variable), the parsers every setting
//! uses (numbers, ranges, durations with units, flags, URLs, listen addresses), and the
//! shared variables' names and defaults.
//!
//! A leaf: it imports nothing of the crate. Before it: the process environment. After it:
//! the settings built from it ([`super::redis`], [`super::retention`], the binaries' own
//! configs), and [`crate::telemetry`], [`crate::runtime`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Names of the environment variables shared by the binaries.
pub mod vars {
    pub const REDIS_URL: &str = "REDIS_URL";
    pub const KEY_PREFIX: &str = "PAYSTREAM_KEY_PREFIX";
    pub const REDIS_TIMEOUT_MS: &str = "REDIS_TIMEOUT_MS";
    pub const LOG_FORMAT: &str = "LOG_FORMAT";
}

/// Defaults of the shared variables.
pub mod defaults {
    pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
    pub const KEY_PREFIX: &str = "ps";
    pub const REDIS_TIMEOUT_MS: u64 = 2_000;
}

/// A variable whose value cannot be used. Printed as one line naming the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {var}={value:?}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub value: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(var: &'static str, value: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self {
            var,
            value: value.into(),
            reason: reason.to_string(),
        }
    }
}

/// Where configuration values come from: the process environment or, in tests, a map.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for std::collections::HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).map(|v| v.to_string())
    }
}

impl Env for std::collections::HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).cloned()
    }
}

/// A value set and not blank.
pub fn raw(env: &dyn Env, var: &str) -> Option<String> {
    env.get(var)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Parses `var` with `FromStr`, or returns `default` when unset.
pub fn parse<T>(env: &dyn Env, var: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match raw(env, var) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|e| ConfigError::new(var, v, e)),
    }
}

/// Like [`parse`] with a range check.
pub fn parse_in<T>(
    env: &dyn Env,
    var: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + fmt::Display + Copy,
    T::Err: fmt::Display,
{
    let value = parse(env, var, default)?;
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::new(
            var,
            value.to_string(),
            format!("must be between {} and {}", range.start(), range.end()),
        ))
    }
}

/// A duration given in whole milliseconds.
pub fn millis(
    env: &dyn Env,
    var: &'static str,
    default_ms: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    parse_in(env, var, default_ms, range).map(Duration::from_millis)
}

/// A duration with a unit: `1500ms`, `90s`, `30m`, `24h`, `7d`; a bare number is seconds.
pub fn duration(
    env: &dyn Env,
    var: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(v) = raw(env, var) else {
        return Ok(default);
    };
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        ConfigError::new(
            var,
            v.clone(),
            "expected a number with a unit (ms, s, m, h, d)",
        )
    })?;
    let ms_per = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(ConfigError::new(
                var,
                v.clone(),
                "unit must be ms, s, m, h or d",
            ))
        }
    };
    n.checked_mul(ms_per)
        .map(Duration::from_millis)
        .ok_or_else(|| ConfigError::new(var, v.clone(), "too large"))
}

/// A boolean: `1/0`, `true/false`, `yes/no`, `on/off`.
pub fn flag(env: &dyn Env, var: &'static str, default: bool) -> Result<bool, ConfigError> {
    match raw(env, var) {
        None => Ok(default),
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::new(var, v, "expected true or false")),
        },
    }
}

/// An `http://` or `https://` base URL, without a trailing slash.
pub fn http_url(env: &dyn Env, var: &'static str, default: &str) -> Result<String, ConfigError> {
    let value = raw(env, var).unwrap_or_else(|| default.to_string());
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
            Ok(value.trim_end_matches('/').to_string())
        }
        _ => Err(ConfigError::new(
            var,
            value,
            "expected an http:// or https:// URL",
        )),
    }
}

/// A metrics listener address (`host:port`), or `None` when the value is `off`.
pub fn listen_addr_or_off(
    env: &dyn Env,
    var: &'static str,
    default: std::net::SocketAddr,
) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    match raw(env, var).as_deref() {
        Some("off") | Some("none") => Ok(None),
        _ => parse(env, var, default).map(Some),
    }
}

/// A secret that never appears in logs or Debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a presented value.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        let mut diff =
            (expected.len() ^ presented.len()) as u8 | (expected.len() != presented.len()) as u8;
        for (i, b) in expected.iter().enumerate() {
            diff |= b ^ presented.get(i).copied().unwrap_or(0);
        }
        diff == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn errors_name_the_variable() {
        let env = HashMap::from([("N", "abc"), ("URL", "ftp://x"), ("B", "maybe")]);
        let e = parse::<u32>(&env, "N", 1).unwrap_err();
        assert_eq!(e.var, "N");
        assert!(e.to_string().contains("N=\"abc\""));
        assert_eq!(http_url(&env, "URL", "http://a").unwrap_err().var, "URL");
        assert_eq!(flag(&env, "B", false).unwrap_err().var, "B");
        assert_eq!(
            parse_in::<u32>(&HashMap::from([("N", "0")]), "N", 1, 1..=5)
                .unwrap_err()
                .var,
            "N"
        );
    }

    #[test]
    fn unset_or_blank_takes_the_default() {
        let env = HashMap::from([("BLANK", "  ")]);
        assert_eq!(parse::<u32>(&env, "BLANK", 7).unwrap(), 7);
        assert_eq!(parse::<u32>(&env, "UNSET", 8).unwrap(), 8);
        assert_eq!(http_url(&env, "U", "http://h:1/").unwrap(), "http://h:1");
    }

    #[test]
    fn secrets_compare_and_redact() {
        let s = Secret::new("token");
        assert!(s.matches(b"token"));
        assert!(!s.matches(b"toke"));
        assert!(!s.matches(b"tokenx"));
        assert!(!s.matches(b""));
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }
}
