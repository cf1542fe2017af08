//! The periodic retention task: every `RETENTION_INTERVAL`, compacts the summary's
//! per-payment detail older than `SUMMARY_DETAIL_HORIZON`, drops the compacted millisecond
//! detail older than `SUMMARY_DETAIL_RETENTION`, rolls up summary seconds left by
//! a revision before the roll-ups (once, after an upgrade) and trims dead letters older
//! than `PAYMENT_RETENTION` (see `common::retention`). Status hashes need no task: the
//! script that makes them terminal gives them their expiry.
//!
//! Every worker runs it; the scripts are atomic and move each payment once, so two
//! workers running it at the same moment share the work. Runs beside the pipeline and
//! never blocks it; a failed round is logged and retried at the next tick.

use common::metrics as names;
use common::retention::{self, RetentionConfig};
use common::shutdown::Shutdown;
use common::store::Store;

pub async fn run(store: Store, config: RetentionConfig, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        match retention::compact_summary(&store, config.detail_horizon, retention::COMPACT_BATCH)
            .await
        {
            Ok(n) => metrics::counter!(names::RETENTION_COMPACTED_TOTAL).increment(n),
            Err(e) => tracing::warn!(error = %e, "summary compaction failed; retrying next round"),
        }
        match retention::drop_summary_detail(
            &store,
            config.detail_retention,
            retention::DROP_DETAIL_BATCH_SECS,
        )
        .await
        {
            Ok(n) => metrics::counter!(names::RETENTION_DETAIL_SECONDS_DROPPED_TOTAL).increment(n),
            Err(e) => tracing::warn!(error = %e, "summary detail drop failed; retrying next round"),
        }
        match retention::roll_up_legacy_seconds(&store, retention::ROLL_UP_BATCH_HOURS).await {
            Ok(n) => metrics::counter!(names::RETENTION_ROLLED_UP_HOURS_TOTAL).increment(n),
            Err(e) => tracing::warn!(error = %e, "summary roll-up failed; retrying next round"),
        }
        match retention::trim_dead_letters(&store, config.payment_retention).await {
            Ok(n) => metrics::counter!(names::RETENTION_DEAD_LETTERS_TRIMMED_TOTAL).increment(n),
            Err(e) => tracing::warn!(error = %e, "dead-letter trim failed; retrying next round"),
        }
    }
}
