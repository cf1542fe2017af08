//! Every Redis operation of Paystream, over the atomic scripts in `scripts/`.
//!
//! Comes before: Redis. Comes after: the gateway's handlers and the worker's pipeline,
//! which never build a command themselves. Each state change is one script, so a crash
//! between two Redis calls can never leave a payment half-recorded.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};

use crate::batch::Batcher;
use crate::entry::{self, as_str, StreamEntry};
use crate::keys::{field, Bucket, Keys, GROUP};
use crate::payment::{Cents, PaymentId, Processor, Status};
use crate::time::Millis;

/// A Redis failure as the callers need to tell it apart.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The command was certainly not executed: Redis refused the connection, or answered
    /// with an error before running anything (loading, busy). The caller may back off and
    /// retry; the gateway answers 503.
    #[error("redis unavailable: {0}")]
    Unavailable(#[source] redis::RedisError),
    /// The command was sent but no answer came (timeout, connection lost while waiting):
    /// it may or may not have run. The gateway answers 504 "outcome unknown".
    #[error("redis outcome unknown: {0}")]
    Unknown(#[source] redis::RedisError),
    /// Redis answered something a script never returns: a bug or a foreign key layout.
    #[error("unexpected redis reply: {0}")]
    Unexpected(String),
    /// A summary window has a millisecond edge in a second whose detail was dropped
    /// (`SUMMARY_DETAIL_RETENTION`, `drop_detail.lua`): it cannot be answered exactly. The
    /// detail is kept from `kept_from` (ms) on; the gateway answers 422.
    #[error("summary detail dropped before {kept_from} ms")]
    DetailDropped { kept_from: Millis },
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        if written_maybe(&e) {
            StoreError::Unknown(e)
        } else {
            StoreError::Unavailable(e)
        }
    }
}

/// Whether a failed command may have reached Redis and run. Only a refused connection
/// (nothing was ever sent on it) and an error reply (Redis answered without running the
/// script: LOADING, BUSY, NOSCRIPT, ...) are certain; every other I/O failure —
/// a timeout, a reset or EOF while waiting for the answer — may follow a write.
fn written_maybe(e: &redis::RedisError) -> bool {
    if e.is_connection_refusal() {
        return false;
    }
    !matches!(e.kind(), redis::ErrorKind::Server(_))
}

impl StoreError {
    /// Bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "redis_unavailable",
            StoreError::Unknown(_) => "redis_unknown",
            StoreError::Unexpected(_) => "redis_unexpected",
            StoreError::DetailDropped { .. } => "summary_detail_dropped",
        }
    }
}

/// The scripts, loaded once (EVALSHA, with EVAL fallback after a Redis restart).
struct Scripts {
    accept: Script,
    begin: Script,
    unanswered: Script,
    settle: Script,
    record: Script,
    fail: Script,
    summary: Script,
    touch: Script,
    health_slot: Script,
    redrive: Script,
    purge: Script,
}

static SCRIPTS: std::sync::LazyLock<Scripts> = std::sync::LazyLock::new(|| Scripts {
    accept: Script::new(include_str!("scripts/accept.lua")),
    begin: Script::new(include_str!("scripts/begin.lua")),
    unanswered: Script::new(include_str!("scripts/unanswered.lua")),
    settle: Script::new(include_str!("scripts/settle.lua")),
    record: Script::new(include_str!("scripts/record.lua")),
    fail: Script::new(include_str!("scripts/fail.lua")),
    summary: Script::new(include_str!("scripts/summary.lua")),
    touch: Script::new(include_str!("scripts/touch.lua")),
    health_slot: Script::new(include_str!("scripts/health_slot.lua")),
    redrive: Script::new(include_str!("scripts/redrive.lua")),
    purge: Script::new(include_str!("scripts/purge.lua")),
});

/// Outcome of [`Store::accept`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// New payment, appended to the stream.
    Enqueued,
    /// Seen before with the same amount: nothing appended; its current status.
    Replay(Status),
    /// Seen before with another amount.
    Conflict { stored: Cents },
    /// The backlog is at its limit: nothing appended.
    Busy { backlog: u64 },
}

/// Outcome of [`Store::begin_attempt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Send now to this processor. `attempt` counts from 1; `unresolved_before` says an
    /// earlier attempt on the same processor may still be stored by it.
    Go {
        processor: Processor,
        attempt: u32,
        unresolved_before: bool,
    },
    /// The payment may still be stored by `processor` (attempt `attempt` there has no
    /// known outcome): only that processor may be used until a lookup asked after
    /// `safe.safe` says it does not hold it.
    Pinned {
        processor: Processor,
        safe: SafeAt,
        attempt: u32,
    },
    /// Already processed or dead-lettered: acknowledge and move on.
    Done(Status),
    /// The status hash is gone (purged).
    Missing,
    /// The stream entry is no longer pending on this consumer (another consumer claimed
    /// it): stop, send nothing.
    Lost,
}

/// A bound on Redis' clock: from `safe` on, a lookup answering 404 proves that no attempt
/// so far can still be stored. `now` is Redis' time when it said so, so the caller can
/// wait `safe - now` on its own monotonic clock without comparing two machines' clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SafeAt {
    pub safe: Millis,
    pub now: Millis,
}

/// How [`Store::settle`] knows the processor does not hold the payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// The attempt got a definite failure (its failure mode, 429, connection refused).
    Failed,
    /// A lookup answered 404; it was asked at this Redis time (or later).
    Absent { asked_at: Millis },
}

/// Outcome of [`Store::settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The in-flight mark is cleared: the payment may go anywhere.
    Cleared,
    /// Not the latest unresolved attempt any more: nothing changed.
    Stale,
    /// The processor said it holds the payment (422): it never leaves it on a 404.
    Held,
    /// Absence cannot be proven before this time (an earlier attempt may still be stored).
    Early(SafeAt),
}

/// How [`Store::dead_letter`] treats a payment a processor may still hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Refused while an attempt is unresolved; the pin is released.
    Final,
    /// Allowed while an attempt is unresolved; the pin and the mark stay (a re-drive must
    /// learn from that processor first).
    KeepPin,
    /// For an undecodable stream entry: like `KeepPin` if it is the payment's own entry,
    /// otherwise only the entry is dead-lettered and the payment is left alone.
    Entry,
}

/// Outcome of [`Store::record`] and [`Store::dead_letter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Now,
    AlreadyDone,
    Missing,
    /// Dead-letter refused: a processor may still hold the payment.
    Unresolved,
}

/// What `GET /payments/{id}` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentView {
    pub id: PaymentId,
    pub amount: Cents,
    pub status: Status,
    pub processor: Option<Processor>,
    pub requested_at: Option<Millis>,
    pub accepted_at: Millis,
    pub updated_at: Millis,
    pub attempts: u32,
    pub reason: Option<String>,
}

/// A `[from, to]` window, both inclusive, either open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    pub from: Option<Millis>,
    pub to: Option<Millis>,
}

/// Count and exact sum for one processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub requests: u64,
    pub cents: i128,
}

/// Both processors' totals over one window, read atomically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub default: Totals,
    pub fallback: Totals,
}

/// A processor's health as its `GET /payments/service-health` last reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthReport {
    pub failing: bool,
    pub min_response_ms: u64,
    /// When the poller received the answer.
    pub observed_at: Millis,
}

/// Outcome of [`Store::health_slot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthSlot {
    /// This process polls now (the poll time is already taken).
    Poll,
    /// This process holds the lease; the next poll is not due yet.
    Leader,
    /// Another process holds the lease.
    Follower,
}

/// Redis connection settings shared by the gateway and the worker.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    pub url: String,
    /// A command that takes longer than this fails (the gateway answers 503).
    pub response_timeout: Duration,
    pub connect_timeout: Duration,
    /// How long a terminal payment's status is kept (`PAYMENT_RETENTION`; see `retention`).
    pub payment_retention: Duration,
}

impl RedisOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            response_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            payment_retention: crate::retention::DEFAULT_PAYMENT_RETENTION,
        }
    }

    pub fn client(&self) -> Result<redis::Client, redis::RedisError> {
        redis::Client::open(self.url.as_str())
    }
}

/// Every Redis operation the gateway and worker perform. Cheap to clone: the connection
/// is multiplexed, so concurrent callers' commands are pipelined on one socket, and the
/// per-payment steps of the hot path (accept, begin, record) are batched: callers that
/// arrive while one script call is in flight share the next (see [`crate::batch`]).
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    keys: Keys,
    /// Milliseconds a terminal status hash lives (record.lua / fail.lua set its PEXPIRE).
    retention_ms: u64,
    batches: Arc<Batches>,
    lingers: Lingers,
    /// Most payments in one batched `begin` / `record` call, and entries in one `touch`
    /// call ([`Store::with_batch_max`]).
    batch_max: usize,
    /// Summaries read a second time without tenths ([`Store::summary_rereads`]).
    rereads: Arc<std::sync::atomic::AtomicU64>,
}

/// How long a batch of `begin` and of `record` calls may gather after its first request
/// (accept, which a client waits on, never lingers). A longer linger puts more payments in
/// one script call when they arrive apart (at a few hundred payments/s, without a linger,
/// each call carries one), at the price of that much delay on the step: a record's only
/// reader is the summary, whose promise has a 1.5 s margin; a begin delays the processor
/// call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lingers {
    pub begin: Duration,
    pub record: Duration,
}

impl Default for Lingers {
    fn default() -> Self {
        Self {
            begin: Duration::ZERO,
            record: RECORD_LINGER,
        }
    }
}

/// Most payments in one batched script call.
pub const MAX_BATCH: usize = 128;

/// How long a group commit of records may gather after its first payment by default.
/// Nobody waits on a record but the summary, whose promise has a 1.5 s margin.
const RECORD_LINGER: Duration = Duration::from_millis(1);

/// The batching tasks, started on first use (on the caller's runtime).
#[derive(Default)]
struct Batches {
    accept: OnceLock<Batcher<(PaymentId, Cents, u64), Accepted>>,
    begin: OnceLock<Batcher<BeginRequest, Attempt>>,
    record: OnceLock<Batcher<RecordRequest, Result<Recorded, StoreError>>>,
}

/// One payment's part of a batched `begin.lua` call.
#[derive(Debug, Clone)]
pub struct BeginRequest {
    pub id: PaymentId,
    pub wanted: Processor,
    pub consumer: String,
    pub entry_id: String,
    pub bound: Duration,
}

/// One payment's part of a batched `record.lua` call.
#[derive(Debug, Clone)]
pub struct RecordRequest {
    pub id: PaymentId,
    pub amount: Cents,
    pub processor: Processor,
    pub requested_at: Millis,
    pub entry_id: String,
}

impl Store {
    /// A store whose connection is established on first use and re-established after a
    /// failure; a process can start while Redis is down and report not-ready.
    pub fn connect_lazy(options: &RedisOptions, keys: Keys) -> Result<Self, redis::RedisError> {
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(options.response_timeout))
            .set_connection_timeout(Some(options.connect_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(options.client()?, config)?;
        let retention_ms = options.payment_retention.as_millis() as u64;
        Ok(Self {
            conn,
            keys,
            batches: Arc::default(),
            retention_ms,
            lingers: Lingers::default(),
            batch_max: MAX_BATCH,
            rereads: Arc::default(),
        })
    }

    /// The same store with other lingers for its `begin` and `record` batches; call before
    /// the first `begin`/`record` (a batching task keeps the linger it started with).
    pub fn with_lingers(mut self, lingers: Lingers) -> Self {
        self.lingers = lingers;
        self
    }

    /// The same store with at most `max` payments (1..=[`MAX_BATCH`]) per script call of
    /// the per-payment [`Store::begin_attempt`] and [`Store::record`] (their batching tasks
    /// keep the maximum they started with, so call this before the first of them), and
    /// entries per [`Store::touch`] call; `begin_batch` / `record_batch` run what they are
    /// given. Redis runs nothing else while a script runs, so this bounds how long one
    /// call holds every accept behind it.
    pub fn with_batch_max(mut self, max: usize) -> Self {
        self.batch_max = max.clamp(1, MAX_BATCH);
        self
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A clone of the multiplexed connection, for callers with their own commands
    /// (health cache, stream reclaim).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// Creates the stream and its consumer group if absent (reading from the start, so
    /// entries appended before the group existed are consumed too).
    pub async fn ensure_group(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let created: Result<String, redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.keys.stream())
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The batching task of one script, started on first use: `flush` runs one script call
    /// for a batch, on a store without batching tasks of its own.
    fn batcher<'a, Req, Resp, Fut>(
        &self,
        cell: &'a OnceLock<Batcher<Req, Resp>>,
        op: &'static str,
        max: usize,
        linger: Duration,
        flush: fn(Store, Vec<Req>) -> Fut,
    ) -> &'a Batcher<Req, Resp>
    where
        Req: Send + 'static,
        Resp: Send + 'static,
        Fut: std::future::Future<Output = Result<Vec<Resp>, StoreError>> + Send + 'static,
    {
        cell.get_or_init(|| {
            let store = self.unbatched();
            Batcher::spawn(op, max, 1, linger, move |batch| flush(store.clone(), batch))
        })
    }

    /// A store on the same connection without batching tasks: what a batch flush uses.
    fn unbatched(&self) -> Store {
        Store {
            conn: self.conn.clone(),
            keys: self.keys.clone(),
            retention_ms: self.retention_ms,
            batches: Arc::default(),
            lingers: self.lingers,
            batch_max: self.batch_max,
            rereads: self.rereads.clone(),
        }
    }

    /// Creates the status hash and appends the stream entry, atomically; see `accept.lua`.
    /// Concurrent calls share one script call.
    pub async fn accept(
        &self,
        id: &PaymentId,
        amount: Cents,
        backlog_limit: u64,
    ) -> Result<Accepted, StoreError> {
        let batcher = self.batcher(
            &self.batches.accept,
            "accept",
            MAX_BATCH,
            Duration::ZERO,
            |store, batch| async move { store.accept_batch(&batch).await },
        );
        batcher.call((*id, amount, backlog_limit)).await
    }

    /// `accept.lua` for several payments at once (the backlog limit of the first applies).
    pub async fn accept_batch(
        &self,
        batch: &[(PaymentId, Cents, u64)],
    ) -> Result<Vec<Accepted>, StoreError> {
        self.accept_batch_on(&mut self.conn.clone(), batch).await
    }

    /// [`Store::accept_batch`] over another connection: what `paystream-load redis-pool`
    /// uses to run the same script call over pooled connections.
    pub async fn accept_batch_on<C: ConnectionLike + Send>(
        &self,
        conn: &mut C,
        batch: &[(PaymentId, Cents, u64)],
    ) -> Result<Vec<Accepted>, StoreError> {
        let Some((_, _, backlog_limit)) = batch.first() else {
            return Ok(Vec::new());
        };
        let mut buf = [0u8; 36];
        let started = std::time::Instant::now();
        let mut invocation = SCRIPTS.accept.prepare_invoke();
        invocation.key(self.keys.stream()).arg(*backlog_limit);
        for (id, amount, _) in batch {
            invocation
                .key(self.keys.payment(id))
                .arg(id.encode(&mut buf))
                .arg(amount.get());
        }
        let replies: Vec<Value> = invocation.invoke_async(conn).await?;
        observe("accept", started);
        replies.iter().map(accepted).collect()
    }

    /// The payment's status, or `None` when unknown.
    pub async fn payment(&self, id: &PaymentId) -> Result<Option<PaymentView>, StoreError> {
        let mut conn = self.conn.clone();
        let values: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.keys.payment(id))
            .arg(&[
                field::AMOUNT,
                field::STATUS,
                field::PROCESSOR,
                field::REQUESTED_AT,
                field::ACCEPTED_AT,
                field::UPDATED_AT,
                field::ATTEMPTS,
                field::REASON,
            ])
            .query_async(&mut conn)
            .await?;
        let [amt, st, proc, req, at, upd, att, err]: [Option<String>; 8] = values
            .try_into()
            .map_err(|v| StoreError::Unexpected(format!("HMGET: {v:?}")))?;
        let (Some(amt), Some(st)) = (amt, st) else {
            return Ok(None);
        };
        let parse_ms = |v: Option<String>| v.and_then(|s| s.parse::<Millis>().ok());
        let status: Status = st
            .parse()
            .map_err(|_| StoreError::Unexpected(format!("status {st:?}")))?;
        Ok(Some(PaymentView {
            id: *id,
            amount: Cents::new(amt.parse().unwrap_or_default()),
            // The pinned processor is internal until the payment is processed.
            processor: if status == Status::Processed {
                proc.and_then(|p| p.parse().ok())
            } else {
                None
            },
            status,
            requested_at: parse_ms(req),
            accepted_at: parse_ms(at).unwrap_or_default(),
            updated_at: parse_ms(upd).unwrap_or_default(),
            attempts: att.and_then(|a| a.parse().ok()).unwrap_or_default(),
            reason: err,
        }))
    }

    /// Confirms `consumer` still owns `entry_id`, pins the payment to `wanted` and marks an
    /// attempt in flight; see `begin.lua`. `bound`: from now, how long a call of this
    /// attempt could still end up stored (send window + client timeout + queue and delay).
    /// Concurrent calls share one script call.
    pub async fn begin_attempt(
        &self,
        id: &PaymentId,
        wanted: Processor,
        consumer: &str,
        entry_id: &str,
        bound: Duration,
    ) -> Result<Attempt, StoreError> {
        let batcher = self.batcher(
            &self.batches.begin,
            "begin",
            self.batch_max,
            self.lingers.begin,
            |store, batch| async move { store.begin_batch(&batch).await },
        );
        batcher
            .call(BeginRequest {
                id: *id,
                wanted,
                consumer: consumer.to_string(),
                entry_id: entry_id.to_string(),
                bound,
            })
            .await
    }

    /// `begin.lua` for several payments at once. Requests of different consumers go in
    /// separate script calls (the script checks ownership for one consumer).
    pub async fn begin_batch(&self, batch: &[BeginRequest]) -> Result<Vec<Attempt>, StoreError> {
        let mut out = Vec::with_capacity(batch.len());
        let mut rest = batch;
        while let Some(first) = rest.first() {
            let same = rest
                .iter()
                .take_while(|r| r.consumer == first.consumer)
                .count();
            let (group, tail) = rest.split_at(same);
            out.extend(self.begin_one_consumer(group).await?);
            rest = tail;
        }
        Ok(out)
    }

    async fn begin_one_consumer(&self, batch: &[BeginRequest]) -> Result<Vec<Attempt>, StoreError> {
        let Some(first) = batch.first() else {
            return Ok(Vec::new());
        };
        let started = std::time::Instant::now();
        let mut invocation = SCRIPTS.begin.prepare_invoke();
        invocation
            .key(self.keys.stream())
            .arg(GROUP)
            .arg(&first.consumer);
        for r in batch {
            invocation
                .key(self.keys.payment(&r.id))
                .arg(r.wanted.as_str())
                .arg(&r.entry_id)
                .arg(r.bound.as_millis() as u64);
        }
        let mut conn = self.conn.clone();
        let replies: Vec<Value> = invocation.invoke_async(&mut conn).await?;
        observe("begin", started);
        replies.iter().map(attempt).collect()
    }

    /// Attempt `attempt` on `processor` ended without a usable answer: nothing of it can
    /// reach the processor any more, so it can only be stored within `grace` (queue wait +
    /// delay) from now; `held`: the processor answered 422 (it claims to hold the payment).
    /// Returns the new bound, or `None` when the attempt is not the latest unresolved one
    /// any more; see `unanswered.lua`.
    pub async fn unanswered(
        &self,
        id: &PaymentId,
        processor: Processor,
        attempt: u32,
        grace: Duration,
        held: bool,
    ) -> Result<Option<SafeAt>, StoreError> {
        let started = std::time::Instant::now();
        let mut conn = self.conn.clone();
        let reply: Vec<Value> = SCRIPTS
            .unanswered
            .key(self.keys.payment(id))
            .arg(processor.as_str())
            .arg(attempt)
            .arg(grace.as_millis() as u64)
            .arg(if held { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await?;
        observe("unanswered", started);
        let safe = SafeAt {
            safe: int_at(&reply, 1).unwrap_or_default(),
            now: int_at(&reply, 2).unwrap_or_default(),
        };
        match reply.first().and_then(as_str) {
            Some("ok") => Ok(Some(safe)),
            Some("stale") => Ok(None),
            _ => Err(StoreError::Unexpected(format!("unanswered: {reply:?}"))),
        }
    }

    /// `processor` does not hold the payment, as learned by attempt `attempt`: clears the
    /// in-flight mark when that is proven; see `settle.lua`.
    pub async fn settle(
        &self,
        id: &PaymentId,
        processor: Processor,
        attempt: u32,
        how: Settle,
    ) -> Result<Settled, StoreError> {
        let started = std::time::Instant::now();
        let mut conn = self.conn.clone();
        let (mode, asked_at) = match how {
            Settle::Failed => ("failed", 0),
            Settle::Absent { asked_at } => ("absent", asked_at),
        };
        let reply: Vec<Value> = SCRIPTS
            .settle
            .key(self.keys.payment(id))
            .arg(processor.as_str())
            .arg(attempt)
            .arg(mode)
            .arg(asked_at)
            .invoke_async(&mut conn)
            .await?;
        observe("settle", started);
        match reply.first().and_then(as_str) {
            Some("cleared") => Ok(Settled::Cleared),
            Some("stale") => Ok(Settled::Stale),
            Some("held") => Ok(Settled::Held),
            Some("early") => Ok(Settled::Early(SafeAt {
                safe: int_at(&reply, 1).unwrap_or_default(),
                now: int_at(&reply, 2).unwrap_or_default(),
            })),
            _ => Err(StoreError::Unexpected(format!("settle: {reply:?}"))),
        }
    }

    /// Records a payment stored by `processor` with `requested_at` exactly as the processor
    /// holds it, updates the summary and acknowledges `entry_id` — atomically, idempotently.
    /// Concurrent calls share one script call (a group commit).
    pub async fn record(
        &self,
        id: &PaymentId,
        amount: Cents,
        processor: Processor,
        requested_at: Millis,
        entry_id: &str,
    ) -> Result<Recorded, StoreError> {
        let batcher = self.batcher(
            &self.batches.record,
            "record",
            self.batch_max,
            self.lingers.record,
            |store, batch| async move { store.record_batch(&batch).await },
        );
        batcher
            .call(RecordRequest {
                id: *id,
                amount,
                processor,
                requested_at,
                entry_id: entry_id.to_string(),
            })
            .await?
    }

    /// `record.lua` for several payments at once: one script call, one summary update per
    /// second, minute, hour and day touched. One result per payment (a payment whose
    /// second's bucket would overflow fails alone).
    pub async fn record_batch(
        &self,
        batch: &[RecordRequest],
    ) -> Result<Vec<Result<Recorded, StoreError>>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut buf = [0u8; 36];
        let started = std::time::Instant::now();
        let mut invocation = SCRIPTS.record.prepare_invoke();
        invocation
            .key(self.keys.stream())
            .arg(GROUP)
            .arg(self.retention_ms);
        for processor in Processor::ALL {
            let k = self.keys.summary(processor);
            invocation
                .key(k.counts)
                .key(k.cents)
                .key(k.days)
                .key(k.events);
        }
        for r in batch {
            invocation
                .key(self.keys.payment(&r.id))
                .arg(r.id.encode(&mut buf))
                .arg(r.processor.as_str())
                .arg(r.requested_at)
                .arg(r.requested_at.div_euclid(1000))
                .arg(r.amount.get())
                .arg(&r.entry_id);
        }
        let mut conn = self.conn.clone();
        let replies: Vec<Value> = invocation.invoke_async(&mut conn).await?;
        observe("record", started);
        Ok(replies
            .iter()
            .map(|r| recorded(as_str(r).unwrap_or_default()))
            .collect())
    }

    /// Dead-letters a payment with `reason`, unless it was processed meanwhile; see
    /// `fail.lua` for `mode`. `amount` is the text copied to the dead letter (cents; empty
    /// = the status hash's).
    pub async fn dead_letter(
        &self,
        id: &PaymentId,
        amount: &str,
        reason: &str,
        entry_id: &str,
        mode: FailMode,
    ) -> Result<Recorded, StoreError> {
        let mut buf = [0u8; 36];
        let started = std::time::Instant::now();
        let mut conn = self.conn.clone();
        let reply: String = SCRIPTS
            .fail
            .key(self.keys.payment(id))
            .key(self.keys.stream())
            .key(self.keys.dead_letters())
            .arg(id.encode(&mut buf))
            .arg(amount)
            .arg(reason)
            .arg(entry_id)
            .arg(GROUP)
            .arg(match mode {
                FailMode::Final => "",
                FailMode::KeepPin => "keep",
                FailMode::Entry => "entry",
            })
            .arg(self.retention_ms)
            .invoke_async(&mut conn)
            .await?;
        observe("dead_letter", started);
        match reply.as_str() {
            "processed" => Ok(Recorded::AlreadyDone),
            "unresolved" => Ok(Recorded::Unresolved),
            "foreign" => Ok(Recorded::Missing),
            other => recorded(other),
        }
    }

    /// A stream entry that names no payment (its id field is missing or not a UUID): a
    /// copy with the reason goes to the dead letters and the entry is acknowledged, in one
    /// transaction, so nothing is dropped silently.
    pub async fn dead_letter_entry(&self, entry_id: &str, reason: &str) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("XADD")
            .arg(self.keys.dead_letters())
            .arg("*")
            .arg("entry")
            .arg(entry_id)
            .arg("reason")
            .arg(reason)
            .ignore();
        self.ack_in(pipe, entry_id).await
    }

    /// Both processors' totals over `window`, read in one atomic step (`MULTI`/`EXEC`):
    /// `summary.lua` adds the whole buckets — at most ~300 plus the days of the window,
    /// whatever its length — and the partial seconds at its edges are read here to the
    /// millisecond: their whole tenths of a second from their buckets, and the rest (at most
    /// half a tenth at each end) per payment from `ev` and the compacted detail (Redis sends
    /// them; parsing them costs this process, not Redis' single thread). When an edge
    /// second's tenths do not add up to it (payments recorded by a revision before the
    /// tenths), the whole window is read again, in a second atomic step, without tenths.
    pub async fn summary(&self, window: Window) -> Result<Summary, StoreError> {
        let plan = SummaryPlan::of(window, Edges::Tenths);
        if let Some(summary) = self.read_summary(&plan).await? {
            return Ok(summary);
        }
        self.rereads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        metrics::counter!(crate::metrics::SUMMARY_REREADS_TOTAL).increment(1);
        self.read_summary(&SummaryPlan::of(window, Edges::Payments))
            .await?
            .ok_or_else(|| StoreError::Unexpected("summary: no tenths read, yet refused".into()))
    }

    /// How many summaries this store (and its clones) read a second time without tenths.
    pub fn summary_rereads(&self) -> u64 {
        self.rereads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One atomic read of `plan`; `None` when an edge second's tenths do not add up to it.
    async fn read_summary(&self, plan: &SummaryPlan) -> Result<Option<Summary>, StoreError> {
        if !plan.reads_edges() && !plan.reads_buckets() {
            // An empty window (`from` after `to`): nothing to read.
            return Ok(Some(Summary::default()));
        }
        let keys = Processor::ALL.map(|p| self.keys.summary(p));
        let mut invocation = SCRIPTS.summary.prepare_invoke();
        for k in &keys {
            invocation
                .key(&k.counts)
                .key(&k.cents)
                .key(&k.days)
                .key(&k.legacy_seconds);
        }
        for arg in plan.args() {
            invocation.arg(arg);
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        let buckets = plan.reads_buckets();
        if buckets {
            pipe.invoke_script(&invocation);
        }
        for k in &keys {
            if plan.reads_edges() {
                // From which second the detail is kept (`drop_detail.lua`).
                pipe.cmd("GET").arg(&k.detail_kept_from);
            }
            for e in &plan.edges {
                let second = e.from.div_euclid(1000);
                pipe.cmd("ZRANGEBYSCORE")
                    .arg(&k.events)
                    .arg(e.from)
                    .arg(e.to);
                pipe.cmd("HGET").arg(&k.detail).arg(second);
                // Whether the second has payments: one without needs no detail.
                pipe.cmd("HGET").arg(&k.counts).arg(second);
            }
            for e in &plan.fine {
                let second = e.second();
                pipe.cmd("HGET").arg(&k.detail).arg(second);
                // The second's count and cents, then its ten tenths'.
                let tenths = (second * 10..second * 10 + 10).map(|t| Bucket::Tenth(t).field());
                pipe.cmd("HMGET")
                    .arg(&k.counts)
                    .arg(second)
                    .arg(tenths.clone().collect::<Vec<_>>());
                pipe.cmd("HMGET")
                    .arg(&k.cents)
                    .arg(second)
                    .arg(tenths.collect::<Vec<_>>());
                for piece in &e.pieces {
                    pipe.cmd("ZRANGEBYSCORE")
                        .arg(&k.events)
                        .arg(piece.from)
                        .arg(piece.to);
                }
            }
        }
        let mut conn = self.conn.clone();
        let started = std::time::Instant::now();
        let reply: Vec<Value> = match pipe.query_async(&mut conn).await {
            // After a Redis restart (or SCRIPT FLUSH): load it, then once more.
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                invocation.load_async(&mut conn).await?;
                pipe.query_async(&mut conn).await?
            }
            other => other?,
        };
        observe("summary", started);
        let mut reply = reply.into_iter();
        let mut sums = [Sum::default(); 2];
        if buckets {
            match reply.next() {
                Some(Value::Array(sides)) if sides.len() == 2 => {
                    for (sum, side) in sums.iter_mut().zip(sides) {
                        add_buckets(sum, side)?;
                    }
                }
                other => return Err(StoreError::Unexpected(format!("summary: {other:?}"))),
            }
        }
        let missing = || StoreError::Unexpected("summary: edges missing".into());
        for sum in &mut sums {
            let kept_from = if plan.reads_edges() {
                let reply = reply.next();
                let text = reply.as_ref().and_then(as_str);
                text.map(|s| {
                    s.parse::<i64>()
                        .map_err(|_| StoreError::Unexpected(format!("summary ms_from {s:?}")))
                })
                .transpose()?
            } else {
                None
            };
            // An edge in a second with payments whose detail was dropped cannot be read
            // exactly.
            let refuse = |second: i64, paid: bool| match kept_from {
                Some(kept) if paid && second < kept => Err(StoreError::DetailDropped {
                    kept_from: kept * 1000,
                }),
                _ => Ok(()),
            };
            for e in &plan.edges {
                let (Some(events), Some(detail), Some(count)) =
                    (reply.next(), reply.next(), reply.next())
                else {
                    return Err(missing());
                };
                let second = e.from.div_euclid(1000);
                refuse(second, as_str(&count).is_some_and(|n| n != "0"))?;
                sum.add(per_payment(&events, &detail, e)?, e.subtract);
            }
            for e in &plan.fine {
                let (Some(detail), Some(counts), Some(cents)) =
                    (reply.next(), reply.next(), reply.next())
                else {
                    return Err(missing());
                };
                let second = e.second();
                let counts = integers(&counts)?;
                let cents = integers(&cents)?;
                let (Some((&count, tenths)), Some((&second_cents, cents))) =
                    (counts.split_first(), cents.split_first())
                else {
                    return Err(StoreError::Unexpected(format!("summary tenths {counts:?}")));
                };
                if tenths.len() != 10 || cents.len() != 10 {
                    return Err(StoreError::Unexpected(format!("summary tenths {counts:?}")));
                }
                refuse(second, count != 0)?;
                let uses_tenths = !e.tenths.is_empty() || e.pieces.iter().any(|p| p.subtract);
                let add_up = |v: &[i64]| v.iter().map(|&n| i128::from(n)).sum::<i128>();
                if uses_tenths
                    && (add_up(tenths) != i128::from(count)
                        || add_up(cents) != i128::from(second_cents))
                {
                    return Ok(None);
                }
                let mut part = Sum::default();
                for &t in &e.tenths {
                    // A tenth of this second: 0..10.
                    let k = (t - second * 10) as usize;
                    part.requests += i128::from(tenths[k]);
                    part.cents += i128::from(cents[k]);
                }
                for piece in &e.pieces {
                    let events = reply.next().ok_or_else(missing)?;
                    part.add(per_payment(&events, &detail, piece)?, piece.subtract);
                }
                sum.add(part, false);
            }
        }
        let [default, fallback] = sums.map(Sum::totals);
        Ok(Some(Summary {
            default: default?,
            fallback: fallback?,
        }))
    }

    /// Acknowledges and deletes an entry whose payment needs no work (already done, purged,
    /// or not decodable).
    pub async fn ack(&self, entry_id: &str) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.ack_in(pipe, entry_id).await
    }

    /// Runs `pipe` with `XACK` + `XDEL` of `entry_id` appended.
    async fn ack_in(&self, mut pipe: redis::Pipeline, entry_id: &str) -> Result<(), StoreError> {
        pipe.cmd("XACK")
            .arg(self.keys.stream())
            .arg(GROUP)
            .arg(entry_id)
            .ignore()
            .cmd("XDEL")
            .arg(self.keys.stream())
            .arg(entry_id)
            .ignore();
        let mut conn = self.conn.clone();
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// Resets the idle time of `entry_ids` still owned by `consumer` and returns those it
    /// no longer owns (claimed by another consumer, or acknowledged); see `touch.lua`.
    /// One script call per batch of the store's batch maximum ([`Store::with_batch_max`];
    /// the worker's `SCRIPT_BATCH_MAX`): a worker with hundreds in flight held Redis for up
    /// to 5.6 ms in one call, and accepts arriving meanwhile waited behind it (README,
    /// "What the p99 is made of"). Each entry is touched on its own, so the split changes
    /// nothing else; a call that fails part-way leaves the earlier calls' entries touched.
    pub async fn touch(
        &self,
        consumer: &str,
        entry_ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut lost = Vec::new();
        for chunk in entry_ids.chunks(self.batch_max) {
            let mut invocation = SCRIPTS.touch.prepare_invoke();
            invocation.key(self.keys.stream()).arg(GROUP).arg(consumer);
            for id in chunk {
                invocation.arg(id);
            }
            let mut conn = self.conn.clone();
            let part: Vec<String> = invocation.invoke_async(&mut conn).await?;
            lost.extend(part);
        }
        Ok(lost)
    }

    /// Takes or renews the health-poller lease of `processor` and, when due, the next
    /// poll; see `health_slot.lua`.
    pub async fn health_slot(
        &self,
        processor: Processor,
        me: &str,
        interval: Duration,
        lease_ttl: Duration,
    ) -> Result<HealthSlot, StoreError> {
        let mut conn = self.conn.clone();
        let slot: i64 = SCRIPTS
            .health_slot
            .key(self.keys.health_lease(processor))
            .key(self.keys.health(processor))
            .arg(me)
            .arg(interval.as_millis() as u64)
            .arg(lease_ttl.as_millis().max(1) as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(match slot {
            1 => HealthSlot::Poll,
            0 => HealthSlot::Leader,
            _ => HealthSlot::Follower,
        })
    }

    /// Publishes a health report for every process to read.
    pub async fn publish_health(
        &self,
        processor: Processor,
        report: HealthReport,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: () = redis::cmd("HSET")
            .arg(self.keys.health(processor))
            .arg("failing")
            .arg(report.failing as u8)
            .arg("min")
            .arg(report.min_response_ms)
            .arg("at")
            .arg(report.observed_at)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Both processors' latest health reports (`None` where none was published yet).
    pub async fn read_health(&self) -> Result<[Option<HealthReport>; 2], StoreError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for processor in Processor::ALL {
            pipe.cmd("HMGET")
                .arg(self.keys.health(processor))
                .arg(&["failing", "min", "at"]);
        }
        let replies: Vec<(Option<u8>, Option<u64>, Option<Millis>)> =
            pipe.query_async(&mut conn).await?;
        let mut out = [None, None];
        for (slot, reply) in out.iter_mut().zip(replies) {
            if let (Some(failing), Some(min), Some(at)) = reply {
                *slot = Some(HealthReport {
                    failing: failing == 1,
                    min_response_ms: min,
                    observed_at: at,
                });
            }
        }
        Ok(out)
    }

    /// Re-queues up to `limit` dead-lettered payments, reading the dead letters once from
    /// the oldest; returns how many moved. Letters that name no payment stay.
    pub async fn redrive_dead_letters(&self, limit: u64) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let mut moved = 0u64;
        let mut after = String::from("0-0");
        while moved < limit {
            let (n, last): (u64, String) = SCRIPTS
                .redrive
                .key(self.keys.dead_letters())
                .key(self.keys.stream())
                .arg(self.keys.payment_prefix())
                .arg((limit - moved).min(1_000))
                .arg(&after)
                .invoke_async(&mut conn)
                .await?;
            moved += n;
            if last.is_empty() {
                break;
            }
            after = last;
        }
        Ok(moved)
    }

    /// Number of dead letters waiting.
    pub async fn dead_letter_count(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("XLEN")
            .arg(self.keys.dead_letters())
            .query_async(&mut conn)
            .await?)
    }

    /// The consumer group's pending entries and lag (entries not yet delivered).
    pub async fn group_info(&self) -> Result<(u64, u64), StoreError> {
        let mut conn = self.conn.clone();
        let groups: Vec<std::collections::HashMap<String, Value>> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(self.keys.stream())
            .query_async(&mut conn)
            .await?;
        let int = |v: Option<&Value>| match v {
            Some(Value::Int(n)) => (*n).max(0) as u64,
            _ => 0,
        };
        Ok(groups
            .iter()
            .find(|g| matches!(g.get("name"), Some(v) if as_str(v) == Some(GROUP)))
            .map(|g| (int(g.get("pending")), int(g.get("lag"))))
            .unwrap_or_default())
    }

    /// Number of entries in the stream (queued or in flight: processed ones are deleted).
    pub async fn backlog(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("XLEN")
            .arg(self.keys.stream())
            .query_async(&mut conn)
            .await?)
    }

    /// Deletes every payment, status, summary and dead letter; keeps the consumer group.
    /// A payment goes together with its stream entry (`purge.lua`), and payments accepted
    /// while the purge runs are kept whole: a concurrent POST never leaves a "queued"
    /// status without its entry.
    pub async fn purge(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let info: Result<std::collections::HashMap<String, Value>, _> = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(self.keys.stream())
            .query_async(&mut conn)
            .await;
        let last = match info {
            Ok(info) => info
                .get("last-generated-id")
                .and_then(as_str)
                .unwrap_or("0-0")
                .to_string(),
            // No stream yet.
            Err(e)
                if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) =>
            {
                "0-0".to_string()
            }
            Err(e) => return Err(e.into()),
        };
        let mut deleted = 0u64;
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(self.keys.payment_pattern())
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            if !batch.is_empty() {
                let mut invocation = SCRIPTS.purge.prepare_invoke();
                invocation.key(self.keys.stream());
                for key in &batch {
                    invocation.key(key);
                }
                invocation.arg(GROUP).arg(&last);
                let n: u64 = invocation.invoke_async(&mut conn).await?;
                deleted += n;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut pipe = redis::pipe();
        for processor in Processor::ALL {
            pipe.cmd("UNLINK")
                .arg(&self.keys.summary(processor).all())
                .ignore();
        }
        pipe.cmd("UNLINK").arg(self.keys.dead_letters()).ignore();
        // Entries up to where the purge started whose payment is gone (all of them now).
        pipe.cmd("XTRIM")
            .arg(self.keys.stream())
            .arg("MINID")
            .arg(next_entry_id(&last))
            .ignore();
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(deleted)
    }

    /// Runs a raw command on the shared connection (for worker-side stream maintenance).
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        let value = conn.req_packed_command(cmd).await?;
        redis::from_redis_value(value).map_err(|e| StoreError::Unexpected(e.to_string()))
    }

    /// Decodes XREADGROUP / XCLAIM style entries (`[[id, [field, value, ...]], ...]`).
    pub fn decode_entries(
        entries: &[Value],
    ) -> (Vec<StreamEntry>, Vec<(String, entry::EntryError)>) {
        let mut good = Vec::with_capacity(entries.len());
        let mut bad = Vec::new();
        for item in entries {
            let Value::Array(parts) = item else { continue };
            let (Some(id), fields) = (parts.first().and_then(as_str), parts.get(1)) else {
                continue;
            };
            let fields: &[Value] = match fields {
                Some(Value::Array(f)) => f,
                _ => &[],
            };
            match entry::decode(id.to_string(), fields) {
                Ok(e) => good.push(e),
                Err(e) => bad.push((id.to_string(), e)),
            }
        }
        (good, bad)
    }
}

/// One payment's reply of `accept.lua`.
fn accepted(reply: &Value) -> Result<Accepted, StoreError> {
    let Value::Array(parts) = reply else {
        return Err(StoreError::Unexpected(format!("accept: {reply:?}")));
    };
    let value = parts.get(1).and_then(as_str).unwrap_or_default();
    match parts.first().and_then(as_str) {
        Some("ok") => Ok(Accepted::Enqueued),
        Some("dup") => {
            Ok(Accepted::Replay(value.parse().map_err(|_| {
                StoreError::Unexpected(format!("status {value:?}"))
            })?))
        }
        Some("conflict") => Ok(Accepted::Conflict {
            stored: Cents::new(value.parse().unwrap_or_default()),
        }),
        Some("busy") => Ok(Accepted::Busy {
            backlog: value.parse().unwrap_or_default(),
        }),
        _ => Err(StoreError::Unexpected(format!("accept: {reply:?}"))),
    }
}

/// One payment's reply of `begin.lua`.
fn attempt(reply: &Value) -> Result<Attempt, StoreError> {
    let Value::Array(parts) = reply else {
        return Err(StoreError::Unexpected(format!("begin: {reply:?}")));
    };
    let text = |i: usize| parts.get(i).and_then(as_str);
    let int = |i: usize| int_at(parts, i);
    let processor = |i: usize| {
        text(i)
            .and_then(|p| p.parse::<Processor>().ok())
            .ok_or_else(|| StoreError::Unexpected(format!("begin: {reply:?}")))
    };
    match text(0) {
        Some("go") => Ok(Attempt::Go {
            processor: processor(1)?,
            attempt: int(2).unwrap_or(1) as u32,
            unresolved_before: text(3) == Some("1"),
        }),
        Some("pinned") => Ok(Attempt::Pinned {
            processor: processor(1)?,
            safe: SafeAt {
                safe: int(2).unwrap_or_default(),
                now: int(4).unwrap_or_default(),
            },
            attempt: int(3).unwrap_or_default() as u32,
        }),
        Some("done") => Ok(Attempt::Done(
            text(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(Status::Processed),
        )),
        Some("missing") => Ok(Attempt::Missing),
        Some("lost") => Ok(Attempt::Lost),
        _ => Err(StoreError::Unexpected(format!("begin: {reply:?}"))),
    }
}

/// The integer at `i` of a script's reply (Lua numbers arrive as integers, fields of a
/// hash as text).
fn int_at(reply: &[Value], i: usize) -> Option<i64> {
    match reply.get(i) {
        Some(Value::Int(n)) => Some(*n),
        Some(v) => as_str(v).and_then(|s| s.parse().ok()),
        None => None,
    }
}

/// The smallest stream entry id after `id` (`XTRIM MINID` keeps ids at or above it).
fn next_entry_id(id: &str) -> String {
    match id.split_once('-') {
        Some((ms, seq)) => match seq.parse::<u64>() {
            Ok(seq) if seq < u64::MAX => format!("{ms}-{}", seq + 1),
            _ => format!("{}-0", ms.parse::<u64>().unwrap_or(0).saturating_add(1)),
        },
        None => "0-1".to_string(),
    }
}

/// Records how long a store operation took (one histogram sample: cheap enough for the
/// hot path).
fn observe(op: &'static str, started: std::time::Instant) {
    metrics::histogram!(crate::metrics::REDIS_COMMAND_DURATION_SECONDS, "op" => op)
        .record(started.elapsed().as_secs_f64());
}

fn recorded(reply: &str) -> Result<Recorded, StoreError> {
    match reply {
        "ok" => Ok(Recorded::Now),
        "dup" => Ok(Recorded::AlreadyDone),
        "missing" => Ok(Recorded::Missing),
        "overflow" => Err(StoreError::Unexpected(
            "summary bucket would overflow: not recorded".into(),
        )),
        other => Err(StoreError::Unexpected(format!("record: {other:?}"))),
    }
}

/// A processor's running total while a summary reply is read: signed, since the rest of an
/// edge second read whole is subtracted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sum {
    requests: i128,
    cents: i128,
}

impl Sum {
    fn add(&mut self, part: Sum, subtract: bool) {
        let sign = if subtract { -1 } else { 1 };
        self.requests += sign * part.requests;
        self.cents += sign * part.cents;
    }

    fn totals(self) -> Result<Totals, StoreError> {
        let requests = u64::try_from(self.requests)
            .map_err(|_| StoreError::Unexpected(format!("summary count {}", self.requests)))?;
        Ok(Totals {
            requests,
            cents: self.cents,
        })
    }
}

/// One processor's part of `summary.lua`'s reply: `{count, {cents of each bucket}}`.
fn add_buckets(sum: &mut Sum, side: Value) -> Result<(), StoreError> {
    let Value::Array(parts) = side else {
        return Err(StoreError::Unexpected(format!("summary side: {side:?}")));
    };
    let mut parts = parts.into_iter();
    if let Some(Value::Int(n)) = parts.next() {
        sum.requests += i128::from(n);
    }
    if let Some(Value::Array(cents)) = parts.next() {
        for c in &cents {
            sum.cents += as_str(c)
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| StoreError::Unexpected(format!("summary cents {c:?}")))?
                as i128;
        }
    }
    Ok(())
}

/// Adds the payments of an edge range read from the per-payment index (`<id>:<cents>`).
fn add_events(sum: &mut Sum, events: &Value) -> Result<(), StoreError> {
    let members = match events {
        Value::Array(members) => members.as_slice(),
        Value::Nil => &[],
        other => return Err(StoreError::Unexpected(format!("summary events: {other:?}"))),
    };
    for member in members {
        let cents = as_str(member)
            .and_then(|m| m.rsplit_once(':'))
            .and_then(|(_, c)| c.parse::<i64>().ok())
            .ok_or_else(|| StoreError::Unexpected(format!("summary member {member:?}")))?;
        sum.requests += 1;
        sum.cents += i128::from(cents);
    }
    Ok(())
}

/// The payments of `range` (within one second) read one by one: its `ev` members
/// (`events`, a `ZRANGEBYSCORE` reply) and its offsets in the second's compacted `detail`.
fn per_payment(events: &Value, detail: &Value, range: &EdgeRange) -> Result<Sum, StoreError> {
    let mut sum = Sum::default();
    add_events(&mut sum, events)?;
    if let Some(packed) = as_str(detail) {
        let start = range.from.div_euclid(1000) * 1000;
        add_compacted(&mut sum, packed, range.from - start, range.to - start)?;
    }
    Ok(sum)
}

/// The integers of an `HMGET` reply, 0 for an absent field.
fn integers(reply: &Value) -> Result<Vec<i64>, StoreError> {
    let Value::Array(fields) = reply else {
        return Err(StoreError::Unexpected(format!("summary HMGET {reply:?}")));
    };
    fields
        .iter()
        .map(|f| match f {
            Value::Nil => Ok(0),
            f => as_str(f)
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| StoreError::Unexpected(format!("summary field {f:?}"))),
        })
        .collect()
}

/// Adds the millisecond offsets `lo..=hi` of one second's compacted detail
/// (`"<offset>:<count>:<cents> ..."`, `compact.lua`).
fn add_compacted(sum: &mut Sum, packed: &str, lo: i64, hi: i64) -> Result<(), StoreError> {
    let bad = |entry: &str| StoreError::Unexpected(format!("summary detail {entry:?}"));
    // compact.lua writes the offsets in order: only those up to `hi` are looked at, and
    // only those from `lo` on are parsed whole.
    for entry in packed.split(' ').filter(|e| !e.is_empty()) {
        let (offset, rest) = entry.split_once(':').ok_or_else(|| bad(entry))?;
        let offset = offset.parse::<i64>().map_err(|_| bad(entry))?;
        if offset > hi {
            break;
        }
        if offset < lo {
            continue;
        }
        let (count, cents) = rest.split_once(':').ok_or_else(|| bad(entry))?;
        let (Ok(count), Ok(cents)) = (count.parse::<u64>(), cents.parse::<i128>()) else {
            return Err(bad(entry));
        };
        sum.requests += i128::from(count);
        sum.cents += cents;
    }
    Ok(())
}

/// How a window is read: the whole seconds, minutes and hours up to the first and from the
/// last whole day as listed buckets (at most 2 x 59 + 2 x 59 + 2 x 23, plus the edge
/// seconds read whole); the whole days between through the days index; and the partial
/// seconds at either edge, to the millisecond, one of two ways ([`Edges`]). The cost grows
/// with the days inside the window plus the payments of a bounded part of each of its two
/// edge seconds, never with the payments outside it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SummaryPlan {
    /// [`Edges::Payments`]: millisecond ranges, each within one second, read per payment.
    edges: Vec<EdgeRange>,
    /// [`Edges::Tenths`]: the partial seconds, read through their tenths.
    fine: Vec<FineEdge>,
    /// Whole seconds, minutes and hours.
    buckets: Vec<Bucket>,
    /// Whole days, as index scores (`-inf` / `+inf` when open).
    days: Option<(String, String)>,
}

/// How the partial seconds at a window's edges are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edges {
    /// The range's whole tenths of a second from their buckets (which count every payment,
    /// like the second's, `record.lua`), plus or minus the rest per payment from `ev` and the
    /// compacted detail: at most half a tenth at each end. Valid only where the second's ten
    /// tenths add up to its bucket (count and cents), which the read checks.
    Tenths,
    /// The range from `ev` and the compacted detail, or the second's bucket minus the rest
    /// when that is shorter: at most half a second per payment. Valid always.
    Payments,
}

/// Payments of `from..=to` (one unit's milliseconds), added to the totals or subtracted
/// from them (the rest of a unit that is read whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EdgeRange {
    from: Millis,
    to: Millis,
    subtract: bool,
}

/// A partial second `from..=to` read through its tenths: the `tenths` read whole, plus or
/// minus the `pieces`, which together cover the range exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FineEdge {
    from: Millis,
    to: Millis,
    /// Tenths of a second (`ms div 100`) read from their buckets.
    tenths: Vec<i64>,
    /// Ranges, each within one tenth, read per payment from `ev` and the compacted detail.
    pieces: Vec<EdgeRange>,
}

impl FineEdge {
    fn second(&self) -> i64 {
        self.from.div_euclid(1000)
    }
}

/// A range of whole seconds, `None` where it is open.
type Seconds = (Option<i64>, Option<i64>);

/// Covers `from..=to` with units of `unit` ms: the units read whole, and ranges read per
/// payment, each within one unit — either the part of a unit inside the range, or, when
/// the rest of that unit is shorter, the rest, subtracted from the unit read whole.
fn cover(from: Millis, to: Millis, unit: i64) -> (Vec<i64>, Vec<EdgeRange>) {
    let mut whole = Vec::new();
    let mut pieces = Vec::new();
    for u in from.div_euclid(unit)..=to.div_euclid(unit) {
        let (start, end) = (u * unit, u * unit + unit - 1);
        let (a, b) = (from.max(start), to.min(end));
        let rest: Vec<(Millis, Millis)> = [(start, a - 1), (b + 1, end)]
            .into_iter()
            .filter(|(x, y)| x <= y)
            .collect();
        let rest_len: i64 = rest.iter().map(|(x, y)| y - x + 1).sum();
        if rest_len < b - a + 1 {
            whole.push(u);
            pieces.extend(rest.into_iter().map(|(from, to)| EdgeRange {
                from,
                to,
                subtract: true,
            }));
        } else {
            pieces.push(EdgeRange {
                from: a,
                to: b,
                subtract: false,
            });
        }
    }
    (whole, pieces)
}

impl SummaryPlan {
    fn of(window: Window, how: Edges) -> Self {
        let sec = |ms: Millis| ms.div_euclid(1000);
        let (partial, whole): (Vec<(Millis, Millis)>, Option<Seconds>) =
            match (window.from, window.to) {
                (Some(f), Some(t)) if f > t => (Vec::new(), None),
                (Some(f), Some(t)) if sec(f) == sec(t) => (vec![(f, t)], None),
                (Some(f), Some(t)) => {
                    let (fs, ts) = (sec(f), sec(t));
                    (
                        vec![(f, (fs + 1) * 1000 - 1), (ts * 1000, t)],
                        (fs + 1 < ts).then_some((Some(fs + 1), Some(ts - 1))),
                    )
                }
                (None, Some(t)) => (vec![(sec(t) * 1000, t)], Some((None, Some(sec(t) - 1)))),
                (Some(f), None) => (
                    vec![(f, (sec(f) + 1) * 1000 - 1)],
                    Some((Some(sec(f) + 1), None)),
                ),
                (None, None) => (Vec::new(), Some((None, None))),
            };
        let (mut buckets, days) = whole.map_or((Vec::new(), None), split);
        let mut edges = Vec::new();
        let mut fine = Vec::new();
        for (from, to) in partial {
            let (seconds, pieces) = cover(from, to, 1000);
            if pieces.is_empty() || how == Edges::Payments {
                // A whole second is read from its bucket either way.
                buckets.extend(seconds.into_iter().map(Bucket::Second));
                edges.extend(pieces);
            } else {
                let (tenths, pieces) = cover(from, to, 100);
                fine.push(FineEdge {
                    from,
                    to,
                    tenths,
                    pieces,
                });
            }
        }
        let score =
            |b: Option<i64>, open: &str| b.map_or_else(|| open.to_string(), |d| d.to_string());
        Self {
            edges,
            fine,
            buckets,
            days: days.map(|(lo, hi)| (score(lo, "-inf"), score(hi, "+inf"))),
        }
    }

    /// Whether `summary.lua` has anything to read (not for a window inside one second).
    fn reads_buckets(&self) -> bool {
        !self.buckets.is_empty() || self.days.is_some()
    }

    /// Whether the window has partial seconds at its edges.
    fn reads_edges(&self) -> bool {
        !self.edges.is_empty() || !self.fine.is_empty()
    }

    /// `summary.lua`'s arguments: the days range, then the other buckets' fields.
    fn args(&self) -> Vec<String> {
        let mut args = Vec::with_capacity(2 + self.buckets.len());
        let (d1, d2) = self.days.clone().unwrap_or_default();
        args.extend([d1, d2]);
        args.extend(self.buckets.iter().map(|b| b.field()));
        args
    }
}

/// Splits the whole seconds `[lo, hi]` (non-empty) into the fewest buckets: at each level,
/// the units before the first and after the last whole unit of the next level stay at this
/// level; what is left goes up. Returns those buckets and the whole days left (`None` when
/// the range holds no whole day).
fn split((mut lo, mut hi): Seconds) -> (Vec<Bucket>, Option<Seconds>) {
    // (units of this level in one of the next, this level's bucket)
    type Level = (i64, fn(i64) -> Bucket);
    let levels: [Level; 3] = [
        (60, Bucket::Second),
        (60, Bucket::Minute),
        (24, Bucket::Hour),
    ];
    let mut buckets = Vec::new();
    for (size, bucket) in levels {
        // The whole units of the next level inside [lo, hi].
        let up_lo = lo.map(|a| a.div_euclid(size) + i64::from(a.rem_euclid(size) != 0));
        let up_hi = hi.map(|b| (b + 1).div_euclid(size) - 1);
        if let (Some(a), Some(b), Some(ua), Some(ub)) = (lo, hi, up_lo, up_hi) {
            if ua > ub {
                buckets.extend((a..=b).map(bucket));
                return (buckets, None);
            }
        }
        if let (Some(a), Some(ua)) = (lo, up_lo) {
            buckets.extend((a..ua * size).map(bucket));
        }
        if let (Some(b), Some(ub)) = (hi, up_hi) {
            buckets.extend(((ub + 1) * size..=b).map(bucket));
        }
        (lo, hi) = (up_lo, up_hi);
    }
    (buckets, Some((lo, hi)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The ms ranges a plan reads with their weight (+1 read, -1 subtracted); `i64::MIN` /
    /// `i64::MAX` for open ends.
    fn ranges(plan: &SummaryPlan) -> Vec<(i64, i64, i32)> {
        let mut out: Vec<(i64, i64, i32)> = plan
            .edges
            .iter()
            .map(|e| {
                assert_eq!(e.from.div_euclid(1000), e.to.div_euclid(1000), "{e:?}");
                (e.from, e.to, if e.subtract { -1 } else { 1 })
            })
            .collect();
        // A fine edge's whole tenths plus or minus its pieces must cover its range exactly.
        for e in &plan.fine {
            assert_eq!(e.from.div_euclid(1000), e.to.div_euclid(1000), "{e:?}");
            let mut ev = Vec::new();
            for p in &e.pieces {
                assert_eq!(p.from.div_euclid(100), p.to.div_euclid(100), "{p:?}");
                ev.push((p.from, p.to, if p.subtract { -1 } else { 1 }));
            }
            ev.extend(e.tenths.iter().map(|t| (t * 100, t * 100 + 99, 1)));
            assert_eq!(weights(&ev, e.from, e.to), "exact", "{e:?}");
            out.push((e.from, e.to, 1));
        }
        for b in &plan.buckets {
            let (start, len) = match *b {
                Bucket::Second(s) => (s * 1000, 1000),
                Bucket::Minute(m) => (m * 60_000, 60_000),
                Bucket::Hour(h) => (h * 3_600_000, 3_600_000),
                Bucket::Day(d) => (d * 86_400_000, 86_400_000),
                Bucket::Tenth(t) => panic!("tenth {t} read by summary.lua"),
            };
            out.push((start, start + len - 1, 1));
        }
        if let Some((lo, hi)) = &plan.days {
            let lo = lo.parse::<i64>().map_or(i64::MIN, |d| d * 86_400_000);
            let hi = hi
                .parse::<i64>()
                .map_or(i64::MAX, |d| (d + 1) * 86_400_000 - 1);
            assert!(lo <= hi, "{plan:?}");
            out.push((lo, hi, 1));
        }
        out
    }

    /// Whether weighted ranges count every ms of `[from, to]` exactly once and nothing
    /// outside it: sweeping them gives 1 inside and 0 elsewhere. `"exact"`, or where not.
    fn weights(ranges: &[(i64, i64, i32)], from: i64, to: i64) -> String {
        let mut deltas = std::collections::BTreeMap::<i128, i32>::new();
        for &(a, b, weight) in ranges {
            *deltas.entry(i128::from(a)).or_default() += weight;
            *deltas.entry(i128::from(b) + 1).or_default() -= weight;
        }
        // The window's own ends are breakpoints too, so every stretch between two
        // breakpoints lies wholly inside or wholly outside it.
        deltas.entry(i128::from(from)).or_default();
        deltas.entry(i128::from(to) + 1).or_default();
        deltas.entry(i128::from(i64::MIN)).or_default();
        let mut cover = 0;
        for (point, delta) in deltas {
            cover += delta;
            let inside = from <= to && i128::from(from) <= point && point <= i128::from(to);
            if cover != i32::from(inside) {
                return format!("{cover} at {point}");
            }
        }
        "exact".into()
    }

    /// Every ms of the window is counted exactly once and nothing outside it, both ways of
    /// reading the edges.
    fn assert_exact_cover(w: Window) {
        for how in [Edges::Tenths, Edges::Payments] {
            let plan = SummaryPlan::of(w, how);
            assert!(
                plan.buckets.len() <= 2 * 59 + 2 * 59 + 2 * 23 + 2,
                "{} buckets for {w:?}",
                plan.buckets.len()
            );
            // Per payment: at most half of each edge second, or of each end's tenth.
            let per_payment: i64 = plan.edges.iter().map(|e| e.to - e.from + 1).sum();
            assert!(per_payment <= 1000, "{w:?}: {plan:?}");
            for e in &plan.fine {
                let per_payment: i64 = e.pieces.iter().map(|p| p.to - p.from + 1).sum();
                assert!(per_payment <= 100, "{w:?}: {e:?}");
            }
            assert!(plan.edges.is_empty() || plan.fine.is_empty());
            let (from, to) = (w.from.unwrap_or(i64::MIN), w.to.unwrap_or(i64::MAX));
            assert_eq!(
                weights(&ranges(&plan), from, to),
                "exact",
                "{w:?}: {plan:?}"
            );
        }
    }

    #[test]
    fn the_plan_reads_every_millisecond_of_any_window_exactly_once() {
        const DAY: i64 = 86_400_000;
        let base = 20_284 * DAY; // 2025-07-15T00:00:00Z
                                 // Near every kind of boundary, and far from them.
        let anchors = [
            base,
            base + 3_600_000,
            base + 60_000,
            base + 1_000,
            base + 12 * 3_600_000 + 34 * 60_000 + 56_789,
            // Inside a second, away from its tenths' boundaries.
            base + 5_234,
            base + 5_451,
            -DAY,
            0,
        ];
        let offsets = [
            -86_400_001,
            -3_600_001,
            -60_001,
            -1_001,
            -1,
            0,
            1,
            999,
            1_000,
            59_999,
        ];
        let lengths = [
            0,
            1,
            98,
            444,
            998,
            999,
            1_000,
            1_999,
            60_000,
            119_999,
            120_000,
            3_599_999,
            3_600_000,
            7_199_999,
            DAY - 1,
            DAY,
            2 * DAY + 1,
            40 * DAY + 3_723_004,
        ];
        for anchor in anchors {
            for off in offsets {
                let from = anchor + off;
                for len in lengths {
                    for w in [
                        Window {
                            from: Some(from),
                            to: Some(from + len),
                        },
                        Window {
                            from: Some(from + len),
                            to: Some(from),
                        },
                        Window {
                            from: None,
                            to: Some(from + len),
                        },
                        Window {
                            from: Some(from),
                            to: None,
                        },
                    ] {
                        assert_exact_cover(w);
                    }
                }
            }
        }
        assert_exact_cover(Window::default());
    }

    #[test]
    fn compacted_detail_adds_only_the_offsets_asked_for() {
        let packed = "0:1:1990 7:2:4000 999:12:12000000000000000";
        let mut t = Sum::default();
        add_compacted(&mut t, packed, 0, 999).unwrap();
        assert_eq!((t.requests, t.cents), (15, 12_000_000_000_005_990));
        let mut t = Sum::default();
        add_compacted(&mut t, packed, 1, 7).unwrap();
        assert_eq!((t.requests, t.cents), (2, 4000));
        let mut t = Sum::default();
        add_compacted(&mut t, packed, 8, 998).unwrap();
        assert_eq!(t, Sum::default());
        assert!(add_compacted(&mut t, "0:1", 0, 999).is_err());
        assert!(add_compacted(&mut t, "x:1:2", 0, 999).is_err());
        assert!(add_compacted(&mut t, "0:1:1 3:1", 0, 999).is_err());
    }

    #[test]
    fn the_shorter_side_of_an_edge_second_is_read_per_payment() {
        // From .900: read .900-.999 per payment. To .900: the second whole minus .901-.999.
        let plan = SummaryPlan::of(
            Window {
                from: Some(5_900),
                to: Some(8_900),
            },
            Edges::Payments,
        );
        let edge = |from, to, subtract| EdgeRange { from, to, subtract };
        assert_eq!(
            plan.edges,
            [edge(5_900, 5_999, false), edge(8_901, 8_999, true)]
        );
        assert!(plan.buckets.contains(&Bucket::Second(8)));
        let plan = SummaryPlan::of(
            Window {
                from: Some(5_100),
                to: Some(5_100),
            },
            Edges::Payments,
        );
        assert_eq!(plan.edges, [edge(5_100, 5_100, false)]);
        let plan = SummaryPlan::of(
            Window {
                from: Some(5_001),
                to: Some(5_998),
            },
            Edges::Payments,
        );
        assert_eq!(
            plan.edges,
            [edge(5_000, 5_000, true), edge(5_999, 5_999, true)]
        );
        assert_eq!(plan.buckets, [Bucket::Second(5)]);
        let mut sum = Sum::default();
        sum.add(
            Sum {
                requests: 3,
                cents: 30,
            },
            false,
        );
        sum.add(
            Sum {
                requests: 1,
                cents: 10,
            },
            true,
        );
        assert_eq!(
            sum.totals().unwrap(),
            Totals {
                requests: 2,
                cents: 20
            }
        );
        sum.add(
            Sum {
                requests: 3,
                cents: 0,
            },
            true,
        );
        assert!(sum.totals().is_err());
    }

    #[test]
    fn with_tenths_an_edge_reads_at_most_half_a_tenth_at_each_end_per_payment() {
        let edge = |from, to, subtract| EdgeRange { from, to, subtract };
        // .120-.999 of second 5: tenths 2..9 whole, .100-.119 subtracted from tenth 1;
        // .000-.040 of second 8: read per payment (the rest of tenth 0 is longer).
        let plan = SummaryPlan::of(
            Window {
                from: Some(5_120),
                to: Some(8_040),
            },
            Edges::Tenths,
        );
        assert!(plan.edges.is_empty());
        assert_eq!(plan.buckets, [Bucket::Second(6), Bucket::Second(7)]);
        assert_eq!(
            plan.fine,
            [
                FineEdge {
                    from: 5_120,
                    to: 5_999,
                    tenths: (51..=59).collect(),
                    pieces: vec![edge(5_100, 5_119, true)],
                },
                FineEdge {
                    from: 8_000,
                    to: 8_040,
                    tenths: vec![],
                    pieces: vec![edge(8_000, 8_040, false)],
                },
            ]
        );
        // A whole second at an edge is its bucket, as without tenths.
        let plan = SummaryPlan::of(
            Window {
                from: Some(5_000),
                to: Some(6_999),
            },
            Edges::Tenths,
        );
        assert!(plan.fine.is_empty() && plan.edges.is_empty());
        assert_eq!(plan.buckets, [Bucket::Second(5), Bucket::Second(6)]);
        assert_eq!(Bucket::Tenth(51).field(), "t51");
    }

    #[test]
    fn long_windows_read_whole_days_through_the_index() {
        let plan = SummaryPlan::of(Window::default(), Edges::Payments);
        assert_eq!(plan.days, Some(("-inf".into(), "+inf".into())));
        assert!(plan.buckets.is_empty());
        assert_eq!(plan.args(), ["-inf".to_string(), "+inf".to_string()]);
        // 2025-07-15T12:34:56.789Z .. 2025-07-18T01:02:03.004Z: partial seconds, then 3 s,
        // 25 min, 11 h to the first midnight; 2 days; 1 h, 2 min, 3 s after the last.
        let from = 1_752_582_896_789;
        let to = from + 2 * 86_400_000 + 12 * 3_600_000 + 27 * 60_000 + 6_215;
        let plan = SummaryPlan::of(
            Window {
                from: Some(from),
                to: Some(to),
            },
            Edges::Payments,
        );
        let edge = |from, to| EdgeRange {
            from,
            to,
            subtract: false,
        };
        assert_eq!(
            plan.edges,
            [edge(from, 1_752_582_896_999), edge(to - 4, to)]
        );
        assert_eq!(plan.days, Some(("20285".into(), "20286".into())));
        let count = |f: fn(&Bucket) -> bool| plan.buckets.iter().filter(|b| f(b)).count();
        assert_eq!(count(|b| matches!(b, Bucket::Second(_))), 3 + 3);
        assert_eq!(count(|b| matches!(b, Bucket::Minute(_))), 25 + 2);
        assert_eq!(count(|b| matches!(b, Bucket::Hour(_))), 11 + 1);
        assert_eq!(plan.args()[2..].len(), plan.buckets.len());
        assert!(plan.args().contains(&"h486839".to_string()));
    }
}
