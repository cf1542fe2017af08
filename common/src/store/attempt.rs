//! The worker before and during a processor call: `begin.lua` (this consumer still owns the
//! entry; the payment is pinned to a processor before any call is made; concurrent begins
//! share one script call), `unanswered.lua` (a call ended without a usable answer: when a
//! 404 will prove absence), `settle.lua` (the processor does not hold it: the pin is
//! released), and the heartbeat `touch.lua` that keeps the entries in work claimed.
//!
//! Before it: the stream entry read by the worker (`XREADGROUP`, [`super::maintenance`]'s
//! entry decoding). After it: the processor call, then [`super::record`] (stored) or
//! another attempt.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{Script, Value};

use super::{int_at, observe, Store};
use crate::entry::as_str;
use crate::error::StoreError;
use crate::keys::GROUP;
use crate::payment::{PaymentId, Processor, Status};
use crate::store::types::{Attempt, BeginRequest, SafeAt, Settle, Settled};
use crate::time::Millis;

static BEGIN: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../scripts/begin.lua")));
static UNANSWERED: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../scripts/unanswered.lua")));
static SETTLE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../scripts/settle.lua")));
static TOUCH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../scripts/touch.lua")));

impl Store {
    /// Confirms `consumer` still owns `entry_id`, pins the payment to `wanted` and marks an
    /// attempt in flight; see `begin.lua`. `bound`: from now, how long a call of this
    /// attempt could still end up stored (send window + client timeout + queue and delay);
    /// `requested_at`: what the attempt will send (the earliest is kept, before the send).
    /// Concurrent calls share one script call.
    pub async fn begin_attempt(
        &self,
        id: &PaymentId,
        wanted: Processor,
        consumer: &str,
        entry_id: &str,
        bound: Duration,
        requested_at: Millis,
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
                requested_at,
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
        let mut invocation = BEGIN.prepare_invoke();
        invocation
            .key(self.keys.stream())
            .arg(GROUP)
            .arg(&first.consumer);
        for r in batch {
            invocation
                .key(self.keys.payment(&r.id))
                .arg(r.wanted.as_str())
                .arg(&r.entry_id)
                .arg(r.bound.as_millis() as u64)
                .arg(r.requested_at);
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
    /// any more (or `entry_id`, the caller's stream entry, is not the payment's); see
    /// `unanswered.lua`.
    pub async fn unanswered(
        &self,
        id: &PaymentId,
        entry_id: &str,
        processor: Processor,
        attempt: u32,
        grace: Duration,
        held: bool,
    ) -> Result<Option<SafeAt>, StoreError> {
        let started = std::time::Instant::now();
        let mut conn = self.conn.clone();
        let reply: Vec<Value> = UNANSWERED
            .key(self.keys.payment(id))
            .arg(processor.as_str())
            .arg(attempt)
            .arg(grace.as_millis() as u64)
            .arg(if held { "1" } else { "0" })
            .arg(entry_id)
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
    /// in-flight mark when that is proven (`entry_id`: the caller's stream entry, which must
    /// be the payment's); see `settle.lua`.
    pub async fn settle(
        &self,
        id: &PaymentId,
        entry_id: &str,
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
        let reply: Vec<Value> = SETTLE
            .key(self.keys.payment(id))
            .arg(processor.as_str())
            .arg(attempt)
            .arg(mode)
            .arg(asked_at)
            .arg(entry_id)
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

    /// Resets the idle time of `entry_ids` still owned by `consumer` and returns those it
    /// no longer owns (claimed by another consumer, or acknowledged); see `touch.lua`.
    /// One script call per batch of the store's batch maximum ([`Store::with_batch_max`];
    /// the worker's `SCRIPT_BATCH_MAX`): a worker with hundreds in flight held Redis for up
    /// to 5.6 ms in one call, and accepts arriving meanwhile waited behind it (docs/benchmarks.md,
    /// *Smaller script batches*). Each entry is touched on its own, so the split changes
    /// nothing else; a call that fails part-way leaves the earlier calls' entries touched.
    pub async fn touch(
        &self,
        consumer: &str,
        entry_ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut lost = Vec::new();
        for chunk in entry_ids.chunks(self.batch_max) {
            let mut invocation = TOUCH.prepare_invoke();
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
