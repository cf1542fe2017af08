//! The worker's end of a payment: `record.lua` (stored by a processor: status, summary
//! buckets of every level, acknowledgement, all or nothing; concurrent records share one
//! script call, a group commit), `fail.lua` (dead-lettered), and plain acknowledgements of
//! entries that need no work.
//!
//! Before it: the processor's answer to [`super::attempt`]'s call. After it: the summary
//! buckets that [`super::summary`] reads, and [`crate::retention`], which bounds what they
//! leave behind.

use std::sync::LazyLock;

use redis::{Script, Value};

use super::{observe, Store};
use crate::entry::as_str;
use crate::error::StoreError;
use crate::keys::GROUP;
use crate::payment::{Cents, PaymentId, Processor};
use crate::store::types::{FailMode, RecordRequest, Recorded};
use crate::time::Millis;

static RECORD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../scripts/record.lua")));
static FAIL: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../scripts/fail.lua")));

impl Store {
    /// Marks a payment processed by `processor` (which holds it), updates the summary and
    /// acknowledges `entry_id` — atomically, idempotently.
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
        let mut invocation = RECORD.prepare_invoke();
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
        invocation.key(self.keys.purging());
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
        consumer: &str,
    ) -> Result<Recorded, StoreError> {
        let mut buf = [0u8; 36];
        let started = std::time::Instant::now();
        let mut conn = self.conn.clone();
        let reply: String = FAIL
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
                FailMode::KeepPin { .. } => "keep",
                FailMode::Entry => "entry",
            })
            .arg(self.retention_ms)
            .arg(consumer)
            .arg(match mode {
                FailMode::KeepPin { attempt } => attempt.to_string(),
                _ => String::new(),
            })
            .invoke_async(&mut conn)
            .await?;
        observe("dead_letter", started);
        match reply.as_str() {
            "processed" => Ok(Recorded::AlreadyDone),
            // Another consumer owns the entry, or a newer attempt: that task decides.
            "unresolved" | "stale" => Ok(Recorded::Unresolved),
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
