//! `state-scale`: the summary query and Redis memory once Redis holds millions of processed
//! payments (issue 11, scope 3).
//!
//! Comes before [`report`](super::report) and [`plot`](super::plot), which read the
//! [`StateScaleReport`] this fills. On a scratch `redis-server` of its own (ephemeral port, its
//! own data directory, AOF and snapshots off — the fill is not what is measured, so it is not
//! made durable), under the production key prefix:
//! 1. fill: every payment goes through the real `accept.lua` and then `record.lua`, a batch per
//!    call as the gateway and the worker batch them under load, several calls in flight;
//!    `requestedAt` follows [`Synthetic`] (1 000/s by default: 10 M payments span 2.8 h) and
//!    ends a minute before the fill starts; the stream is emptied as the record step's `XDEL`
//!    would;
//! 2. per retention state — *filled* (every payment's detail in `ev`), *compacted* (what the
//!    retention task leaves: detail older than `SUMMARY_DETAIL_HORIZON` compacted, the rest in
//!    `ev`), *compacted-all* (horizon 0) and *expired* (status hashes gone, as
//!    `PAYMENT_RETENTION` leaves them) — `used_memory` after `MEMORY PURGE`, and in the first
//!    three the summary call: per kind of window, `reps` calls of `Store::summary` (the real
//!    call, script and 128-bit summation) over a few distinct windows, client-side latency and
//!    the server's µs per call (its outermost command, from `INFO commandstats`), then each
//!    distinct window once against the payments' own totals.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use common::keys::Keys;
use common::payment::{PaymentId, Processor};
use common::retention;
use common::store::{Accepted, RecordRequest, Recorded, RedisOptions, Store, Window};
use common::testing::RedisServer;
use common::time::{format_ms, now_ms, Millis};
use time::OffsetDateTime;

use super::control::iso_ms;

use super::procstat::LoadAverage;
use super::redis_info::{server_usec, used_memory, Info};
use super::state_scale_report::{
    Fill, KeySize, MemoryState, PhaseLoad, QueryKind, StateScaleReport, StateScaleSettings,
};
use super::stats::Latency;
use super::synthetic::Synthetic;

/// What to fill and measure.
#[derive(Debug, Clone)]
pub struct StateScaleConfig {
    pub payments: u64,
    /// `requestedAt` spacing: payments per second.
    pub rate_per_sec: u64,
    /// Payments per `accept.lua` and per `record.lua` call.
    pub batch: usize,
    /// Script calls in flight during the fill.
    pub lanes: usize,
    /// Summary calls per kind of window and state.
    pub reps: usize,
    /// Distinct windows per kind (the calls cycle over them).
    pub distinct_windows: usize,
    /// The compaction horizon of the *compacted* state.
    pub detail_horizon: Duration,
    pub out_dir: Option<std::path::PathBuf>,
    pub name: String,
}

/// The production prefix: the keys look as they do in a deployment.
const PREFIX: &str = "ps";
/// Summary calls before each measured series (script loaded, connection warm).
const WARMUP: usize = 20;
/// Where the data ends: this long before the fill starts.
const END_BEFORE_NOW_MS: Millis = 60_000;
/// The targets of issue 11: p99 of a 1-minute window, and of the whole range.
const TARGET_MINUTE_MS: f64 = 1.0;
const TARGET_WHOLE_MS: f64 = 5.0;

/// Fills a scratch Redis and measures it; writes `<out>/<name>.json` and `.svg`.
pub async fn run_state_scale(cfg: StateScaleConfig) -> anyhow::Result<StateScaleReport> {
    if cfg.payments == 0
        || cfg.rate_per_sec == 0
        || cfg.batch == 0
        || cfg.lanes == 0
        || cfg.reps == 0
        || cfg.distinct_windows == 0
    {
        bail!("payments, rate, batch, lanes, reps and windows must be positive");
    }
    let started_at = OffsetDateTime::now_utc();
    let server = tokio::task::spawn_blocking(RedisServer::start).await?;
    let mut options = RedisOptions::new(server.url());
    // Compacting or sizing a 10 M-member key takes a while.
    options.response_timeout = Duration::from_secs(120);
    let store = Store::connect_lazy(&options, Keys::new(PREFIX)).context("redis url")?;
    store.ensure_group().await?;
    let version = Info::read(&store).await?.version;
    let empty = used_memory(&store).await?;

    let span_ms = (u128::from(cfg.payments - 1) * 1000 / u128::from(cfg.rate_per_sec)) as Millis;
    let synthetic = Synthetic {
        start: (now_ms() - END_BEFORE_NOW_MS - span_ms).div_euclid(1000) * 1000,
        rate_per_sec: cfg.rate_per_sec,
    };
    let (first, last) = (
        synthetic.requested_at(0),
        synthetic.requested_at(cfg.payments - 1),
    );
    let mut run = Run {
        store,
        cfg: cfg.clone(),
        synthetic,
        empty,
        load: Vec::new(),
        memory: Vec::new(),
        queries: Vec::new(),
        kinds: Vec::new(),
    };

    run.phase("fill");
    let started = Instant::now();
    run.fill().await?;
    let fill_secs = started.elapsed().as_secs_f64();
    tracing::info!(secs = fill_secs, "filled");
    // The same windows in every state; "old" means older than the compaction below will cut.
    run.kinds = window_kinds(
        &synthetic,
        cfg.payments,
        now_ms() - cfg.detail_horizon.as_millis() as Millis,
        cfg.distinct_windows,
    );
    run.measure_memory(
        "filled",
        "after the fill: every status hash, every payment's detail in ev",
    )
    .await?;
    run.measure_queries("filled").await?;

    run.phase("compact");
    let started = Instant::now();
    let compacted_horizon =
        retention::compact_summary(&run.store, cfg.detail_horizon, retention::COMPACT_BATCH)
            .await?;
    let compact_horizon_secs = started.elapsed().as_secs_f64();
    run.measure_memory(
        "compacted",
        &format!(
            "what the retention task leaves: detail older than the horizon ({} s) compacted",
            cfg.detail_horizon.as_secs()
        ),
    )
    .await?;
    run.measure_queries("compacted").await?;

    run.phase("compact-all");
    let started = Instant::now();
    let compacted_all =
        retention::compact_summary(&run.store, Duration::ZERO, retention::COMPACT_BATCH).await?;
    let compact_all_secs = started.elapsed().as_secs_f64();
    run.measure_memory(
        "compacted-all",
        "every payment's detail compacted (horizon passed for all)",
    )
    .await?;
    run.measure_queries("compacted-all").await?;

    run.phase("expire");
    run.expire_statuses().await?;
    run.measure_memory(
        "expired",
        "status hashes gone too, as PAYMENT_RETENTION leaves them: the summary alone",
    )
    .await?;
    run.phase("end");
    drop(server);

    let mut report = StateScaleReport {
        name: cfg.name.clone(),
        started_at: iso_ms(started_at),
        finished_at: iso_ms(OffsetDateTime::now_utc()),
        settings: StateScaleSettings {
            redis_version: version,
            aof: "off".into(),
            payments: cfg.payments,
            rate_per_sec: cfg.rate_per_sec,
            first_requested_at: format_ms(first),
            last_requested_at: format_ms(last),
            span_secs: (last - first) as f64 / 1000.0,
            batch: cfg.batch,
            lanes: cfg.lanes,
            reps: cfg.reps,
            distinct_windows: cfg.distinct_windows,
            detail_horizon_secs: cfg.detail_horizon.as_secs(),
        },
        fill: Fill {
            fill_secs,
            payments_per_sec: cfg.payments as f64 / fill_secs,
            compact_horizon_secs,
            compacted_horizon,
            compact_all_secs,
            compacted_all,
        },
        memory: run.memory,
        queries: run.queries,
        load: run.load,
        notes: vec![
            "fill: accept.lua then record.lua for every payment, a batch per call, `lanes` \
             calls in flight; AOF and snapshots off on a scratch server (durability is not \
             what is measured); the stream emptied as the record step's XDEL does"
                .into(),
            "latency: client side, Store::summary (script call + 128-bit summation) one call at \
             a time; server: INFO commandstats µs of the outermost command (EXEC, or EVALSHA \
             for a bare script) over the same calls, per call"
                .into(),
            "memory: used_memory after MEMORY PURGE, above the empty server, per payment".into(),
        ],
        files: Vec::new(),
    };
    super::report::write_files(
        cfg.out_dir.as_deref(),
        &cfg.name,
        &mut report,
        |r| &mut r.files,
        super::plot::state_scale_svg,
    )?;
    Ok(report)
}

/// The state of one run between its steps.
struct Run {
    store: Store,
    cfg: StateScaleConfig,
    synthetic: Synthetic,
    /// `used_memory` of the empty server.
    empty: u64,
    load: Vec<PhaseLoad>,
    memory: Vec<MemoryState>,
    queries: Vec<QueryKind>,
    /// The windows measured in every state.
    kinds: Vec<WindowKind>,
}

impl Run {
    fn phase(&mut self, phase: &str) {
        match LoadAverage::now() {
            Some(load) => {
                tracing::info!(phase, one = load.one, five = load.five, "load average");
                self.load.push(PhaseLoad {
                    phase: phase.into(),
                    load,
                });
            }
            None => tracing::warn!("no load average"),
        }
    }

    /// Step 1: every payment accepted and recorded, `lanes` batches in flight, in
    /// `requestedAt` order as a worker records them.
    async fn fill(&self) -> anyhow::Result<()> {
        let next = Arc::new(AtomicU64::new(0));
        let mut lanes = tokio::task::JoinSet::new();
        for _ in 0..self.cfg.lanes {
            let (store, next, synthetic) = (self.store.clone(), next.clone(), self.synthetic);
            let (n, batch) = (self.cfg.payments, self.cfg.batch as u64);
            lanes.spawn(async move {
                loop {
                    let chunk = next.fetch_add(1, Ordering::Relaxed);
                    let first = chunk * batch;
                    if first >= n {
                        return anyhow::Ok(());
                    }
                    record_chunk(&store, &synthetic, first..(first + batch).min(n)).await?;
                    if chunk % 1024 == 0 {
                        // The record step deletes each entry (XDEL); here no entry id is
                        // passed, so the stream is emptied every so often instead.
                        let _: u64 = store
                            .query(
                                redis::cmd("XTRIM")
                                    .arg(store.keys().stream())
                                    .arg("MAXLEN")
                                    .arg(0),
                            )
                            .await?;
                    }
                    if (first / batch) % (1_000_000 / batch).max(1) == 0 && first > 0 {
                        tracing::info!(recorded = first, "filling");
                    }
                }
            });
        }
        while let Some(lane) = lanes.join_next().await {
            lane??;
        }
        let _: u64 = self
            .store
            .query(
                redis::cmd("XTRIM")
                    .arg(self.store.keys().stream())
                    .arg("MAXLEN")
                    .arg(0),
            )
            .await?;
        Ok(())
    }

    async fn measure_memory(&mut self, state: &str, description: &str) -> anyhow::Result<()> {
        let used = used_memory(&self.store).await?;
        let mut summary_keys = Vec::new();
        for key in summary_keys_of(self.store.keys()) {
            let bytes: Option<u64> = self
                .store
                .query(
                    redis::cmd("MEMORY")
                        .arg("USAGE")
                        .arg(&key)
                        .arg("SAMPLES")
                        .arg(0),
                )
                .await?;
            if let Some(bytes) = bytes {
                summary_keys.push(KeySize { key, bytes });
            }
        }
        let m = MemoryState {
            state: state.into(),
            description: description.into(),
            used_memory_bytes: used,
            bytes_per_payment: used.saturating_sub(self.empty) as f64 / self.cfg.payments as f64,
            summary_keys,
        };
        tracing::info!(state, bytes_per_payment = m.bytes_per_payment, "memory");
        self.memory.push(m);
        Ok(())
    }

    /// Step 2's queries in one state: every kind of window that fits the data.
    async fn measure_queries(&mut self, state: &str) -> anyhow::Result<()> {
        for kind in self.kinds.clone() {
            let q = self.measure_kind(state, kind).await?;
            tracing::info!(
                state,
                kind = q.kind,
                p50_ms = q.latency.p50_ms,
                p99_ms = q.latency.p99_ms,
                max_ms = q.latency.max_ms,
                server_us = q.server_us_per_call,
                rereads = q.rereads,
                exact = q.windows_exact == q.windows_checked,
                "summary"
            );
            self.queries.push(q);
        }
        Ok(())
    }

    async fn measure_kind(&self, state: &str, kind: WindowKind) -> anyhow::Result<QueryKind> {
        for w in kind.windows.iter().cycle().take(WARMUP) {
            self.store.summary(*w).await?;
        }
        let _: () = self
            .store
            .query(redis::cmd("CONFIG").arg("RESETSTAT"))
            .await?;
        let mut latency = Latency::new();
        let rereads = self.store.summary_rereads();
        for w in kind.windows.iter().cycle().take(self.cfg.reps) {
            let started = Instant::now();
            self.store.summary(*w).await?;
            latency.record(started.elapsed());
        }
        let rereads = self.store.summary_rereads() - rereads;
        // The whole of each call: its EXEC (script and edge reads), or the bare script.
        let server_us_per_call =
            Some(server_usec(&self.store).await? as f64 / self.cfg.reps as f64);
        let mut exact = 0;
        for w in &kind.windows {
            let s = self.store.summary(*w).await?;
            if [s.default, s.fallback] == self.synthetic.totals(self.cfg.payments, *w) {
                exact += 1;
            } else {
                tracing::warn!(kind = kind.name, ?w, ?s, "summary mismatch");
            }
        }
        let latency = latency.percentiles();
        Ok(QueryKind {
            state: state.into(),
            kind: kind.name.into(),
            description: kind.description.into(),
            target_met: kind.target_p99_ms.map(|t| latency.p99_ms <= t),
            target_p99_ms: kind.target_p99_ms,
            latency,
            server_us_per_call,
            rereads,
            windows_checked: kind.windows.len(),
            windows_exact: exact,
        })
    }

    /// What `PAYMENT_RETENTION` does once the window has passed: no terminal status hash.
    async fn expire_statuses(&self) -> anyhow::Result<()> {
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .store
                .query(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(self.store.keys().payment_pattern())
                        .arg("COUNT")
                        .arg(10_000),
                )
                .await?;
            if !keys.is_empty() {
                let _: u64 = self.store.query(redis::cmd("UNLINK").arg(&keys)).await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

/// One fill step: `accept.lua` for the payments of `range`, then `record.lua` for them.
async fn record_chunk(
    store: &Store,
    synthetic: &Synthetic,
    range: std::ops::Range<u64>,
) -> anyhow::Result<()> {
    let payments: Vec<_> = range.map(|i| synthetic.payment(i)).collect();
    let accepts: Vec<(PaymentId, common::payment::Cents, u64)> =
        payments.iter().map(|p| (p.id, p.cents, 0)).collect();
    let replies = store.accept_batch(&accepts).await?;
    if let Some(r) = replies.iter().find(|r| **r != Accepted::Enqueued) {
        bail!("accept answered {r:?}");
    }
    let records: Vec<RecordRequest> = payments
        .iter()
        .map(|p| RecordRequest {
            id: p.id,
            amount: p.cents,
            processor: p.processor,
            requested_at: p.requested_at,
            entry_id: String::new(),
        })
        .collect();
    let replies = store.record_batch(&records).await?;
    if let Some(r) = replies.iter().find(|r| !matches!(r, Ok(Recorded::Now))) {
        bail!("record answered {r:?}");
    }
    Ok(())
}

/// Every summary key of both processors (the ones present are sized).
fn summary_keys_of(keys: &Keys) -> Vec<String> {
    Processor::ALL
        .iter()
        .flat_map(|&p| keys.summary(p).all().map(str::to_owned))
        .collect()
}

/// A kind of window and the distinct windows of it the calls cycle over.
#[derive(Debug, Clone, PartialEq)]
struct WindowKind {
    name: &'static str,
    description: &'static str,
    windows: Vec<Window>,
    target_p99_ms: Option<f64>,
}

/// The kinds of window that fit payments `0..n` (`compacted_before`: detail older than this is
/// compacted in the *compacted* state): 1 minute with millisecond edges among the recent and
/// among the old payments, 1 hour with millisecond edges, the whole range with millisecond
/// edges, and the open window. A kind the data is too short for is left out.
fn window_kinds(s: &Synthetic, n: u64, compacted_before: Millis, count: usize) -> Vec<WindowKind> {
    const MINUTE: Millis = 60_000;
    const HOUR: Millis = 3_600_000;
    let (first, last) = (s.requested_at(0), s.requested_at(n - 1));
    // Window k of `count`: `from` spread over [lo, hi] with millisecond offsets, length `len`.
    let spread = |lo: Millis, hi: Millis, len: Millis| -> Option<Vec<Window>> {
        (hi >= lo).then(|| {
            (0..count as u64)
                .map(|k| {
                    let from = lo + (mix(k) % (hi - lo + 1) as u64) as Millis;
                    Window {
                        from: Some(from),
                        to: Some(from + len - 1),
                    }
                })
                .collect()
        })
    };
    let mut kinds = Vec::new();
    let mut push = |name, description, windows: Option<Vec<Window>>, target| {
        if let Some(windows) = windows {
            kinds.push(WindowKind {
                name,
                description,
                windows,
                target_p99_ms: target,
            });
        }
    };
    push(
        "1m-recent",
        "1 minute, ms edges, within the last 30 minutes of data (edges from ev)",
        spread((last - 30 * MINUTE).max(first), last - MINUTE, MINUTE),
        Some(TARGET_MINUTE_MS),
    );
    push(
        "1m-old",
        "1 minute, ms edges, older than the detail horizon (edges compacted once compacted)",
        spread(first, compacted_before.min(last) - MINUTE, MINUTE),
        Some(TARGET_MINUTE_MS),
    );
    push(
        "1h",
        "1 hour, ms edges, anywhere",
        spread(first, last - HOUR, HOUR),
        None,
    );
    push(
        "all-edges",
        "the whole range with ms edges (from within the first second, to within the last)",
        Some(
            (0..count as u64)
                .map(|k| Window {
                    from: Some(first + (mix(k) % 1000) as Millis),
                    to: Some(last - (mix(k + 7) % 1000) as Millis),
                })
                .collect(),
        ),
        Some(TARGET_WHOLE_MS),
    );
    push(
        "all-open",
        "no bounds: everything recorded",
        Some(vec![Window::default()]),
        Some(TARGET_WHOLE_MS),
    );
    kinds
}

/// A well-mixed number from `k` (splitmix64): the same windows every run.
fn mix(k: u64) -> u64 {
    let mut z = k.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn windows_lie_in_the_data_and_cut_seconds() {
        // 10 M payments at 1 000/s: 2.8 h, the last hour not yet compacted.
        let s = Synthetic {
            start: 1_700_000_000_000,
            rate_per_sec: 1000,
        };
        let n = 10_000_000;
        let (first, last) = (s.requested_at(0), s.requested_at(n - 1));
        let horizon = last + END_BEFORE_NOW_MS - 3_600_000;
        let kinds = window_kinds(&s, n, horizon, 20);
        let names: Vec<&str> = kinds.iter().map(|k| k.name).collect();
        assert_eq!(
            names,
            ["1m-recent", "1m-old", "1h", "all-edges", "all-open"]
        );
        for kind in &kinds {
            for w in &kind.windows {
                if let (Some(from), Some(to)) = (w.from, w.to) {
                    assert!(first <= from && from <= to && to <= last, "{kind:?}");
                }
            }
        }
        let minute = &kinds[0].windows;
        assert_eq!(minute.len(), 20);
        assert!(minute
            .iter()
            .all(|w| w.to.unwrap() - w.from.unwrap() == 59_999));
        // Millisecond edges: most windows start inside a second.
        assert!(
            minute
                .iter()
                .filter(|w| w.from.unwrap() % 1000 != 0)
                .count()
                > 15
        );
        assert!(kinds[1].windows.iter().all(|w| w.to.unwrap() < horizon));

        // 100 000 payments: 100 s, nothing old, no hour.
        let kinds = window_kinds(&s, 100_000, s.start - 1, 5);
        let names: Vec<&str> = kinds.iter().map(|k| k.name).collect();
        assert_eq!(names, ["1m-recent", "all-edges", "all-open"]);
    }
}
