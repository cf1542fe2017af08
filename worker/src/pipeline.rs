//! One payment's way through the worker, on one screen: route → begin attempt (confirm
//! ownership, pin the processor in Redis) → dispatch → record + ack, with retries, the
//! ambiguity rule and dead letters. Comes after the stream read (`consume`), uses `route`,
//! `dispatch` and the store's scripts.
//!
//! The invariant: a payment is only ever sent to processor B if processor A — the one it
//! is pinned to — certainly does not hold it: A answered a definite failure to the only
//! unresolved attempt, or A's `GET /payments/{id}`, *asked* after the attempt's safe
//! time (Redis' clock), said 404. And a task only sends for an entry it owns: `begin`
//! confirms ownership atomically, and the call must start within the send window after
//! that confirmation (on the monotonic and the wall clock), or the task confirms again instead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::entry::{FirstAttempt, StreamEntry};
use common::error::not_run;
use common::metrics as names;
use common::payment::Processor;
use common::shutdown::Shutdown;
use common::store::{
    Attempt, FailMode, PaymentView, Recorded, SafeAt, Settle, Settled, Store, StoreError,
};
use common::time::{now_ms, Millis};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::config::WorkerConfig;
use crate::dispatch::client::{RedisClock, SendDeadline};
use crate::dispatch::{Lookup, ProcessorClient, SendOutcome};
use crate::route::breaker::Permit;
use crate::route::{millis, Choice, Router};

/// Test hook called after every processor call; returning `true` simulates a crash at
/// that point: the payment task stops there for good, recording nothing.
#[cfg(feature = "test-hooks")]
pub type AfterSendHook =
    std::sync::Arc<dyn Fn(&common::payment::PaymentId, &SendOutcome) -> bool + Send + Sync>;

/// Test hook called after `begin` said "go" and before the deadline check and the send:
/// the place where a frozen worker hurts most.
#[cfg(feature = "test-hooks")]
pub type BeforeSendHook = std::sync::Arc<dyn Fn(&common::payment::PaymentId) + Send + Sync>;

/// Crash and pause points, compiled only into test builds (feature `test-hooks`).
#[cfg(feature = "test-hooks")]
#[derive(Default, Clone)]
pub struct Hooks {
    pub after_send: Option<AfterSendHook>,
    pub before_send: Option<BeforeSendHook>,
}

/// What every payment task shares.
pub struct Context {
    pub store: Store,
    pub client: ProcessorClient,
    pub config: WorkerConfig,
    pub router: Router,
    pub shutdown: Shutdown,
    /// Redis' memory against `maxmemory` (a mark of [`MEMORY_FULL`]), read every so often:
    /// a first attempt is sent without `begin` only while it is below. Full until the first
    /// reading.
    pub memory: std::sync::Arc<common::memory::MemoryWatch>,
    #[cfg(feature = "test-hooks")]
    pub hooks: Hooks,
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
    /// Another consumer owns the entry now (this one was too slow or frozen): stopped
    /// without sending.
    Lost,
}

/// Handles one stream entry to the end (or until shutdown releases it, or the entry is
/// found to belong to another consumer: `lost` is set by the heartbeat).
/// The span is at `debug`: at the default `info` level building it (the fmt layer formats
/// its field) cost 1.4 us per payment (docs/benchmarks.md, *Retired studies*), so
/// the events this module logs at `info` and above carry the correlation id themselves.
#[tracing::instrument(level = "debug", skip_all, fields(correlation_id = %entry.payment))]
pub async fn process(
    ctx: &Context,
    entry: &StreamEntry,
    read: Option<RedisClock>,
    lost: &AtomicBool,
) -> Finish {
    let mut redis_backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    let mut payment = Payment::new(ctx, entry, lost);
    payment.first = entry.first.zip(read);
    loop {
        match payment.run().await {
            Ok(finish) => return finish,
            Err(e) => {
                metrics::counter!(names::REDIS_ERRORS_TOTAL, "kind" => e.kind()).increment(1);
                tracing::warn!(correlation_id = %entry.payment, error = %e, "redis error while processing, retrying");
                if ctx.shutdown.is_triggered() {
                    return Finish::Released;
                }
                redis_backoff.wait().await;
            }
        }
    }
}

/// An attempt whose outcome must be learned before anything else is tried.
#[derive(Debug, Clone, Copy)]
struct Unresolved {
    processor: Processor,
    attempt: u32,
    /// When a 404 becomes conclusive, on this process' monotonic clock.
    safe_at: Instant,
    /// Redis' time at `seen`: a lookup asked at local instant `t` was asked at Redis time
    /// `redis_now + (t - seen)` or later (the reply left Redis before `seen`), so the
    /// estimate never overstates the ask time.
    redis_now: Millis,
    seen: Instant,
    /// The router's count of successful calls to `processor` when the unresolved call
    /// started (or when this was learned, for an attempt this task did not make): a count
    /// above it shows the processor answered a payment call in time since.
    successes: u64,
}

impl Unresolved {
    fn new(
        processor: Processor,
        attempt: u32,
        safe: SafeAt,
        seen: Instant,
        successes: u64,
    ) -> Self {
        let wait = Duration::from_millis((safe.safe - safe.now).max(0) as u64);
        Self {
            processor,
            attempt,
            safe_at: seen + wait,
            redis_now: safe.now,
            seen,
            successes,
        }
    }

    fn redis_time_at(&self, local: Instant) -> Millis {
        self.redis_now + millis(local.saturating_duration_since(self.seen))
    }
}

/// The state of one payment's handling in this process.
struct Payment<'a> {
    ctx: &'a Context,
    entry: &'a StreamEntry,
    lost: &'a AtomicBool,
    /// When the gateway accepted it (the stream entry id's time part).
    accepted_at: Millis,
    backoff: Backoff,
    unresolved: Option<Unresolved>,
    /// Definite failures, plus 422 answers the processor's lookup could not confirm.
    failures: u32,
    /// A retry on the processor an unresolved attempt is pinned to, with its permit (or the
    /// choice made for a first attempt not sent at once).
    retry: Option<(Processor, Permit)>,
    /// The first attempt the accept pinned, and Redis' clock when this consumer read the
    /// entry first: taken by the first run.
    first: Option<(FirstAttempt, RedisClock)>,
}

impl<'a> Payment<'a> {
    fn new(ctx: &'a Context, entry: &'a StreamEntry, lost: &'a AtomicBool) -> Self {
        let accepted_at = entry
            .entry_id
            .split_once('-')
            .and_then(|(ms, _)| ms.parse().ok())
            .unwrap_or_else(wall_now);
        Self {
            ctx,
            entry,
            lost,
            accepted_at,
            backoff: Backoff::new(ctx.config.retry_base, ctx.config.retry_max),
            unresolved: None,
            failures: 0,
            retry: None,
            first: None,
        }
    }

    async fn run(&mut self) -> Result<Finish, StoreError> {
        let (ctx, store, id) = (self.ctx, &self.ctx.store, &self.entry.payment);
        if let Some((first, clock)) = self.first.take() {
            if let Some(finish) = self.first_attempt(first, clock).await? {
                return Ok(finish);
            }
        }
        loop {
            // A retry's permit goes back to the breaker on every way out but the send.
            let retry = self.retry.take();
            let stop = if ctx.shutdown.is_triggered() {
                Some(Finish::Released)
            } else if self.lost.load(Ordering::Relaxed) {
                Some(Finish::Lost)
            } else {
                None
            };
            if let Some(finish) = stop {
                if let Some((p, permit)) = retry {
                    ctx.router.release(p, permit);
                }
                return Ok(finish);
            }
            if let Some(unresolved) = self.unresolved.take() {
                if let Some(finish) = self.resolve(unresolved).await? {
                    return Ok(finish);
                }
                continue;
            }
            let choice = match retry {
                Some((p, permit)) => Choice::Send(p, permit),
                None => self.choose(),
            };
            let (wanted, permit) = match choice {
                Choice::Send(p, permit) => (p, permit),
                Choice::Wait => {
                    // Held: the entry stays pending in Redis; wake on a recovery.
                    let mut shutdown = ctx.shutdown.clone();
                    let delay = self.backoff.next_delay();
                    tokio::select! {
                        _ = ctx.router.wait_for_change(delay) => {}
                        _ = shutdown.wait() => {}
                    }
                    continue;
                }
            };
            // The call must start within the send window of this moment: `begin` resets
            // the entry's idle time, so nobody can claim it before the window ends.
            let window = ctx.config.send_window();
            let start_by = SendDeadline::after(window);
            // The latest moment a byte of this attempt could still be stored: the call starts
            // within the window, lasts up to the timeout, may be delivered up to the late
            // bound after the client gave up, and is stored within the grace after that.
            let bound = window
                + ctx.config.processor_timeout
                + ctx.config.late_delivery
                + ctx.router.grace(wanted);
            // Chosen before `begin`, which keeps the earliest one a payment sent: what tells
            // this payment from an earlier one with the same id (`record_found`).
            let requested_at = wall_now();
            let begun = store
                .begin_attempt(
                    id,
                    wanted,
                    &ctx.config.consumer,
                    &self.entry.entry_id,
                    bound,
                    requested_at,
                )
                .await;
            let attempt = match begun {
                Err(e) => {
                    ctx.router.release(wanted, permit);
                    return Err(e);
                }
                Ok(Attempt::Go { attempt, .. }) => attempt,
                Ok(Attempt::Lost) => {
                    ctx.router.release(wanted, permit);
                    return Ok(Finish::Lost);
                }
                Ok(Attempt::Done(_) | Attempt::Missing) => {
                    ctx.router.release(wanted, permit);
                    store.ack(&self.entry.entry_id).await?;
                    return Ok(Finish::AlreadyDone);
                }
                Ok(Attempt::Pinned {
                    processor,
                    safe,
                    attempt,
                }) => {
                    ctx.router.release(wanted, permit);
                    let successes = ctx.router.successes(processor);
                    self.set_unresolved(processor, attempt, safe, successes);
                    continue;
                }
            };
            if attempt > 1 {
                metrics::counter!(names::RETRIES_TOTAL, "processor" => wanted.as_str())
                    .increment(1);
            }
            if let Some(finish) = self
                .send(wanted, permit, attempt, start_by, requested_at)
                .await?
            {
                return Ok(finish);
            }
        }
    }

    /// The first attempt the accept pinned to default: sent at once, without `begin`, while
    /// its window is open and Redis' memory has room. The window ends at the
    /// acceptance + the send window (the entry was read after the acceptance, so nobody can
    /// claim it before then: the fence), and early enough that the call can be stored by
    /// the bound the accept set (the bound every later step trusts). Otherwise: `begin` on
    /// default (attempt 2, the first counted unresolved until its bound), or, when this
    /// worker will not send to default now, the pin cleared first: nothing of attempt 1 was
    /// sent, and only the consumer that read the entry first may send it.
    async fn first_attempt(
        &mut self,
        first: FirstAttempt,
        clock: RedisClock,
    ) -> Result<Option<Finish>, StoreError> {
        let ctx = self.ctx;
        let default = Processor::Default;
        let lasts =
            ctx.config.processor_timeout + ctx.config.late_delivery + ctx.router.grace(default);
        let end = (first.at + millis(ctx.config.send_window())).min(first.safe - millis(lasts));
        let start_by = clock.deadline(end);
        // At a full memory `begin` refuses first: nothing is sent whose record would grow
        // memory further.
        let room = !ctx.memory.is_high();
        let (path, outcome) = match self.choose() {
            Choice::Send(Processor::Default, permit) if room && !start_by.passed() => {
                // Redis' time at the send, as bounded from the read, never before the
                // acceptance: the summary's margin counts from when the call is made, and
                // `rq0` (the acceptance) stays the earliest requestedAt this payment sends.
                let requested_at = first.at.max(clock.redis_now());
                let sent = self.send(default, permit, 1, start_by, requested_at).await;
                ("sent", sent)
            }
            Choice::Send(Processor::Default, permit) => {
                self.retry = Some((default, permit));
                ("late", Ok(None))
            }
            choice => {
                if let Choice::Send(other, permit) = choice {
                    self.retry = Some((other, permit));
                }
                (
                    "rerouted",
                    self.settle_failed(default, 1).await.map(|_| None),
                )
            }
        };
        metrics::counter!(names::FIRST_ATTEMPTS_TOTAL, "path" => path).increment(1);
        outcome
    }

    fn choose(&self) -> Choice {
        self.ctx.router.choose(self.age())
    }

    /// `attempt` on `processor` is unresolved as of now (`safe` from Redis); `successes`:
    /// the router's success count for `processor` to compare with before a retry there.
    fn set_unresolved(&mut self, processor: Processor, attempt: u32, safe: SafeAt, successes: u64) {
        self.unresolved = Some(Unresolved::new(
            processor,
            attempt,
            safe,
            Instant::now(),
            successes,
        ));
    }

    /// Since the gateway accepted the payment, for the routing policy.
    fn age(&self) -> Duration {
        Duration::from_millis(wall_now().saturating_sub(self.accepted_at).max(0) as u64)
    }

    /// One attempt on `processor`, pinned there by `begin`, sending `requested_at`; the call
    /// starts before `start_by` or not at all. `None` = keep going.
    async fn send(
        &mut self,
        processor: Processor,
        permit: Permit,
        attempt: u32,
        start_by: SendDeadline,
        requested_at: Millis,
    ) -> Result<Option<Finish>, StoreError> {
        let (ctx, entry) = (self.ctx, self.entry);
        #[cfg(feature = "test-hooks")]
        if let Some(hook) = &ctx.hooks.before_send {
            hook(&entry.payment);
        }
        let started = Instant::now();
        let successes_before = ctx.router.successes(processor);
        let timeout = ctx.router.timeout(processor);
        let sent = ctx
            .client
            .send(
                processor,
                &entry.payment,
                entry.amount,
                requested_at,
                timeout,
                start_by,
            )
            .await;
        let Some(outcome) = sent else {
            // Ownership may have lapsed while this task waited: nothing was sent, so this
            // attempt is a definite "not stored"; `begin` confirms ownership again.
            ctx.router.release(processor, permit);
            metrics::counter!(names::SEND_WINDOW_MISSED_TOTAL).increment(1);
            tracing::info!(correlation_id = %self.entry.payment, %processor, "send window passed before the call; confirming ownership again");
            self.settle_failed(processor, attempt).await?;
            // Redis (or this process) slower than the send window would otherwise make every
            // begin miss it again at once: back off like after any failed attempt.
            self.backoff.wait().await;
            return Ok(None);
        };
        let failed = matches!(outcome, SendOutcome::Failed { .. } | SendOutcome::Ambiguous);
        ctx.router
            .outcome(processor, permit, failed, started.elapsed());
        #[cfg(feature = "test-hooks")]
        if let Some(hook) = &ctx.hooks.after_send {
            if hook(&entry.payment, &outcome) {
                tracing::warn!("test hook: simulated crash after the processor call");
                std::future::pending::<()>().await;
            }
        }
        match outcome {
            SendOutcome::Stored => self.record(processor, requested_at).await.map(Some),
            SendOutcome::AlreadyStored => {
                // An earlier attempt got there: record it with the requestedAt the
                // processor holds, which is what its own summary counts.
                match ctx.client.lookup(processor, &entry.payment).await {
                    Lookup::Found { requested_at } => self
                        .record_found(processor, requested_at, attempt)
                        .await
                        .map(Some),
                    Lookup::Absent | Lookup::Unknown => {
                        // The processor claims it and cannot show it: the payment never
                        // leaves it on a 404 ("held"), and this counts towards the limit —
                        // unless a newer attempt (another consumer's) owns the outcome now.
                        if self
                            .unanswered(processor, attempt, true, Duration::ZERO, successes_before)
                            .await?
                        {
                            return self
                                .held_failure(&unconfirmed_422(processor), attempt)
                                .await;
                        }
                        self.backoff.wait().await;
                        Ok(None)
                    }
                }
            }
            SendOutcome::Failed { .. } => {
                self.failures += 1;
                let settled = self.settle_failed(processor, attempt).await?;
                if self.failures >= ctx.config.max_attempts {
                    let reason =
                        format!("{} definite failures, last on {processor}", self.failures);
                    // A payment the processor said it holds is given up with its pin kept.
                    let finish = match settled {
                        Settled::Cleared => self.dead_letter(&reason, FailMode::Final).await?,
                        Settled::Held => {
                            self.dead_letter(&reason, FailMode::KeepPin { attempt })
                                .await?
                        }
                        Settled::Stale | Settled::Early(_) => None,
                    };
                    if finish.is_some() {
                        return Ok(finish);
                    }
                }
                self.backoff.wait().await;
                Ok(None)
            }
            SendOutcome::Rejected { status } => {
                let reason = format!("{processor} processor rejected the payment with {status}");
                match self.settle_failed(processor, attempt).await? {
                    Settled::Cleared => self.dead_letter(&reason, FailMode::Final).await,
                    // An earlier attempt may still be stored: resolve it first; once the
                    // processor is known not to hold the payment, a rejection is final.
                    Settled::Early(_) => Ok(None),
                    // A newer attempt (another consumer's, after a claim) owns the outcome:
                    // `begin` decides what this task may still do.
                    Settled::Stale => {
                        self.backoff.wait().await;
                        Ok(None)
                    }
                    Settled::Held => self.held_failure(&reason, attempt).await,
                }
            }
            SendOutcome::Ambiguous => {
                // It may be stored later (queue wait and delay run before the store, and a
                // client timeout does not cancel them): learn the outcome first.
                tracing::debug!(%processor, "no answer in time; the payment stays pinned there");
                // What is left of the client timeout: the request may still arrive.
                let in_flight_for = timeout.saturating_sub(started.elapsed());
                self.unanswered(processor, attempt, false, in_flight_for, successes_before)
                    .await?;
                Ok(None)
            }
        }
    }

    /// One more failure of a payment its processor claims to hold (422): at `MAX_ATTEMPTS`
    /// it is dead-lettered with its pin kept (if `attempt` is still the payment's latest and
    /// this consumer still owns its entry), else the task backs off.
    async fn held_failure(
        &mut self,
        reason: &str,
        attempt: u32,
    ) -> Result<Option<Finish>, StoreError> {
        self.failures += 1;
        if self.failures >= self.ctx.config.max_attempts {
            return self
                .dead_letter(reason, FailMode::KeepPin { attempt })
                .await;
        }
        self.backoff.wait().await;
        Ok(None)
    }

    /// The attempt got a definite "not stored". `Cleared`: the pin is released; `Early`:
    /// an earlier attempt is still unresolved and is resolved next; `Held`: the processor
    /// said it holds the payment (422), so it stays there.
    async fn settle_failed(
        &mut self,
        processor: Processor,
        attempt: u32,
    ) -> Result<Settled, StoreError> {
        let (store, id, sid) = (&self.ctx.store, &self.entry.payment, &self.entry.entry_id);
        let settled = self
            .until_run(|| store.settle(id, sid, processor, attempt, Settle::Failed))
            .await?;
        if let Settled::Early(safe) = settled {
            let successes = self.ctx.router.successes(processor);
            self.set_unresolved(processor, attempt, safe, successes);
        }
        Ok(settled)
    }

    /// The call of `attempt`, started at `started` with client timeout `timeout`, ended
    /// without a usable answer: from Redis, the moment after which a 404 proves it absent;
    /// then resolve it. A call cut short (a reset, a proxy's 502/504) may still reach the
    /// processor until its timeout would have ended it, and a request given up on may still
    /// be delivered up to the late bound after that, so the grace runs from then.
    /// `successes_before`: the router's success count for `processor` when the call started.
    async fn unanswered(
        &mut self,
        processor: Processor,
        attempt: u32,
        held: bool,
        in_flight_for: Duration,
        successes_before: u64,
    ) -> Result<bool, StoreError> {
        let grace =
            self.ctx.router.grace(processor) + in_flight_for + self.ctx.config.late_delivery;
        let (store, id, sid) = (&self.ctx.store, &self.entry.payment, &self.entry.entry_id);
        let safe = self
            .until_run(|| store.unanswered(id, sid, processor, attempt, grace, held))
            .await?;
        if let Some(safe) = safe {
            self.set_unresolved(processor, attempt, safe, successes_before);
        }
        Ok(safe.is_some())
    }

    /// The payment is pinned to `u.processor` with an attempt of unknown outcome (ours, or
    /// one a stopped consumer left). Ask that processor: found → record at once; 404 asked
    /// after the safe time → clear the pin, the payment may go anywhere.
    async fn resolve(&mut self, mut u: Unresolved) -> Result<Option<Finish>, StoreError> {
        let ctx = self.ctx;
        let mut shutdown = ctx.shutdown.clone();
        loop {
            // "Found" is conclusive at once and is recorded without waiting, so the
            // summary catches up with the processor as soon as it stored the payment;
            // "absent" only counts for a lookup asked once no attempt can still be stored.
            let asked = Instant::now();
            match ctx.client.lookup(u.processor, &self.entry.payment).await {
                Lookup::Found { requested_at } => {
                    return self
                        .record_found(u.processor, requested_at, u.attempt)
                        .await
                        .map(Some);
                }
                Lookup::Absent if asked > u.safe_at => {
                    let how = Settle::Absent {
                        asked_at: u.redis_time_at(asked),
                    };
                    let (store, id, sid) = (&ctx.store, &self.entry.payment, &self.entry.entry_id);
                    let settled = self
                        .until_run(|| store.settle(id, sid, u.processor, u.attempt, how))
                        .await?;
                    match settled {
                        Settled::Cleared => {
                            tracing::debug!(processor = %u.processor, "confirmed absent; the payment may move");
                            return Ok(None);
                        }
                        Settled::Stale => return Ok(None),
                        Settled::Held => {
                            return self
                                .held_failure(&unconfirmed_422(u.processor), u.attempt)
                                .await;
                        }
                        Settled::Early(safe) => {
                            u = Unresolved::new(
                                u.processor,
                                u.attempt,
                                safe,
                                Instant::now(),
                                u.successes,
                            );
                        }
                    }
                }
                Lookup::Absent => {
                    if let Some(permit) = self.retry_permit(&u) {
                        tracing::debug!(processor = %u.processor, "not stored there yet and it answers again: retrying there");
                        self.retry = Some((u.processor, permit));
                        return Ok(None);
                    }
                }
                Lookup::Unknown => {}
            }
            if self.lost.load(Ordering::Relaxed) {
                return Ok(Some(Finish::Lost));
            }
            let until_safe = u.safe_at.saturating_duration_since(Instant::now());
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

    /// A permit to send the payment again to the processor its unresolved attempt is pinned
    /// to, before the safe time: docs/protocol.md §3 allows a retry there at any time (its `200` stores
    /// it once, its `422` says it holds it; `begin` keeps the earlier attempt's bound). Only
    /// once a payment call to that processor has succeeded since the unresolved call started
    /// (or since the attempt was learned unresolved, for one this task did not make) — a
    /// processor none of whose calls succeed would just get the payment twice — and
    /// only where the policy would send the payment now (a pin on fallback is not worth the
    /// fee while default takes calls: that one waits for the safe time, then moves).
    fn retry_permit(&self, u: &Unresolved) -> Option<Permit> {
        if self.ctx.router.successes(u.processor) == u.successes {
            return None;
        }
        self.ctx.router.permit_if_chosen(u.processor, self.age())
    }

    /// Records what a processor's lookup found, unless it is not this payment: a
    /// `requestedAt` older than the earliest one any attempt of this payment sent (`begin`
    /// keeps it before each send) belongs to an earlier payment that used the same
    /// correlationId before this one's status expired (`PAYMENT_RETENTION`). That one can
    /// never be stored there (422 for ever) and must not go elsewhere under the same id: it is
    /// dead-lettered with its pin kept, and nothing is counted twice. Both values come from
    /// workers' clocks, and one of this payment's own is never older than the earliest: no
    /// worker clock, however wrong, makes a stored payment look like an earlier one.
    async fn record_found(
        &self,
        processor: Processor,
        requested_at: Millis,
        attempt: u32,
    ) -> Result<Finish, StoreError> {
        let view = self.ctx.store.payment(&self.entry.payment).await?;
        let earlier = match view {
            Some(PaymentView {
                first_requested_at: Some(first),
                ..
            }) => requested_at < first,
            // Begun only by a worker of a version that kept no `rq0`: the acceptance time
            // with a margin for that worker's clock, as that version judged it.
            Some(view) => requested_at < view.accepted_at - REUSE_MARGIN_MS,
            None => false,
        };
        if earlier {
            let reason = format!(
                "correlationId already used: the {processor} processor holds an earlier payment with it, requested at {}",
                common::time::format_ms(requested_at)
            );
            return Ok(self
                .dead_letter(&reason, FailMode::KeepPin { attempt })
                .await?
                .unwrap_or(Finish::AlreadyDone));
        }
        self.record(processor, requested_at).await
    }

    async fn record(
        &self,
        processor: Processor,
        requested_at: Millis,
    ) -> Result<Finish, StoreError> {
        let (entry, store) = (self.entry, &self.ctx.store);
        let recorded = self
            .until_run(|| {
                store.record(
                    &entry.payment,
                    entry.amount,
                    processor,
                    requested_at,
                    &entry.entry_id,
                )
            })
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

    /// Runs `call` (a record, settle or unanswered of what this task learned) until Redis
    /// runs it: refused before running (`TRYAGAIN` while a purge holds its flag, `OOM` at a
    /// full memory for a script without `allow-oom`, `BUSY`, `LOADING`, a refused
    /// connection: [`not_run`]), the same call goes again after a back-off. Starting the
    /// payment over from `begin` instead would send a payment its processor already
    /// stored again after every back-off, count its lookups towards the limit, and at a full
    /// memory lose an answer in hand to a refused `begin`. Other errors (the call may have
    /// run) and shutdown return the error to [`process`].
    async fn until_run<T, F, Fut>(&self, mut call: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        loop {
            match call().await {
                Err(e) if not_run(&e) && !self.ctx.shutdown.is_triggered() => {
                    metrics::counter!(names::REDIS_ERRORS_TOTAL, "kind" => e.kind()).increment(1);
                    tracing::debug!(correlation_id = %self.entry.payment, error = %e, "refused before it ran; the same call again");
                    let mut shutdown = self.ctx.shutdown.clone();
                    tokio::select! {
                        _ = backoff.wait() => {}
                        _ = shutdown.wait() => {}
                    }
                }
                other => return other,
            }
        }
    }

    /// `None` when refused because a processor may still hold the payment.
    async fn dead_letter(
        &self,
        reason: &str,
        mode: FailMode,
    ) -> Result<Option<Finish>, StoreError> {
        let entry = self.entry;
        let outcome = self
            .ctx
            .store
            .dead_letter(
                &entry.payment,
                &entry.amount.get().to_string(),
                reason,
                &entry.entry_id,
                mode,
                &self.ctx.config.consumer,
            )
            .await?;
        Ok(match outcome {
            Recorded::Now => {
                metrics::counter!(names::DEAD_LETTERS_TOTAL, "reason" => dead_letter_kind(reason))
                    .increment(1);
                tracing::warn!(correlation_id = %self.entry.payment, reason, "payment dead-lettered");
                Some(Finish::DeadLettered)
            }
            Recorded::AlreadyDone | Recorded::Missing => Some(Finish::AlreadyDone),
            Recorded::Unresolved => None,
        })
    }
}

/// This process' wall clock (UTC ms), used only for what is not a safety decision: the
/// `requestedAt` sent (and recorded as sent; compared only with other `requestedAt`s) and a
/// payment's age for the routing policy.
/// Every bound the exactly-once rules compare comes from Redis' clock or from this
/// process' monotonic clock. Test builds can skew it to prove that.
fn wall_now() -> Millis {
    #[cfg(feature = "test-hooks")]
    {
        now_ms() + CLOCK_SKEW_MS.load(Ordering::Relaxed)
    }
    #[cfg(not(feature = "test-hooks"))]
    {
        now_ms()
    }
}

/// Test builds: milliseconds added to this process' wall clock.
#[cfg(feature = "test-hooks")]
pub static CLOCK_SKEW_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// [`REUSE_MARGIN`](crate::config::REUSE_MARGIN) in milliseconds.
const REUSE_MARGIN_MS: Millis = crate::config::REUSE_MARGIN.as_millis() as Millis;

/// Why a payment is given up when its processor says 422 but never shows it.
fn unconfirmed_422(processor: Processor) -> String {
    format!("{processor} processor answered 422 but its lookup does not find the payment")
}

/// Bounded metric label of a dead-letter reason.
pub fn dead_letter_kind(reason: &str) -> &'static str {
    if reason.contains("already used") {
        "reused_id"
    } else if reason.contains("422") {
        "unconfirmed_duplicate"
    } else if reason.contains("rejected") {
        "rejected"
    } else if reason.contains("undecodable") {
        "undecodable"
    } else {
        "max_attempts"
    }
}

/// The memory mark, in percent of `maxmemory`, past which a worker sends no first attempt
/// without `begin`: full.
pub const MEMORY_FULL: u8 = 100;
