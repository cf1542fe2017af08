//! The gateway's path: a payment accepted (`accept.lua`: its status hash and its stream
//! entry in one atomic step; concurrent accepts share one script call) and its status read
//! back for `GET /payments/{id}`.
//!
//! Before it: the gateway's handlers, with a parsed [`crate::payment::ValidPayment`].
//! After it: the stream, where the worker's [`super::attempt`] picks the payment up.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{Script, Value};

use super::{observe, Store};
use crate::entry::as_str;
use crate::error::StoreError;
use crate::keys::field;
use crate::payment::{Cents, PaymentId, Status};
use crate::store::types::{Accepted, PaymentView};
use crate::store::MAX_BATCH;
use crate::time::Millis;

static ACCEPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../scripts/accept.lua")));

impl Store {
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
        let Some((_, _, backlog_limit)) = batch.first() else {
            return Ok(Vec::new());
        };
        let mut buf = [0u8; 36];
        let started = std::time::Instant::now();
        let mut invocation = ACCEPT.prepare_invoke();
        invocation
            .key(self.keys.stream())
            .arg(*backlog_limit)
            .arg(self.first_attempt_ms);
        for (id, amount, _) in batch {
            invocation
                .key(self.keys.payment(id))
                .arg(id.encode(&mut buf))
                .arg(amount.get());
        }
        let replies: Vec<Value> = invocation.invoke_async(&mut self.conn.clone()).await?;
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
                field::FIRST_REQUESTED_AT,
            ])
            .query_async(&mut conn)
            .await?;
        let [amt, st, proc, req, at, upd, att, err, rq0]: [Option<String>; 9] =
            values
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
            first_requested_at: parse_ms(rq0),
            accepted_at: parse_ms(at).unwrap_or_default(),
            updated_at: parse_ms(upd).unwrap_or_default(),
            attempts: att.and_then(|a| a.parse().ok()).unwrap_or_default(),
            reason: err,
        }))
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
