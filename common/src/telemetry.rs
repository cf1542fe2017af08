//! Logging setup shared by the binaries: `RUST_LOG` filter (default `info`), text or JSON
//! lines (`LOG_FORMAT=json`).

use tracing_subscriber::EnvFilter;

use crate::config::{raw, vars, ConfigError, Env};

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(env: &dyn Env) -> Result<(), ConfigError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match raw(env, vars::LOG_FORMAT).as_deref() {
        None | Some("text") => builder.init(),
        Some("json") => builder.json().flatten_event(true).init(),
        Some(other) => {
            return Err(ConfigError::new(
                vars::LOG_FORMAT,
                other,
                "expected text or json",
            ))
        }
    }
    Ok(())
}
