//! Process start-up shared by the binaries: logging, configuration (a bad value exits
//! with status 2 and one line naming the variable), and the tokio runtime.

use crate::config::{ConfigError, Env, ProcessEnv};

/// Installs logging and parses the configuration from the process environment, or exits
/// with status 2 and a one-line message naming the variable.
pub fn configure<T>(binary: &str, parse: impl FnOnce(&dyn Env) -> Result<T, ConfigError>) -> T {
    let parsed = crate::telemetry::init(&ProcessEnv).and_then(|()| parse(&ProcessEnv));
    match parsed {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{binary}: {e}");
            std::process::exit(2);
        }
    }
}

/// A runtime with `threads` workers; 1 builds a current-thread runtime (no cross-thread
/// wake-ups, the lowest latency when several processes share two cores).
pub fn build(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}
