//! The `processor-sim` binary's configuration: environment variables and `--port`, read with
//! the workspace's one parser (`common::config`): unset or blank takes the default.
//!
//! Before: `main` hands over an [`Env`] (the process environment; a map in tests) and the
//! arguments. After: [`ServeConfig`] tells `main` where to bind and which [`SimConfig`] to
//! run. A bad value is a [`ConfigError`] whose one-line message names the variable or flag.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use common::config::{millis, parse, raw, ConfigError, Env};

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

impl ServeConfig {
    /// Reads the configuration from `env` and `args` (without the program name).
    pub fn from_env(
        env: &dyn Env,
        args: impl IntoIterator<Item = String>,
    ) -> Result<Self, ConfigError> {
        let port_flag = |v: &str| v.parse().map_err(|e| ConfigError::new(FLAG_PORT, v, e));
        let mut port = parse(env, ENV_PORT, DEFAULT_PORT)?;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            port = match arg.strip_prefix("--port=") {
                Some(value) => port_flag(value)?,
                None if arg == FLAG_PORT => port_flag(&args.next().unwrap_or_default())?,
                None => return Err(ConfigError::new("argument", arg, USAGE)),
            };
        }
        let fee = raw(env, ENV_TRANSACTION_FEE).unwrap_or_else(|| DEFAULT_PROCESSOR_FEE.into());
        parse_fee(&fee).map_err(|_| ConfigError::new(ENV_TRANSACTION_FEE, &fee, FEE_RULE))?;
        Ok(Self {
            listen: SocketAddr::new(parse(env, ENV_BIND, DEFAULT_BIND)?, port),
            sim: SimConfig {
                fee,
                token: raw(env, ENV_TOKEN).unwrap_or_else(|| DEFAULT_TOKEN.into()),
                health_window: millis(
                    env,
                    ENV_HEALTH_WINDOW_MS,
                    DEFAULT_HEALTH_WINDOW_MS,
                    1..=3_600_000,
                )?,
                ..SimConfig::default_processor()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    fn parse(vars: &[(&str, &str)], args: &[&str]) -> Result<ServeConfig, ConfigError> {
        let env: HashMap<&str, &str> = vars.iter().copied().collect();
        ServeConfig::from_env(&env, args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn defaults() {
        let config = parse(&[], &[]).unwrap();
        assert_eq!(config.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.sim, SimConfig::default_processor());
        // Blank is unset, as everywhere in the workspace.
        assert_eq!(parse(&[("TOKEN", " ")], &[]).unwrap().sim.token, "123");
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
        let var = |vars: &[(&str, &str)], args: &[&str]| parse(vars, args).unwrap_err().var;
        assert_eq!(var(&[("PORT", "80a")], &[]), "PORT");
        assert_eq!(var(&[("PORT", "70000")], &[]), "PORT");
        assert_eq!(var(&[], &["--port", "x"]), "--port");
        assert_eq!(var(&[], &["--port"]), "--port");
        assert_eq!(var(&[("BIND", "localhost")], &[]), "BIND");
        assert_eq!(var(&[("TRANSACTION_FEE", "5%")], &[]), "TRANSACTION_FEE");
        assert_eq!(var(&[("HEALTH_WINDOW_MS", "0")], &[]), "HEALTH_WINDOW_MS");
        assert_eq!(var(&[], &["--verbose"]), "argument");
        let message = parse(&[("PORT", "x")], &[]).unwrap_err().to_string();
        assert!(
            message.contains("PORT=\"x\"") && !message.contains('\n'),
            "{message}"
        );
    }
}
