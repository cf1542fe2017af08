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

/// Installs the Prometheus recorder (once per process; later calls return the same
/// handle) with explicit histogram buckets, and starts its upkeep task.
pub fn install_metrics() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = metrics_exporter_prometheus::PrometheusBuilder::new();
            let handle = builder
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        crate::metrics::REDIS_BATCH_SIZE.to_string(),
                    ),
                    crate::metrics::BATCH_BUCKETS,
                )
                .and_then(|b| b.set_buckets(crate::metrics::LATENCY_BUCKETS))
                .map(|b| b.install_recorder())
                .ok()
                .and_then(Result::ok)
                .unwrap_or_else(|| {
                    // Another recorder is installed (tests embedding several services):
                    // render from a private recorder so /metrics still answers.
                    metrics_exporter_prometheus::PrometheusBuilder::new()
                        .build_recorder()
                        .handle()
                });
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                })
                .ok();
            handle
        })
        .clone()
}
