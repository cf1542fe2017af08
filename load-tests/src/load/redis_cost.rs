//! `redis-cost`: what recording a payment costs Redis itself (issue 10, scope 5).
//!
//! Comes before [`report`](super::report) and [`plot`](super::plot), which read the
//! [`RedisCostReport`] this fills. Per round and [`Variant`] (the variants alternate, so machine
//! noise hits all alike), on keys of its own prefix:
//! 1. `accept.lua` creates the payments and `XREADGROUP` delivers them to one consumer, as the
//!    gateway and the worker's reader do;
//! 2. the variant records them, one call or pipeline round trip at a time, between two
//!    `INFO` snapshots (Redis CPU of every thread, `used_memory`, forks) — the second after
//!    an idle `settle`, so the `everysec` fsync of the writes falls inside the window;
//! 3. summary windows with millisecond edges are read back and compared with the payments'
//!    own totals (the exactness check), then every key the round created is deleted.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use common::entry::StreamEntry;
use common::keys::{field, Bucket, Keys, GROUP};
use common::payment::{Cents, PaymentId, Processor, Status};
use common::store::{Accepted, RecordRequest, Recorded, RedisOptions, Store, Totals, Window};
use common::time::{now_ms, Millis};
use redis::Value;
use time::OffsetDateTime;

use super::control::iso_ms;

use super::redis_cost_report::{Findings, RedisCostReport, RedisCostSettings, Sample, Variant};
use super::redis_info::{aof_mode, Info};
use super::synthetic::{Payment, Synthetic};

/// What to measure and where.
#[derive(Debug, Clone)]
pub struct RedisCostConfig {
    pub redis_url: String,
    /// Payments per variant and round.
    pub payments: usize,
    pub rounds: usize,
    /// Payments per `record.lua` call (`lua-batch`) or pipeline round trip (`multi-*`).
    pub batch: usize,
    /// `requestedAt` spacing: payments per second (decides how many share a millisecond).
    pub rate_per_sec: u64,
    /// Idle time inside each window after the last write.
    pub settle: Duration,
    pub out_dir: Option<PathBuf>,
    pub name: String,
}

/// Payments per `accept.lua` call while setting up (not measured).
const ACCEPT_BATCH: usize = 128;
/// Entries per `XREADGROUP` while setting up.
const READ_COUNT: usize = 1000;
/// Summary windows checked per round.
const WINDOWS: usize = 24;
const CONSUMER: &str = "redis-cost";

/// Runs every round and writes `<out>/<name>.json` and `.svg`.
pub async fn run_redis_cost(cfg: RedisCostConfig) -> anyhow::Result<RedisCostReport> {
    if cfg.payments == 0 || cfg.rounds == 0 || cfg.batch == 0 || cfg.rate_per_sec == 0 {
        bail!("payments, rounds, batch and rate must be positive");
    }
    // AOF `always` with large pipelines, and `MEMORY USAGE` of big keys, can take a while.
    let Scratch {
        started_at,
        run_prefix,
        options,
        admin,
        info,
        aof,
    } = Scratch::open("redis-cost", &cfg.redis_url, Duration::from_secs(60)).await?;

    // Warm-up: scripts loaded, allocator and connections warm; not measured.
    for variant in Variant::ALL {
        let mut round = Round::new(&options, &run_prefix, "warmup", variant, &cfg)?;
        let result = round.measure(&cfg, cfg.payments.min(256), false).await;
        round.cleanup().await?;
        result?;
    }

    let idle_before = idle_cpu_us_per_sec(&admin, cfg.settle).await?;
    let mut samples = Vec::new();
    for r in 0..cfg.rounds {
        // Each round starts with another variant, so none always follows the same one.
        for k in 0..Variant::ALL.len() {
            let variant = Variant::ALL[(r + k) % Variant::ALL.len()];
            let mut round = Round::new(&options, &run_prefix, &r.to_string(), variant, &cfg)?;
            let result = round.measure(&cfg, cfg.payments, true).await;
            round.cleanup().await?;
            let mut sample = result.with_context(|| format!("{} round {r}", variant.name()))?;
            sample.round = r;
            tracing::info!(
                variant = variant.name(),
                round = r,
                cpu_us = sample.cpu_us_per_payment,
                wall_us = sample.wall_us_per_payment,
                bytes = sample.memory_bytes_per_payment,
                "measured"
            );
            samples.push(sample);
        }
    }
    let idle_after = idle_cpu_us_per_sec(&admin, cfg.settle).await?;

    let variants = super::redis_cost_report::summarize(&samples);
    let mut notes = vec![
        "multi-* variants write what record.lua writes — each summary bucket (second, minute, \
         hour, day) once per payment, where record.lua adds it once per call — but skip its \
         idempotency check (HGET of the status) and its overflow check: a cost reference, \
         not a replacement — a redelivered payment would be counted twice."
            .to_owned(),
        "CPU is Redis' whole process (user + sys, every thread, from INFO cpu) over the record \
         phase plus the idle settle; accept and XREADGROUP are outside the window."
            .to_owned(),
        "memory is used_memory after the record minus before the accept: the status hash, the \
         summary and what XDEL leaves of the stream."
            .to_owned(),
    ];
    if samples.iter().any(|s| s.forks > 0) {
        notes.push("a fork (AOF rewrite or snapshot) fell inside some windows: see forks".into());
    }
    let mut report = RedisCostReport {
        name: cfg.name.clone(),
        started_at: iso_ms(started_at),
        finished_at: iso_ms(OffsetDateTime::now_utc()),
        settings: RedisCostSettings {
            redis_url: cfg.redis_url.clone(),
            redis_version: info.version,
            aof,
            payments: cfg.payments,
            rounds: cfg.rounds,
            batch: cfg.batch,
            rate_per_sec: cfg.rate_per_sec,
            settle_ms: cfg.settle.as_millis() as u64,
        },
        idle_cpu_us_per_sec: (idle_before + idle_after) / 2.0,
        findings: Findings::of(&variants),
        variants,
        samples,
        notes,
        files: Vec::new(),
    };
    super::report::write_files(
        cfg.out_dir.as_deref(),
        &cfg.name,
        &mut report,
        |r| &mut r.files,
        super::plot::redis_cost_svg,
    )?;
    Ok(report)
}

/// One variant measured once, on its own key prefix.
struct Round {
    store: Store,
    variant: Variant,
    /// How the payments below were made (their totals for any window follow from it).
    synthetic: Synthetic,
    payments: Vec<Payment>,
    /// Every key this round may have created, deleted by [`Round::cleanup`].
    ms_buckets: HashSet<(Processor, i64)>,
    batch: usize,
}

impl Round {
    fn new(
        options: &RedisOptions,
        run_prefix: &str,
        round: &str,
        variant: Variant,
        cfg: &RedisCostConfig,
    ) -> anyhow::Result<Round> {
        let keys = Keys::new(&format!("{run_prefix}-{round}-{}", variant.name()));
        Ok(Round {
            store: Store::connect_lazy(options, keys)?,
            variant,
            synthetic: Synthetic {
                start: 0,
                rate_per_sec: cfg.rate_per_sec,
            },
            payments: Vec::new(),
            ms_buckets: HashSet::new(),
            batch: cfg.batch,
        })
    }

    /// Steps 1 to 3 of the module doc for `n` payments.
    async fn measure(
        &mut self,
        cfg: &RedisCostConfig,
        n: usize,
        check: bool,
    ) -> anyhow::Result<Sample> {
        // Whole seconds, so the windows below cut seconds at known places.
        self.synthetic.start = now_ms().div_euclid(1000) * 1000 - 3_600_000;
        self.payments = (0..n as u64).map(|i| self.synthetic.payment(i)).collect();
        if self.variant == Variant::MultiMsBucket {
            self.ms_buckets = self
                .payments
                .iter()
                .map(|p| (p.processor, p.requested_at.div_euclid(1000)))
                .collect();
        }
        let before_accept = Info::read(&self.store).await?;
        let requests = self.accept_and_deliver().await?;

        tokio::time::sleep(cfg.settle).await;
        let before = Info::read(&self.store).await?;
        let started = Instant::now();
        match self.variant {
            Variant::Lua1 => self.record_lua(&requests, 1).await?,
            Variant::LuaBatch => self.record_lua(&requests, self.batch).await?,
            Variant::MultiEv | Variant::MultiNoEv | Variant::MultiMsBucket => {
                self.record_multi(&requests).await?
            }
        }
        let wall = started.elapsed();
        tokio::time::sleep(cfg.settle).await;
        let after = Info::read(&self.store).await?;

        let per = |v: f64| v / n as f64;
        let edge_key_bytes = self.edge_key_bytes().await?.map(per);
        let (windows_checked, windows_exact) = if check {
            self.check_windows().await?
        } else {
            (0, 0)
        };
        Ok(Sample {
            round: 0,
            variant: self.variant,
            payments: n,
            cpu_us_per_payment: per((after.cpu_s - before.cpu_s) * 1e6),
            main_thread_cpu_us_per_payment: per((after.main_cpu_s - before.main_cpu_s) * 1e6),
            wall_us_per_payment: per(wall.as_secs_f64() * 1e6),
            memory_bytes_per_payment: per(
                after.used_memory as f64 - before_accept.used_memory as f64
            ),
            edge_key_bytes_per_payment: edge_key_bytes,
            forks: after.forks.saturating_sub(before.forks),
            windows_checked,
            windows_exact,
        })
    }

    /// Step 1: the payments in Redis, delivered to one consumer and pending, as the worker
    /// holds them when the processor answered.
    async fn accept_and_deliver(&self) -> anyhow::Result<Vec<RecordRequest>> {
        for chunk in self.payments.chunks(ACCEPT_BATCH) {
            let batch: Vec<(PaymentId, Cents, u64)> =
                chunk.iter().map(|p| (p.id, p.cents, 0)).collect();
            let replies = self.store.accept_batch(&batch).await?;
            if let Some(r) = replies.iter().find(|r| **r != Accepted::Enqueued) {
                bail!("accept answered {r:?}");
            }
        }
        self.store.ensure_group().await?;
        let mut entries: HashMap<PaymentId, String> = HashMap::with_capacity(self.payments.len());
        while entries.len() < self.payments.len() {
            let got = self.read_group().await?;
            if got.is_empty() {
                bail!("the stream ran dry after {} entries", entries.len());
            }
            entries.extend(got.into_iter().map(|e| (e.payment, e.entry_id)));
        }
        self.payments
            .iter()
            .map(|p| {
                Ok(RecordRequest {
                    id: p.id,
                    amount: p.cents,
                    processor: p.processor,
                    requested_at: p.requested_at,
                    entry_id: entries
                        .remove(&p.id)
                        .with_context(|| format!("no entry for {:?}", p.id))?,
                })
            })
            .collect()
    }

    async fn read_group(&self) -> anyhow::Result<Vec<StreamEntry>> {
        let reply: Value = self
            .store
            .query(
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(GROUP)
                    .arg(CONSUMER)
                    .arg("COUNT")
                    .arg(READ_COUNT)
                    .arg("STREAMS")
                    .arg(self.store.keys().stream())
                    .arg(">"),
            )
            .await?;
        // [[stream, [entry, ...]]] (RESP2) or {stream: [entry, ...]} (RESP3); Nil when none.
        let entries = match reply {
            Value::Array(streams) => streams.into_iter().find_map(|s| match s {
                Value::Array(mut parts) if parts.len() == 2 => match parts.pop() {
                    Some(Value::Array(entries)) => Some(entries),
                    _ => None,
                },
                _ => None,
            }),
            Value::Map(streams) => streams.into_iter().find_map(|(_, v)| match v {
                Value::Array(entries) => Some(entries),
                _ => None,
            }),
            _ => None,
        }
        .unwrap_or_default();
        let (good, bad) = Store::decode_entries(&entries);
        if let Some((id, e)) = bad.first() {
            bail!("entry {id} does not decode: {}", e.reason);
        }
        Ok(good)
    }

    /// Variants 1 and 2: `record.lua`, `per_call` payments per call.
    async fn record_lua(&self, requests: &[RecordRequest], per_call: usize) -> anyhow::Result<()> {
        for chunk in requests.chunks(per_call) {
            let replies = self.store.record_batch(chunk).await?;
            if let Some(r) = replies.iter().find(|r| !matches!(r, Ok(Recorded::Now))) {
                bail!("record answered {r:?}");
            }
        }
        Ok(())
    }

    /// Variants 3 to 5: `record.lua`'s writes as plain commands, one `MULTI`/`EXEC` per
    /// payment, a batch of payments per pipeline round trip.
    async fn record_multi(&self, requests: &[RecordRequest]) -> anyhow::Result<()> {
        let keys = self.store.keys();
        let summary = Processor::ALL.map(|p| keys.summary(p));
        let stream = keys.stream();
        let mut conn = self.store.connection();
        let mut buf = [0u8; 36];
        for chunk in requests.chunks(self.batch) {
            // record.lua takes `upd` from Redis' TIME; the client's clock is as good for cost.
            let now = now_ms();
            let mut pipe = redis::pipe();
            for r in chunk {
                let k = &summary[r.processor.index()];
                let sec = r.requested_at.div_euclid(1000);
                let cents = r.amount.get();
                let payment = keys.payment(&r.id);
                pipe.cmd("MULTI").ignore();
                pipe.cmd("HSET")
                    .arg(&payment)
                    .arg(field::STATUS)
                    .arg(Status::Processed.as_str())
                    .arg(field::PROCESSOR)
                    .arg(r.processor.as_str())
                    .arg(field::REQUESTED_AT)
                    .arg(r.requested_at)
                    .arg(field::AMBIGUOUS)
                    .arg("0")
                    .arg(field::UPDATED_AT)
                    .arg(now)
                    .ignore();
                pipe.cmd("HDEL")
                    .arg(&payment)
                    .arg(field::REASON)
                    .arg(field::SAFE_AT)
                    .arg(field::PRIOR_SAFE_AT)
                    .arg(field::HELD_BY)
                    .ignore();
                // The payment's buckets, as record.lua writes them (here once per payment).
                let tenth = Bucket::Tenth(r.requested_at.div_euclid(100));
                for bucket in Bucket::all_of(sec).into_iter().chain([tenth]) {
                    let f = bucket.field();
                    pipe.cmd("HINCRBY").arg(&k.counts).arg(&f).arg(1).ignore();
                    pipe.cmd("HINCRBY")
                        .arg(&k.cents)
                        .arg(&f)
                        .arg(cents)
                        .ignore();
                }
                let day = sec.div_euclid(86_400);
                pipe.cmd("ZADD").arg(&k.days).arg(day).arg(day).ignore();
                match self.variant {
                    Variant::MultiEv => {
                        let member = format!("{}:{cents}", r.id.encode(&mut buf));
                        pipe.cmd("ZADD")
                            .arg(&k.events)
                            .arg(r.requested_at)
                            .arg(member)
                            .ignore();
                    }
                    Variant::MultiMsBucket => {
                        let bucket = keys.summary_ms_bucket(r.processor, sec);
                        let offset = r.requested_at.rem_euclid(1000);
                        pipe.cmd("HINCRBY")
                            .arg(&bucket)
                            .arg(format!("n{offset}"))
                            .arg(1)
                            .ignore();
                        pipe.cmd("HINCRBY")
                            .arg(&bucket)
                            .arg(format!("c{offset}"))
                            .arg(cents)
                            .ignore();
                    }
                    _ => {}
                }
                pipe.cmd("XACK")
                    .arg(stream)
                    .arg(GROUP)
                    .arg(&r.entry_id)
                    .ignore();
                pipe.cmd("XDEL").arg(stream).arg(&r.entry_id).ignore();
                pipe.cmd("EXEC");
            }
            let replies: Vec<Value> = pipe.query_async(&mut conn).await?;
            check_exec_replies(&replies, chunk.len())?;
        }
        Ok(())
    }

    /// `MEMORY USAGE` of what holds the summary's edges (`ev`, or the ms buckets).
    async fn edge_key_bytes(&self) -> anyhow::Result<Option<f64>> {
        let keys: Vec<String> = match self.variant {
            Variant::MultiNoEv => return Ok(None),
            Variant::MultiMsBucket => self
                .ms_buckets
                .iter()
                .map(|&(p, s)| self.store.keys().summary_ms_bucket(p, s))
                .collect(),
            _ => Processor::ALL
                .iter()
                .map(|&p| self.store.keys().summary(p).events)
                .collect(),
        };
        let mut total = 0u64;
        for key in keys {
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
            total += bytes.unwrap_or(0);
        }
        Ok(Some(total as f64))
    }

    /// Step 3: the open window and [`WINDOWS`] windows with millisecond edges, read the way
    /// this variant allows, against the payments' own totals. Returns (checked, exact).
    async fn check_windows(&self) -> anyhow::Result<(usize, usize)> {
        let first = self.payments.first().map_or(0, |p| p.requested_at);
        let last = self.payments.last().map_or(0, |p| p.requested_at);
        let mut windows = vec![Window::default()];
        if self.variant.keeps_edges() {
            windows.extend(edge_windows(first, last, WINDOWS));
        }
        let mut exact = 0;
        for w in &windows {
            let got = match self.variant {
                Variant::MultiMsBucket if w.from.is_some() => self.ms_bucket_summary(*w).await?,
                _ => {
                    let s = self.store.summary(*w).await?;
                    [s.default, s.fallback]
                }
            };
            if got == self.synthetic.totals(self.payments.len() as u64, *w) {
                exact += 1;
            } else {
                tracing::warn!(variant = self.variant.name(), ?w, ?got, "summary mismatch");
            }
        }
        Ok((windows.len(), exact))
    }

    /// A window read from the per-second hashes and, for the seconds it cuts, the per-ms
    /// buckets: what `summary.lua` would do with the buckets instead of `ev`.
    async fn ms_bucket_summary(&self, w: Window) -> anyhow::Result<[Totals; 2]> {
        let (Some(from), Some(to)) = (w.from, w.to) else {
            bail!("edge windows only");
        };
        let mut totals = [Totals::default(); 2];
        for p in Processor::ALL {
            let k = self.store.keys().summary(p);
            let (n, c) = (&k.counts, &k.cents);
            let t = &mut totals[p.index()];
            for sec in from.div_euclid(1000)..=to.div_euclid(1000) {
                if from <= sec * 1000 && sec * 1000 + 999 <= to {
                    let count: Option<u64> =
                        self.store.query(redis::cmd("HGET").arg(n).arg(sec)).await?;
                    let cents: Option<i64> =
                        self.store.query(redis::cmd("HGET").arg(c).arg(sec)).await?;
                    t.requests += count.unwrap_or(0);
                    t.cents += i128::from(cents.unwrap_or(0));
                    continue;
                }
                let fields: HashMap<String, i64> = self
                    .store
                    .query(redis::cmd("HGETALL").arg(self.store.keys().summary_ms_bucket(p, sec)))
                    .await?;
                for (name, value) in fields {
                    let (kind, offset) = name.split_at(1);
                    let ms = sec * 1000 + offset.parse::<i64>().unwrap_or(-1);
                    if !(from..=to).contains(&ms) {
                        continue;
                    }
                    match kind {
                        "n" => t.requests += value as u64,
                        _ => t.cents += i128::from(value),
                    }
                }
            }
        }
        Ok(totals)
    }

    /// Deletes every key this round may have created (its own prefix only).
    async fn cleanup(&self) -> anyhow::Result<()> {
        let keys = self.store.keys();
        let mut all: Vec<String> = self.payments.iter().map(|p| keys.payment(&p.id)).collect();
        all.push(keys.stream().to_owned());
        all.push(keys.dead_letters().to_owned());
        for p in Processor::ALL {
            all.extend(keys.summary(p).all().map(str::to_owned));
        }
        all.extend(
            self.ms_buckets
                .iter()
                .map(|&(p, s)| keys.summary_ms_bucket(p, s)),
        );
        for chunk in all.chunks(500) {
            let _: u64 = self.store.query(redis::cmd("UNLINK").arg(chunk)).await?;
        }
        Ok(())
    }
}

/// Every `EXEC` ran and none of its commands failed.
fn check_exec_replies(replies: &[Value], payments: usize) -> anyhow::Result<()> {
    if replies.len() != payments {
        bail!("{} EXEC replies for {payments} payments", replies.len());
    }
    for reply in replies {
        match reply {
            Value::Array(results) => {
                if let Some(e) = results.iter().find(|v| matches!(v, Value::ServerError(_))) {
                    bail!("a command inside MULTI failed: {e:?}");
                }
            }
            other => bail!("EXEC answered {other:?}"),
        }
    }
    Ok(())
}

/// `count` windows inside `[first, last]` whose edges fall inside seconds, of lengths from
/// under a second to several seconds.
fn edge_windows(first: Millis, last: Millis, count: usize) -> Vec<Window> {
    let span = (last - first).max(1);
    (0..count as i64)
        .map(|k| {
            let from = first + (k * 7919 + 13) % span;
            let to = (from + 150 + (k * 1777) % 6000).min(last);
            Window {
                from: Some(from),
                to: Some(to),
            }
        })
        .collect()
}

/// The start of a run against a scratch Redis (this and [`redis_pool`](super::redis_pool)).
pub(super) struct Scratch {
    pub(super) started_at: OffsetDateTime,
    /// Unique per run (kind, pid, start ms): never another process's keys.
    pub(super) run_prefix: String,
    pub(super) options: RedisOptions,
    /// A store on `<run_prefix>-admin`, for `INFO` and `CONFIG GET`.
    pub(super) admin: Store,
    /// `INFO` at the start.
    pub(super) info: Info,
    /// `off`, or the `appendfsync` policy.
    pub(super) aof: String,
}

impl Scratch {
    pub(super) async fn open(
        kind: &str,
        url: &str,
        response_timeout: Duration,
    ) -> anyhow::Result<Scratch> {
        let started_at = OffsetDateTime::now_utc();
        let run_prefix = format!(
            "{kind}-{}-{}",
            std::process::id(),
            started_at.unix_timestamp_nanos() / 1_000_000
        );
        let mut options = RedisOptions::new(url.to_owned());
        options.response_timeout = response_timeout;
        let admin = Store::connect_lazy(&options, Keys::new(&format!("{run_prefix}-admin")))
            .context("redis url")?;
        let info = Info::read(&admin).await.context("INFO")?;
        let aof = aof_mode(&admin).await?;
        Ok(Scratch {
            started_at,
            run_prefix,
            options,
            admin,
            info,
            aof,
        })
    }
}

/// Redis CPU while nothing is sent, µs per second.
async fn idle_cpu_us_per_sec(store: &Store, over: Duration) -> anyhow::Result<f64> {
    let before = Info::read(store).await?;
    let started = Instant::now();
    tokio::time::sleep(over).await;
    let after = Info::read(store).await?;
    Ok((after.cpu_s - before.cpu_s) * 1e6 / started.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn exec_replies_must_be_one_clean_array_per_payment() {
        let ok = Value::Array(vec![Value::Int(1), Value::Okay]);
        assert!(check_exec_replies(&[ok.clone(), ok.clone()], 2).is_ok());
        assert!(check_exec_replies(std::slice::from_ref(&ok), 2).is_err());
        assert!(check_exec_replies(&[Value::Nil], 1).is_err());
    }

    #[test]
    fn edge_windows_stay_inside_the_payments() {
        let s = Synthetic {
            start: 1_000_000,
            rate_per_sec: 500,
        };
        let (first, last) = (s.requested_at(0), s.requested_at(1999));
        assert_eq!(s.requested_at(1) - first, 2);
        let windows = edge_windows(first, last, WINDOWS);
        assert_eq!(windows.len(), WINDOWS);
        for w in &windows {
            let (from, to) = (w.from.unwrap(), w.to.unwrap());
            assert!(first <= from && from <= to && to <= last, "{w:?}");
        }
    }
}
