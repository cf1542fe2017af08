//! The values the store's operations take and return: one outcome type per script, the
//! per-payment requests of the batched scripts, and the read views (payment status,
//! summary window and totals, health reports).
//!
//! A leaf of the store: it imports only the payment and time types. Comes before: the
//! operation files of [`crate::store`] (`accept`, `attempt`, `record`, `summary`, `health`),
//! which build these from script replies. Comes after: the gateway's handlers and the
//! worker's pipeline, which match on them.

use std::time::Duration;

use crate::payment::{Cents, PaymentId, Processor, Status};
use crate::time::Millis;

/// Outcome of [`Store::accept`](crate::store::Store::accept).
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

/// Outcome of [`Store::begin_attempt`](crate::store::Store::begin_attempt).
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

/// How [`Store::settle`](crate::store::Store::settle) knows the processor does not hold the payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// The attempt got a definite failure (its failure mode, 429, connection refused).
    Failed,
    /// A lookup answered 404; it was asked at this Redis time (or later).
    Absent { asked_at: Millis },
}

/// Outcome of [`Store::settle`](crate::store::Store::settle).
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

/// How [`Store::dead_letter`](crate::store::Store::dead_letter) treats a payment a processor may still hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Refused while an attempt is unresolved; the pin is released.
    Final,
    /// Allowed while an attempt is unresolved; the pin and the mark stay (a re-drive must
    /// learn from that processor first). Only by the consumer that owns the entry, for the
    /// payment's latest attempt: a task that lost its entry, or whose attempt another
    /// consumer's newer one replaced, must not fail a payment that is being handled.
    KeepPin { attempt: u32 },
    /// For an undecodable stream entry: like `KeepPin` if it is the payment's own entry,
    /// otherwise only the entry is dead-lettered and the payment is left alone.
    Entry,
}

/// Outcome of [`Store::record`](crate::store::Store::record) and [`Store::dead_letter`](crate::store::Store::dead_letter).
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
    /// The earliest `requestedAt` an attempt of this payment sent (`None` before the first
    /// attempt).
    pub first_requested_at: Option<Millis>,
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

/// Outcome of [`Store::health_slot`](crate::store::Store::health_slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthSlot {
    /// This process polls now (the poll time is already taken).
    Poll,
    /// This process holds the lease; the next poll is not due yet.
    Leader,
    /// Another process holds the lease.
    Follower,
}

/// One payment's part of a batched `begin.lua` call.
#[derive(Debug, Clone)]
pub struct BeginRequest {
    pub id: PaymentId,
    pub wanted: Processor,
    pub consumer: String,
    pub entry_id: String,
    pub bound: Duration,
    /// The `requestedAt` this attempt will send, kept (the earliest of all attempts) before
    /// the send.
    pub requested_at: Millis,
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

/// Where a running purge started (see `Store::purge`): the last ids of the payment stream
/// and of the dead-letter stream then, and the token its purge flag holds.
#[derive(Debug, Clone)]
pub struct PurgeRun {
    pub(super) stream_last: String,
    pub(super) dead_last: String,
    /// The purge flag's value while this purge owns it (random: no other purge has it).
    pub(super) token: String,
}
