//! The `processor-sim` binary's configuration: environment variables and `--port`.
//!
//! Before: `main` hands over a lookup closure (so tests pass a map) and the arguments.
//! After: [`ServeConfig`] tells `main` where to bind and which [`SimConfig`] to run.
//! A bad value is an [`EnvError`] whose one-line message names the variable.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use thiserror::Error;

use super::config::{parse_fee, SimConfig, DEFAULT_PROCESSOR_FEE, DEFAULT_TOKEN, FEE_RULE};

/// Port to listen on (the `--port` flag wins).
pub const ENV_PORT: &str = "PORT";
/// Address to listen on.
pub const ENV_BIND: &str = "BIND";
/// Fee per transaction, decimal text.
pub const ENV_TRANSACTION_FEE: &str = "TRANSACTION_FEE";
/// Initial admin token.
pub const ENV_TOKEN: &str = "TOKEN";
/// Health rate-limit window, milliseconds.
pub const ENV_HEALTH_WINDOW_MS: &str = "HEALTH_WINDOW_MS";
/// The command-line flag overriding [`ENV_PORT`].
pub const FLAG_PORT: &str = "--port";

/// Listen port when neither `--port` nor `PORT` is given.
pub const DEFAULT_PORT: u16 = 8080;
/// Listen address when `BIND` is not given.
pub const DEFAULT_BIND: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// Health window when `HEALTH_WINDOW_MS` is not given.
pub const DEFAULT_HEALTH_WINDOW_MS: u64 = 5_000;

const USAGE: &str =
    "usage: processor-sim [--port N] (env: PORT, BIND, TRANSACTION_FEE, TOKEN, HEALTH_WINDOW_MS)";

/// Everything the binary needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The simulated processor.
    pub sim: SimConfig,
}

/// A configuration value the binary cannot start with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EnvError {
    /// A variable or flag with a bad value.
    #[error("invalid {name}={value:?}: {reason}")]
    Invalid {
        /// The variable or flag.
        name: &'static str,
        /// What it was set to.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
    /// An argument the binary does not know.
    #[error("unexpected argument {0:?}; {USAGE}")]
    Argument(String),
}

impl ServeConfig {
    /// Reads the configuration through `lookup` (e.g. `std::env::var`) and `args`
    /// (without the program name). Unset variables take their defaults.
    pub fn from_lookup<L, A>(lookup: L, args: A) -> Result<Self, EnvError>
    where
        L: Fn(&str) -> Option<String>,
        A: IntoIterator<Item = String>,
    {
        let invalid = |name: &'static str, value: &str, reason: &'static str| EnvError::Invalid {
            name,
            value: value.to_owned(),
            reason,
        };
        let parse_port = |name: &'static str, value: &str| {
            value
                .parse::<u16>()
                .map_err(|_| invalid(name, value, "expected a port number 0-65535"))
        };

        let mut port = match lookup(ENV_PORT) {
            Some(value) => parse_port(ENV_PORT, &value)?,
            None => DEFAULT_PORT,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == FLAG_PORT {
                let value = args
                    .next()
                    .ok_or_else(|| invalid(FLAG_PORT, "", "expected a port number after --port"))?;
                port = parse_port(FLAG_PORT, &value)?;
            } else if let Some(value) = arg.strip_prefix("--port=") {
                port = parse_port(FLAG_PORT, value)?;
            } else {
                return Err(EnvError::Argument(arg));
            }
        }

        let bind = match lookup(ENV_BIND) {
            Some(value) => value
                .parse::<IpAddr>()
                .map_err(|_| invalid(ENV_BIND, &value, "expected an IP address such as 0.0.0.0"))?,
            None => DEFAULT_BIND,
        };
        let fee = lookup(ENV_TRANSACTION_FEE).unwrap_or_else(|| DEFAULT_PROCESSOR_FEE.to_owned());
        parse_fee(&fee).map_err(|_| invalid(ENV_TRANSACTION_FEE, &fee, FEE_RULE))?;
        let token = lookup(ENV_TOKEN).unwrap_or_else(|| DEFAULT_TOKEN.to_owned());
        if token.is_empty() {
            return Err(invalid(ENV_TOKEN, &token, "must not be empty"));
        }
        let health_window_ms = match lookup(ENV_HEALTH_WINDOW_MS) {
            Some(value) => match value.parse::<u64>() {
                Ok(ms) if ms > 0 => ms,
                _ => {
                    return Err(invalid(
                        ENV_HEALTH_WINDOW_MS,
                        &value,
                        "expected a positive number of milliseconds",
                    ))
                }
            },
            None => DEFAULT_HEALTH_WINDOW_MS,
        };

        Ok(Self {
            listen: SocketAddr::new(bind, port),
            sim: SimConfig {
                fee,
                token,
                health_window: Duration::from_millis(health_window_ms),
                ..SimConfig::default_processor()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use super::*;

    fn parse(vars: &[(&str, &str)], args: &[&str]) -> Result<ServeConfig, EnvError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ServeConfig::from_lookup(
            |name| vars.get(name).cloned(),
            args.iter().map(|a| (*a).to_owned()),
        )
    }

    #[test]
    fn defaults() {
        let config = parse(&[], &[]).unwrap();
        assert_eq!(config.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.sim, SimConfig::default_processor());
    }

    #[test]
    fn everything_set() {
        let config = parse(
            &[
                ("PORT", "8001"),
                ("BIND", "127.0.0.1"),
                ("TRANSACTION_FEE", "0.15"),
                ("TOKEN", "s3cret"),
                ("HEALTH_WINDOW_MS", "250"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(config.listen, "127.0.0.1:8001".parse().unwrap());
        assert_eq!(config.sim.fee, "0.15");
        assert_eq!(config.sim.token, "s3cret");
        assert_eq!(config.sim.health_window, Duration::from_millis(250));
    }

    #[test]
    fn the_port_flag_wins_over_the_variable() {
        let port = |args: &[&str]| parse(&[("PORT", "8001")], args).unwrap().listen.port();
        assert_eq!(port(&["--port", "8002"]), 8002);
        assert_eq!(port(&["--port=8003"]), 8003);
        assert_eq!(port(&[]), 8001);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let message =
            |vars: &[(&str, &str)], args: &[&str]| parse(vars, args).unwrap_err().to_string();
        assert!(message(&[("PORT", "80a")], &[]).starts_with("invalid PORT="));
        assert!(message(&[("PORT", "70000")], &[]).starts_with("invalid PORT="));
        assert!(message(&[], &["--port", "x"]).starts_with("invalid --port="));
        assert!(message(&[], &["--port"]).starts_with("invalid --port="));
        assert!(message(&[("BIND", "localhost")], &[]).starts_with("invalid BIND="));
        assert!(message(&[("TRANSACTION_FEE", "5%")], &[]).starts_with("invalid TRANSACTION_FEE="));
        assert!(message(&[("TOKEN", "")], &[]).starts_with("invalid TOKEN="));
        assert!(message(&[("HEALTH_WINDOW_MS", "0")], &[]).starts_with("invalid HEALTH_WINDOW_MS="));
        assert!(message(&[], &["--verbose"]).starts_with("unexpected argument"));
        assert!(!message(&[("PORT", "x")], &[]).contains('\n'));
    }
}
