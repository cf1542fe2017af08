//! Bounded state: what is kept, for how long, and the one-shot steps that enforce it.
//!
//! Before it: `record.lua` / `fail.lua` (they give a terminal status hash its expiry,
//! `PAYMENT_RETENTION`, and write the summary detail these steps bound). Run by: the
//! worker's periodic retention task (`worker::retention`), which calls
//! [`compact_summary`], [`drop_summary_detail`], [`roll_up_legacy_seconds`] and
//! [`trim_dead_letters`]. After it: [`crate::store::Store::summary`], which reads what is
//! left. The settings ([`RetentionConfig`]) live in [`crate::config::retention`].
//!
//! What grows, and how it is bounded:
//! - **Status hashes** expire `PAYMENT_RETENTION` after their terminal state (`processed`,
//!   `failed`); this is the idempotency window: a correlationId replays (or answers `409`)
//!   while its status exists, and is a new payment after it expired. A re-drive makes a
//!   failed payment live again and removes the expiry (`redrive.lua`).
//! - **Stream entries** are deleted by the script that acknowledges them (`record.lua`,
//!   `fail.lua`: `XACK` + `XDEL`), never trimmed by length: the stream holds exactly the
//!   queued and pending payments, so nothing unacknowledged can be cut.
//! - **Dead letters** older than `PAYMENT_RETENTION` are trimmed (`trim_dead.lua`), like
//!   the status they belong to.
//! - **Summary**: counts and cents per second, minute, hour and day stay (one pair per
//!   bucket with traffic: bounded by time, not by payments); the per-payment detail (`ev`),
//!   needed only for the partial edge seconds of a query, is compacted once older than
//!   `SUMMARY_DETAIL_HORIZON` into one string per second of per-millisecond counts and
//!   cents (`compact.lua`), which `summary.lua` reads for edge seconds: queries stay exact
//!   to the millisecond until `SUMMARY_DETAIL_RETENTION` (default 7 days, the idempotency
//!   window). Then that detail is dropped (`drop_detail.lua`), second by second, and a
//!   watermark records from which second it is kept: a window with a millisecond edge in a
//!   dropped second is refused (`422`), one with whole-second edges stays exact at any age.
//!   Without that step the detail (~11 bytes per millisecond with payments, ~1 GB a day at
//!   1 000 payments/s) would grow for ever. Seconds recorded by a version before the
//!   roll-ups are rolled up once (`rebuild.lua`); until then queries read around them,
//!   exactly.

use std::time::Duration;

use redis::Script;

use crate::error::StoreError;
use crate::payment::Processor;
use crate::store::Store;

// The settings live with the rest of the configuration (a leaf); these paths stay.
pub use crate::config::retention::{
    vars, RetentionConfig, DEFAULT_DETAIL_HORIZON, DEFAULT_DETAIL_RETENTION, DEFAULT_INTERVAL,
    DEFAULT_PAYMENT_RETENTION,
};

/// Payments moved per `compact.lua` call: bounds the time Redis spends in one script.
pub const COMPACT_BATCH: usize = 5_000;
/// Seconds walked per `drop_detail.lua` call (an `HDEL` of up to 21 fields each: the
/// detail and the ten tenths' count and cents; a few ms of Redis time per call).
pub const DROP_DETAIL_BATCH_SECS: usize = 2_000;
/// Hours rolled up per `rebuild.lua` call (each reads up to 3 600 seconds): the same bound.
pub const ROLL_UP_BATCH_HOURS: usize = 2;

static COMPACT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("scripts/compact.lua")));
static REBUILD: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("scripts/rebuild.lua")));
static DROP_DETAIL: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("scripts/drop_detail.lua")));
static TRIM_DEAD: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(include_str!("scripts/trim_dead.lua")));

/// Compacts the summary detail older than `horizon`, both processors, `batch` payments
/// per script call until none is left. Returns how many payments were moved.
pub async fn compact_summary(
    store: &Store,
    horizon: Duration,
    batch: usize,
) -> Result<u64, StoreError> {
    let mut moved = 0;
    for processor in Processor::ALL {
        let keys = store.keys().summary(processor);
        let horizon_ms = horizon.as_millis() as u64;
        moved += until_done(
            store,
            &COMPACT,
            &[&keys.events, &keys.detail, &keys.detail_kept_from],
            &[horizon_ms],
            batch,
        )
        .await?;
    }
    Ok(moved)
}

/// Drops the compacted millisecond detail of the seconds older than `retention`, both
/// processors, walking at most `batch` seconds per script call until the watermark reaches
/// the cutoff (`drop_detail.lua`). Returns the seconds walked.
pub async fn drop_summary_detail(
    store: &Store,
    retention: Duration,
    batch: usize,
) -> Result<u64, StoreError> {
    let retention_ms = retention.as_millis() as u64;
    let mut walked = 0;
    for processor in Processor::ALL {
        let k = store.keys().summary(processor);
        let keys = [
            &k.detail,
            &k.detail_kept_from,
            &k.days,
            &k.legacy_seconds,
            &k.counts,
            &k.cents,
        ];
        walked += until_done(store, &DROP_DETAIL, &keys, &[retention_ms], batch).await?;
    }
    Ok(walked)
}

/// Rolls up the summary seconds recorded by versions before the roll-ups (minutes, hours and
/// days recomputed from them, `rebuild.lua`), `hours` hours per script call until none is
/// left. Returns how many hours were rolled up; 0 at once when there is nothing to do.
pub async fn roll_up_legacy_seconds(store: &Store, hours: usize) -> Result<u64, StoreError> {
    let mut done = 0;
    for processor in Processor::ALL {
        let k = store.keys().summary(processor);
        let keys = [&k.counts, &k.cents, &k.days, &k.legacy_seconds];
        done += until_done(store, &REBUILD, &keys, &[], hours).await?;
    }
    Ok(done)
}

/// Calls a script that does at most `batch` units of work (its last argument) until a call
/// does fewer: each call holds Redis for a bounded time. Returns the units done.
async fn until_done(
    store: &Store,
    script: &Script,
    keys: &[&String],
    args: &[u64],
    batch: usize,
) -> Result<u64, StoreError> {
    let mut conn = store.connection();
    let batch = batch.max(1) as u64;
    let mut done = 0;
    loop {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        let n: u64 = invocation.arg(batch).invoke_async(&mut conn).await?;
        done += n;
        if n < batch {
            return Ok(done);
        }
    }
}

/// Removes dead letters older than `retention` (a letter whose payment a processor may still
/// hold is appended again first, so a re-drive can still reach it). Returns how many.
pub async fn trim_dead_letters(store: &Store, retention: Duration) -> Result<u64, StoreError> {
    let mut conn = store.connection();
    let mut removed = 0;
    loop {
        let n: u64 = TRIM_DEAD
            .key(store.keys().dead_letters())
            .arg(retention.as_millis() as u64)
            .arg(store.keys().payment_prefix())
            .arg(TRIM_BATCH)
            .invoke_async(&mut conn)
            .await?;
        removed += n;
        if n < TRIM_BATCH {
            return Ok(removed);
        }
    }
}

/// Dead letters looked at per `trim_dead.lua` call.
const TRIM_BATCH: u64 = 1_000;
