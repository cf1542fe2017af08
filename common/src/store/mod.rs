//! Every Redis operation of Paystream, over the atomic scripts in `scripts/`.
//!
//! Before it: the gateway's handlers and the worker's pipeline, which never build a
//! command themselves. After it: Redis. Each state change is one script, so a crash between
//! two Redis calls can never leave a payment half-recorded.
//!
//! This file owns the [`Store`] handle: the multiplexed connection, the batching tasks of
//! the per-payment scripts ([`crate::batch`]), the settings they run with, and the helpers
//! every operation shares. The operations live by job, in the order a payment meets them:
//! - `accept.rs`: the gateway's path: `accept.lua` (status hash + stream entry) and the
//!   status read of `GET /payments/{id}`.
//! - `attempt.rs`: the worker before and during a processor call: `begin.lua` (ownership
//!   check, pin), `unanswered.lua`, `settle.lua`, and the heartbeat `touch.lua`.
//! - `record.rs`: the worker's end of a payment: `record.lua` (status, summary buckets,
//!   acknowledgement), `fail.lua` (dead letter), plain acknowledgements.
//! - `summary/`: `GET /payments-summary`: the window's plan and its one atomic read.
//! - `health.rs`: the deployment-wide health poller's lease and the published reports.
//! - `maintenance.rs`: dead-letter re-drive, backlog and group figures, purge, raw commands.
//! - [`types`]: the values these take and return; [`StoreError`] lives in [`crate::error`].

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Value;

use crate::batch::Batcher;
use crate::entry::as_str;
use crate::keys::{Keys, GROUP};
use crate::payment::{Cents, PaymentId};

mod accept;
mod attempt;
mod health;
mod maintenance;
mod record;
mod summary;
pub mod types;

// The public paths of the types the store takes and returns stay `common::store::X`.
pub use crate::config::RedisOptions;
pub use crate::error::StoreError;
pub use types::{
    Accepted, Attempt, BeginRequest, FailMode, HealthReport, HealthSlot, PaymentView, PurgeRun,
    RecordRequest, Recorded, SafeAt, Settle, Settled, Summary, Totals, Window,
};

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
    /// The bound accept.lua gives the first attempt it pins (ms; 0 = it pins none):
    /// [`Store::with_first_attempt`].
    first_attempt_ms: u64,
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
            first_attempt_ms: 0,
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

    /// The same store whose accepts pin each payment's first attempt to default, stored
    /// by `bound` after the acceptance or never (see `accept.lua`); `Duration::ZERO` pins
    /// none, and every attempt goes through `begin.lua`.
    pub fn with_first_attempt(mut self, bound: Duration) -> Self {
        self.first_attempt_ms = bound.as_millis().min(u128::from(u64::MAX)) as u64;
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
    /// entries appended before the group existed are consumed too). Looks first: creating
    /// is refused while Redis memory is full, and a worker must still start then to finish
    /// the payments already accepted.
    pub async fn ensure_group(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let groups: Result<Vec<std::collections::HashMap<String, redis::Value>>, _> =
            redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(self.keys.stream())
                .query_async(&mut conn)
                .await;
        let named = |g: &std::collections::HashMap<String, redis::Value>| matches!(g.get("name"), Some(v) if crate::entry::as_str(v) == Some(GROUP));
        if groups.is_ok_and(|groups| groups.iter().any(named)) {
            return Ok(());
        }
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
            first_attempt_ms: self.first_attempt_ms,
        }
    }
}

/// Records how long a store operation took (one histogram sample: cheap enough for the
/// hot path).
fn observe(op: &'static str, started: std::time::Instant) {
    metrics::histogram!(crate::metrics::REDIS_COMMAND_DURATION_SECONDS, "op" => op)
        .record(started.elapsed().as_secs_f64());
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
