//! Configuration from the environment, parsed once into typed values. Every reader takes a
//! lookup function, so tests pass a map instead of touching the process environment, and
//! every failure names the variable.
//!
//! A leaf of the crate: it imports only [`crate::keys`] (for the key prefix), so every
//! module may read settings from here and none is imported back.
//! - [`env`](mod@env): where values come from, [`ConfigError`], the parsers every setting uses.
//! - [`redis`]: [`RedisOptions`] and [`RedisConfig`] (URL, timeouts, key prefix).
//! - [`retention`]: [`retention::RetentionConfig`], what is kept and for how long.
//!
//! Before it: the process environment. After it: the binaries' own configs
//! (`gateway::config`, `worker::config`), [`crate::store`], [`crate::telemetry`].

pub mod env;
pub mod redis;
pub mod retention;

pub use self::env::{
    defaults, duration, flag, http_url, listen_addr_or_off, millis, parse, parse_in, raw, vars,
    ConfigError, Env, ProcessEnv, Secret,
};
pub use self::redis::{RedisConfig, RedisOptions};
