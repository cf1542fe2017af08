//! One payment's way through the worker, on one screen: route → begin attempt (pin the
//! processor in Redis) → dispatch → record + ack, with retries, the ambiguity rule and
//! dead letters. Comes after the stream read (`consume`), uses `route`, `dispatch` and the
//! store's scripts.
//!
//! The invariant: a payment is only ever sent to processor B if processor A — the one it
//! is pinned to — certainly does not hold it: A answered a definite failure to the only
//! unresolved attempt, or A's `GET /payments/{id}` said 404 after A's delay had passed.

use std::sync::Arc;
use std::time::Duration;

use common::entry::StreamEntry;
use common::metrics as names;
use common::payment::{PaymentId, Processor};
use common::shutdown::Shutdown;
use common::store::{Attempt, Recorded, Store, StoreError};
use common::time::{now_ms, Millis};

use crate::backoff::Backoff;
use crate::config::WorkerConfig;
use crate::dispatch::{Lookup, ProcessorClient, SendOutcome};
use crate::route::breaker::Permit;
use crate::route::{millis, Choice, Router};

/// Test hook called after every processor call; returning `true` simulates a crash at
/// that point: the payment task stops there for good, recording nothing.
pub type AfterSendHook = Arc<dyn Fn(&PaymentId, &SendOutcome) -> bool + Send + Sync>;

/// What every payment task shares.
pub struct Context {
    pub store: Store,
    pub client: ProcessorClient,
    pub config: WorkerConfig,
    pub router: Router,
    pub shutdown: Shutdown,
    pub after_send: Option<AfterSendHook>,
}

/// How a payment task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Recorded(Processor),
    /// Another delivery finished it already, or it was purged.
    AlreadyDone,
    DeadLettered,
    /// Shutdown came first: the entry stays pending for another consumer.
    Released,
}

/// Handles one stream entry to the end (or until shutdown releases it).
#[tracing::instrument(skip_all, fields(correlation_id = %entry.payment))]
pub async fn process(ctx: &Context, entry: &StreamEntry) -> Finish {
    let mut redis_backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    loop {
        match Payment::new(ctx, entry).run().await {
            Ok(finish) => return finish,
            Err(e) => {
                metrics::counter!(names::REDIS_ERRORS_TOTAL, "kind" => e.kind()).increment(1);
                tracing::warn!(error = %e, "redis error while processing, retrying");
                if ctx.shutdown.is_triggered() {
                    return Finish::Released;
                }
                redis_backoff.wait().await;
            }
        }
    }
}

/// The state of one payment's handling in this process.
struct Payment<'a> {
    ctx: &'a Context,
    entry: &'a StreamEntry,
    /// When the gateway accepted it (the stream entry id's time part).
    accepted_at: Millis,
    backoff: Backoff,
    /// Per processor: an attempt there ended without a known outcome, in this process.
    ambiguous: [bool; 2],
    /// The attempt (processor, sent at, attempt number) whose outcome must be learned
    /// before anything else is tried.
    unresolved: Option<(Processor, Millis, u32)>,
    definite_failures: u32,
}

impl<'a> Payment<'a> {
    fn new(ctx: &'a Context, entry: &'a StreamEntry) -> Self {
        let accepted_at = entry
            .entry_id
            .split_once('-')
            .and_then(|(ms, _)| ms.parse().ok())
            .unwrap_or_else(now_ms);
        Self {
            ctx,
            entry,
            accepted_at,
            backoff: Backoff::new(ctx.config.retry_base, ctx.config.retry_max),
            ambiguous: [false; 2],
            unresolved: None,
            definite_failures: 0,
        }
    }

    async fn run(&mut self) -> Result<Finish, StoreError> {
        let (store, id) = (&self.ctx.store, &self.entry.payment);
        loop {
            if self.ctx.shutdown.is_triggered() {
                return Ok(Finish::Released);
            }
            if let Some((processor, since, attempt)) = self.unresolved.take() {
                if let Some(finish) = self.resolve_pinned(processor, since, attempt).await? {
                    return Ok(finish);
                }
                continue;
            }
            let (wanted, permit) = match self.choose() {
                Choice::Send(p, permit) => (p, permit),
                Choice::Wait => {
                    // Held: the entry stays pending in Redis; wake on a recovery.
                    let mut shutdown = self.ctx.shutdown.clone();
                    let delay = self.backoff.next_delay();
                    tokio::select! {
                        _ = self.ctx.router.wait_for_change(delay) => {}
                        _ = shutdown.wait() => {}
                    }
                    continue;
                }
            };
            match store.begin_attempt(id, wanted, now_ms()).await {
                Err(e) => {
                    self.ctx.router.release(wanted, permit);
                    return Err(e);
                }
                Ok(Attempt::Done(_) | Attempt::Missing) => {
                    self.ctx.router.release(wanted, permit);
                    store.ack(&self.entry.entry_id).await?;
                    return Ok(Finish::AlreadyDone);
                }
                Ok(Attempt::Pinned {
                    processor,
                    since,
                    attempt,
                }) => {
                    self.ctx.router.release(wanted, permit);
                    if let Some(finish) = self.resolve_pinned(processor, since, attempt).await? {
                        return Ok(finish);
                    }
                }
                Ok(Attempt::Go {
                    processor,
                    attempt,
                    unresolved_before,
                }) => {
                    if attempt > 1 {
                        metrics::counter!(names::RETRIES_TOTAL, "processor" => processor.as_str())
                            .increment(1);
                    }
                    if let Some(finish) = self
                        .send(processor, permit, attempt, unresolved_before)
                        .await?
                    {
                        return Ok(finish);
                    }
                }
            }
        }
    }

    fn choose(&self) -> Choice {
        let age = now_ms().saturating_sub(self.accepted_at).max(0) as u64;
        self.ctx.router.choose(Duration::from_millis(age))
    }

    /// One attempt on `processor`, pinned there by `begin`. `None` = keep going.
    async fn send(
        &mut self,
        processor: Processor,
        permit: Permit,
        attempt: u32,
        unresolved_before: bool,
    ) -> Result<Option<Finish>, StoreError> {
        let (ctx, entry) = (self.ctx, self.entry);
        let requested_at = now_ms();
        let started = tokio::time::Instant::now();
        let timeout = ctx.router.timeout(processor);
        let outcome = ctx
            .client
            .send(
                processor,
                &entry.payment,
                entry.amount,
                requested_at,
                timeout,
            )
            .await;
        let failed = matches!(outcome, SendOutcome::Failed { .. } | SendOutcome::Ambiguous);
        ctx.router
            .outcome(processor, permit, failed, started.elapsed());
        if let Some(hook) = &ctx.after_send {
            if hook(&entry.payment, &outcome) {
                tracing::warn!("test hook: simulated crash after the processor call");
                std::future::pending::<()>().await;
            }
        }
        let unresolved = unresolved_before || self.ambiguous[processor.index()];
        match outcome {
            SendOutcome::Stored => self.record(processor, requested_at).await.map(Some),
            SendOutcome::AlreadyStored => {
                // An earlier attempt got there: record it with the requestedAt the
                // processor holds, which is what its own summary counts.
                match ctx.client.lookup(processor, &entry.payment).await {
                    Lookup::Found { requested_at } => {
                        self.record(processor, requested_at).await.map(Some)
                    }
                    Lookup::Absent | Lookup::Unknown => {
                        self.ambiguous[processor.index()] = true;
                        self.unresolved = Some((processor, requested_at, attempt));
                        Ok(None)
                    }
                }
            }
            SendOutcome::Failed { .. } => {
                self.definite_failures += 1;
                if unresolved {
                    // This answer says nothing about the earlier unanswered attempt:
                    // learn its outcome before the payment may move or be given up.
                    self.unresolved = Some((processor, requested_at, attempt));
                } else {
                    ctx.store
                        .settle_absent(&entry.payment, processor, attempt, now_ms())
                        .await?;
                    if self.definite_failures >= ctx.config.max_attempts {
                        let reason = format!(
                            "{} definite failures, last on {processor}",
                            self.definite_failures
                        );
                        if let Some(finish) = self.dead_letter(&reason).await? {
                            return Ok(Some(finish));
                        }
                    }
                }
                self.backoff.wait().await;
                Ok(None)
            }
            SendOutcome::Rejected { status } => {
                if unresolved {
                    // An earlier attempt may still be stored: resolve it first; once the
                    // processor is known not to hold the payment, a rejection is final.
                    self.unresolved = Some((processor, requested_at, attempt));
                    return Ok(None);
                }
                ctx.store
                    .settle_absent(&entry.payment, processor, attempt, now_ms())
                    .await?;
                let reason = format!("{processor} processor rejected the payment with {status}");
                Ok(self.dead_letter(&reason).await?)
            }
            SendOutcome::Ambiguous => {
                // It may be stored later (the delay runs before the store): learn the
                // outcome before anything else is tried.
                self.ambiguous[processor.index()] = true;
                self.unresolved = Some((processor, requested_at, attempt));
                tracing::debug!(%processor, "no answer in time; the payment stays pinned there");
                Ok(None)
            }
        }
    }

    /// The payment is pinned to `processor` with an attempt of unknown outcome (ours, or
    /// one a stopped consumer left). Ask `processor` once its delay has surely passed:
    /// found → record; 404 → clear the pin, the payment may go anywhere.
    async fn resolve_pinned(
        &mut self,
        processor: Processor,
        since: Millis,
        attempt: u32,
    ) -> Result<Option<Finish>, StoreError> {
        let ctx = self.ctx;
        let safe_at = since + millis(ctx.router.grace(processor));
        let mut shutdown = ctx.shutdown.clone();
        loop {
            // "Found" is conclusive at once and is recorded without waiting, so the
            // summary catches up with the processor as soon as it stored the payment;
            // "absent" only counts once the processor's delay has surely passed.
            match ctx.client.lookup(processor, &self.entry.payment).await {
                Lookup::Found { requested_at } => {
                    return self.record(processor, requested_at).await.map(Some);
                }
                Lookup::Absent if now_ms() >= safe_at => {
                    if ctx
                        .store
                        .settle_absent(&self.entry.payment, processor, attempt, now_ms())
                        .await?
                    {
                        self.ambiguous[processor.index()] = false;
                        tracing::debug!(%processor, "confirmed absent; the payment may move");
                    }
                    return Ok(None);
                }
                Lookup::Absent | Lookup::Unknown => {}
            }
            let until_safe = Duration::from_millis((safe_at - now_ms()).max(0) as u64);
            let pause = ctx
                .config
                .ambiguity_poll
                .min(until_safe)
                .max(Duration::from_millis(5));
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.wait() => return Ok(Some(Finish::Released)),
            }
        }
    }

    async fn record(
        &self,
        processor: Processor,
        requested_at: Millis,
    ) -> Result<Finish, StoreError> {
        let entry = self.entry;
        let recorded = self
            .ctx
            .store
            .record(
                &entry.payment,
                entry.amount,
                processor,
                requested_at,
                &entry.entry_id,
                now_ms(),
            )
            .await?;
        match recorded {
            Recorded::Now => {
                metrics::counter!(names::PAYMENTS_PROCESSED_TOTAL, "processor" => processor.as_str())
                    .increment(1);
                metrics::counter!(
                    names::PAYMENTS_PROCESSED_CENTS_TOTAL,
                    "processor" => processor.as_str()
                )
                .increment(entry.amount.get().max(0) as u64);
                Ok(Finish::Recorded(processor))
            }
            _ => Ok(Finish::AlreadyDone),
        }
    }

    /// `None` when refused because a processor may still hold the payment.
    async fn dead_letter(&self, reason: &str) -> Result<Option<Finish>, StoreError> {
        let entry = self.entry;
        let outcome = self
            .ctx
            .store
            .dead_letter(
                &entry.payment,
                entry.amount,
                reason,
                &entry.entry_id,
                now_ms(),
            )
            .await?;
        Ok(match outcome {
            Recorded::Now => {
                metrics::counter!(names::DEAD_LETTERS_TOTAL, "reason" => dead_letter_kind(reason))
                    .increment(1);
                tracing::warn!(reason, "payment dead-lettered");
                Some(Finish::DeadLettered)
            }
            Recorded::AlreadyDone | Recorded::Missing => Some(Finish::AlreadyDone),
            Recorded::Unresolved => None,
        })
    }
}

fn dead_letter_kind(reason: &str) -> &'static str {
    if reason.contains("rejected") {
        "rejected"
    } else {
        "max_attempts"
    }
}
