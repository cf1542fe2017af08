//! Crash recovery and liveness. Every tick:
//! - heartbeat: reset the idle time of this consumer's in-flight entries (`touch.lua`), so
//!   a payment held for a long time (processor outage) is never taken from a live process;
//!   entries found owned by another consumer (this process was frozen past the claim idle
//!   time) have their tasks stopped;
//! - reclaim: `XAUTOCLAIM` entries idle longer than `claim_idle` — they belong to a
//!   consumer that died — and process them here;
//! - every so often, delete consumers that have nothing pending and have been idle long
//!   (checked and deleted in one script), and publish the backlog gauge.

use std::sync::Arc;
use std::time::Duration;

use common::keys::GROUP;
use common::metrics as names;
use common::store::Store;
use redis::Value;

use crate::consume::{spawn_payment, Pool};

pub async fn run(pool: Arc<Pool>) {
    let ctx = pool.ctx.clone();
    let mut shutdown = ctx.shutdown.clone();
    let tick = (ctx.config.claim_idle / 3).max(Duration::from_millis(30));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round: u64 = 0;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.wait() => return,
        }
        round += 1;
        let ids = pool.in_flight_ids();
        match ctx.store.touch(&ctx.config.consumer, &ids).await {
            Ok(lost) if !lost.is_empty() => {
                tracing::warn!(
                    count = lost.len(),
                    "in-flight entries now owned by another consumer"
                );
                pool.mark_lost(&lost);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed");
                continue;
            }
        }
        if let Err(e) = reclaim(&pool).await {
            tracing::warn!(error = %e, "reclaim failed");
        }
        if let Ok(backlog) = ctx.store.backlog().await {
            metrics::gauge!(names::STREAM_BACKLOG).set(backlog as f64);
        }
        if let Ok((pending, lag)) = ctx.store.group_info().await {
            metrics::gauge!(names::STREAM_PENDING).set(pending as f64);
            metrics::gauge!(names::STREAM_GROUP_LAG).set(lag as f64);
        }
        if round % 30 == 0 {
            match ctx
                .store
                .drop_stale_consumers(&ctx.config.consumer, ctx.config.claim_idle * 10)
                .await
            {
                Ok(gone) if !gone.is_empty() => {
                    tracing::info!(consumers = ?gone, "removed stale consumers");
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "stale consumer cleanup failed"),
            }
        }
    }
}

/// Claims idle entries while there are free permits.
async fn reclaim(pool: &Arc<Pool>) -> Result<(), common::store::StoreError> {
    let ctx = &pool.ctx;
    let mut cursor = String::from("0-0");
    loop {
        let available = pool.permits.available_permits().min(ctx.config.batch_size);
        if available == 0 {
            return Ok(());
        }
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(ctx.store.keys().stream())
            .arg(GROUP)
            .arg(&ctx.config.consumer)
            .arg(ctx.config.claim_idle.as_millis() as u64)
            .arg(&cursor)
            .arg("COUNT")
            .arg(available);
        let reply: Value = ctx.store.query(&cmd).await?;
        let Value::Array(parts) = reply else {
            return Ok(());
        };
        let next = parts
            .first()
            .and_then(|v| match v {
                Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
                Value::SimpleString(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "0-0".into());
        let entries = match parts.get(1) {
            Some(Value::Array(e)) => e.clone(),
            _ => Vec::new(),
        };
        let (good, bad) = Store::decode_entries(&entries);
        crate::consume::dead_letter_undecodable(ctx, bad).await?;
        if !good.is_empty() {
            tracing::info!(
                count = good.len(),
                "reclaimed entries of a stopped consumer"
            );
            metrics::counter!(names::STREAM_READ_TOTAL, "source" => "reclaimed")
                .increment(good.len() as u64);
        }
        let mine = pool.in_flight_ids();
        for entry in good {
            if mine.contains(&entry.entry_id) {
                // Our own, being worked on (a heartbeat was missed): not a second task.
                continue;
            }
            match pool.permits.clone().try_acquire_owned() {
                Ok(permit) => spawn_payment(pool, entry, permit, None),
                // Claimed but no permit: it stays pending on us and the heartbeat does
                // not cover it, so it becomes reclaimable again after claim_idle.
                Err(_) => break,
            }
        }
        if next == "0-0" {
            return Ok(());
        }
        cursor = next;
    }
}
