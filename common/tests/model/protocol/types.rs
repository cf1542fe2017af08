//! The model's vocabulary: configuration, fault budgets, seeded faults, the state and the
//! actions.

use crate::scripts::{self, Redis, NP};

/// A Redis-clock time in ticks.
pub type Time = u16;
/// An attempt number (`att`).
pub type Att = u8;
/// A stream entry id, per payment.
pub type Gen = u8;

/// Most workers a model can have.
pub const NW: usize = 2;

/// The requestedAt of the earlier payment a processor may hold under a payment's id
/// ([`Config::earlier_use`]): before every time of the run, which starts at
/// [`Config::epoch`]. The canonical form leaves it where it is.
pub const LONG_AGO: Time = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proc {
    Default,
    Fallback,
}

impl Proc {
    pub const ALL: [Proc; 2] = [Proc::Default, Proc::Fallback];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Proc::Default => "default",
            Proc::Fallback => "fallback",
        }
    }
}

/// Redis `appendfsync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// A reply means the write is on disk.
    Always,
    /// Synced once per tick: a crash loses the writes of the current tick.
    EverySec,
}

/// How many of each fault may still happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Budget {
    /// A worker process dies (its tasks vanish) and restarts under the same consumer name.
    pub crashes: u8,
    /// A worker stops (tasks and heartbeat) for as long as the schedule likes.
    pub freezes: u8,
    /// A POST that never reaches the processor, or a connection reset / 502 / 504 before the
    /// client timeout.
    pub messages: u8,
    /// Redis restarts and loses its unsynced tail (`everysec` only).
    pub redis_losses: u8,
    /// An operator re-drives the dead letters.
    pub redrives: u8,
    /// A task calls begin.lua again while its attempt is unresolved, at any moment (docs/protocol.md §3
    /// allows a retry on the pinned processor; the worker makes one once that processor
    /// answers again, and begin.lua sends a task wanting the other one back to resolving).
    /// Not a fault: budgeted only so that the states stay finite (each retry can leave one
    /// more POST in a processor's queue).
    pub retries: u8,
    /// An operator purges every payment (`POST /purge-payments`): its first step is budgeted
    /// like a fault, the rest follow as the operator's steps.
    pub purges: u8,
    /// A worker's stale-consumer cleanup (every 30 heartbeats) deletes consumers. Not a
    /// fault: budgeted so that the states stay finite.
    pub cleanups: u8,
    /// Redis memory reaches `maxmemory` (`noeviction`): scripts without `allow-oom` are
    /// refused until something is deleted.
    pub memory_fills: u8,
    /// The purge flag expires while its purge runs (more than its expiry between two
    /// renewals: slow calls, a long SCAN): records run again.
    pub flag_expiries: u8,
}

/// Seeded bugs: each must make the checker find a violation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// (a) begin.lua without its ownership check AND the send without its local deadline:
    /// a worker frozen after `go` sends after losing the entry.
    pub no_fence: bool,
    /// Only the local send deadline dropped (begin keeps its check).
    pub no_send_deadline: bool,
    /// (b) a 404 judged by the time its answer is read instead of the time it was asked.
    pub absence_at_answer: bool,
    /// (c) the worker's grace leaves out the processor's queue wait: it uses `g - 1`
    /// while the processor may store up to `g` after receiving.
    pub grace_without_queue_wait: bool,
    /// (e) the previous redrive.lua: `att` reset to 0 and the pin forgotten.
    pub old_redrive: bool,
    /// (f) the grace after a call cut short counted from when it ended, not from when its
    /// timeout would have ended it (the worker before the model found it).
    pub grace_from_reset: bool,
    /// (g) begin.lua on a retry to the pinned processor without the earlier attempt's bound:
    /// its `safe` only from now, `safe0` empty, so a definite failure of the retry clears a
    /// pin whose first POST may still be stored.
    pub retry_forgets_earlier: bool,
    /// (h) an error answer that is not the processor's own (a proxy's 503 / HTML 500 after
    /// forwarding) taken for the processor's definite failure: settle 'failed' instead of
    /// unanswered (the worker before `dispatch/outcome.rs` required the processor's body).
    pub proxy_error_is_failure: bool,
    /// (i) the worker's bounds without the late-delivery allowance (`LATE_DELIVERY_MS`): a
    /// request the worker gave up on that arrives late is stored after the payment moved.
    pub no_late_bound: bool,
    /// (j) record.lua without its purge-flag check: a payment the purge keeps is counted in
    /// the summary the purge's last step wipes, while its status says processed.
    pub record_ignores_purge: bool,
    /// (k) the stale-consumer cleanup as two calls, the check (XINFO CONSUMERS) and the
    /// delete (XGROUP DELCONSUMER): a consumer that reads in between loses the entries it
    /// read to the delete.
    pub split_consumer_cleanup: bool,
    /// (l) record.lua, settle.lua and unanswered.lua without `allow-oom`: at a full memory a
    /// worker cannot carry an attempt it made to Redis, and no deletion frees memory.
    pub no_allow_oom: bool,
    /// (m) a definite failure (a processor's own 500) not counted towards `max_attempts`:
    /// a processor failing every attempt keeps the worker sending forever (a livelock: a
    /// finished state stays reachable all along).
    pub uncounted_failures: bool,
    /// (n) the purge before this model found its holes: purge.lua deletes every processed
    /// or failed status whatever its entry, and `purge_start` notes where the payment stream
    /// ends before where the dead-letter stream ends: a payment accepted during the purge
    /// and dead-lettered meanwhile loses its status, or its letter to the purge's trim.
    pub purge_forgets_newer: bool,
    /// (p) the first attempt's send window counted from when the entry was read instead of
    /// from its acceptance: a consumer that reads an old entry sends after the bound
    /// accept.lua promised, and a claimer that judges absence by that bound moves it.
    pub first_from_read: bool,
    /// (o) the reused-id check before `rq0`: a found `requestedAt` older than the acceptance
    /// time (Redis' clock) minus the margin taken for an earlier payment's. A worker whose
    /// clock is behind Redis' by more than the margin dead-letters what the processor stored.
    pub clock_compare: bool,
    /// settle.lua and unanswered.lua without the check that the caller's stream entry is the
    /// payment's (`sid`), as they were when fault (e) was found: a task of an older entry
    /// then matches a newer attempt with the same number.
    pub no_entry_check: bool,
    /// (q) the purge flag without an owner: purge.lua sets it on every call and the purge's
    /// last step clears it and wipes the summary whoever holds it (no token). A purge whose
    /// flag expired wipes the shares recorded meanwhile, while their statuses say processed.
    pub purge_without_owner: bool,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub workers: usize,
    pub payments: usize,
    /// Send window: the POST must start before `t0 + d` (t0 taken before `begin`).
    pub d: Time,
    /// Client timeout.
    pub t: Time,
    /// Processor queue wait + delay: a received POST is stored (or refused) within `g`.
    pub g: Time,
    /// Late delivery: a POST may reach the processor up to `late` after its client timeout
    /// (a proxy holding it, a retransmitted request, an accept queue read late).
    pub late: Time,
    /// XAUTOCLAIM min-idle; the heartbeat runs every tick (`claim_idle / 3` with 3 ticks).
    pub claim_idle: Time,
    /// Definite failures (and 422 anomalies) before a dead letter.
    pub max_attempts: u8,
    pub durability: Durability,
    pub budget: Budget,
    pub faults: Faults,
    /// Whether a POST whose call ended early (reset, 502, 504) may still be received later
    /// (up to its send start + `t`), as through a proxy or a kernel backlog.
    pub reset_reaches_later: bool,
    /// A 404 proves absence only when asked strictly after `safe` (settle.lua: `asked <=
    /// safe` → 'early'), as the scripts do since this model found the boundary. `false` =
    /// the inclusive check they had before.
    pub strict_safe: bool,
    /// The worker may also look up before a 404 would count (to record a "found" sooner).
    /// Off by default: such a lookup either finds what the processor really stored (recorded
    /// the same way later) or changes nothing, and exploring it multiplies the states.
    pub early_lookups: bool,
    /// A worker that is not frozen takes its steps before time passes (only a freeze makes
    /// a task slow). Off: a task may take any time between two steps, heartbeat still on time.
    pub prompt_workers: bool,
    /// Payments are accepted by the gateway as steps of the model (else all are accepted
    /// before anything else happens, which gives fewer states).
    pub accept_steps: bool,
    /// accept.lua pins each payment's first attempt to default with the bound `bound()`
    /// from its acceptance (`FIRST_ATTEMPT_MS` > 0), and the consumer that reads the entry
    /// within the send window of the acceptance sends it without begin.lua.
    pub first_attempt: bool,
    /// Per worker: its wall clock minus Redis' (ticks; negative: behind). It stamps the
    /// `requestedAt` a task sends, chosen before `begin` (`pipeline.rs` `wall_now`).
    pub skew: [i8; NW],
    /// The processor that starts out holding an earlier payment under the first payment's
    /// correlation id, requested [`LONG_AGO`] (the id was accepted again after the earlier
    /// one's status expired). `None`: every id is new.
    pub earlier_use: Option<Proc>,
    /// `REUSE_MARGIN` in ticks: how far behind Redis' clock seeded fault (o) tolerates a
    /// worker's (and the check of a status without `rq0`, which the model never writes).
    pub margin: Time,
}

impl Config {
    /// The exhaustive CI configuration: 2 workers, `payments` payments, 2 processors, one of
    /// each fault.
    pub fn ci(payments: usize) -> Self {
        Config {
            workers: 2,
            payments,
            d: 1,
            t: 1,
            g: 1,
            late: 0,
            claim_idle: 3,
            max_attempts: 2,
            durability: Durability::Always,
            budget: Budget {
                crashes: 1,
                freezes: 1,
                messages: 1,
                redis_losses: 0,
                redrives: 1,
                retries: 1,
                purges: 0,
                cleanups: 0,
                memory_fills: 0,
                flag_expiries: 0,
            },
            faults: Faults::default(),
            reset_reaches_later: false,
            strict_safe: false,
            early_lookups: false,
            prompt_workers: false,
            accept_steps: false,
            first_attempt: true,
            skew: [0; NW],
            earlier_use: None,
            margin: 1,
        }
    }

    /// Whether requestedAt is modelled apart from the send time: some worker's clock is off
    /// Redis', or an id was used before. Only then do the statuses keep `rq0` and `at` and
    /// do times start at [`Config::epoch`] (other configurations keep their sizes).
    pub fn clocks(&self) -> bool {
        self.skew != [0; NW] || self.earlier_use.is_some()
    }

    /// The least time of a canonical state (and the first tick): above [`LONG_AGO`] by more
    /// than any worker's clock is behind plus the margin, so every requestedAt and every
    /// acceptance time minus the margin of the run is later than the earlier payment's.
    pub fn epoch(&self) -> Time {
        if self.clocks() {
            self.widest_gap()
        } else {
            0
        }
    }

    /// The grace the worker passes to unanswered.lua (and counts in begin's bound).
    pub fn worker_grace(&self) -> Time {
        if self.faults.grace_without_queue_wait {
            self.g.saturating_sub(1)
        } else {
            self.g
        }
    }

    /// The late-delivery allowance the worker adds to every bound (`LATE_DELIVERY_MS`).
    pub fn worker_late(&self) -> Time {
        if self.faults.no_late_bound {
            0
        } else {
            self.late
        }
    }

    /// begin.lua's bound: send window + client timeout + late delivery + processor queue
    /// wait and delay.
    pub fn bound(&self) -> Time {
        self.d + self.t + self.worker_late() + self.worker_grace()
    }

    /// What accept.lua is given: the first attempt pinned with the bound, from `now`.
    pub fn first(&self, now: Time) -> Option<scripts::FirstAttempt> {
        self.first_attempt.then(|| scripts::FirstAttempt {
            now,
            bound: self.bound(),
        })
    }

    /// The largest constant two times are compared with, plus one: wider gaps are shrunk.
    pub(super) fn widest_gap(&self) -> Time {
        self.bound()
            .max(self.t + self.late + self.g)
            .max(self.claim_idle)
            .max(self.d)
            .max(self.margin + self.most_skew())
            + 1
    }

    /// The largest distance between a worker's clock and Redis'.
    fn most_skew(&self) -> Time {
        self.skew
            .iter()
            .map(|s| Time::from(s.unsigned_abs()))
            .max()
            .unwrap_or(0)
    }
}

/// The answer a POST got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reply {
    /// 200: stored now.
    Stored,
    /// 500: failing, not stored.
    Failed,
    /// 422: already stored.
    AlreadyStored,
}

/// Where one payment task is: the step it takes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// Choose a processor and call begin.lua.
    Begin,
    /// begin said go at `t0` (local clock, taken before the call), or (`first`) the entry
    /// read carries the first attempt accept.lua pinned at `t0`: send the POST if still
    /// before `t0 + d`, else settle this attempt as failed.
    Send {
        proc: Proc,
        att: Att,
        t0: Time,
        first: bool,
    },
    /// The POST is out; `reply` once the processor answered within the client timeout.
    AwaitPost {
        proc: Proc,
        att: Att,
        sent: Time,
        reply: Option<Reply>,
    },
    /// An attempt on `proc` is unresolved: look it up (a 404 counts from `safe` on).
    Resolve {
        proc: Proc,
        att: Att,
        safe: Option<Time>,
    },
    /// GET /payments/{id} asked at `asked`; `answer` = Some(requestedAt stored, or None: 404).
    AwaitLookup {
        proc: Proc,
        att: Att,
        safe: Option<Time>,
        asked: Time,
        after_422: bool,
        answer: Option<Option<Time>>,
    },
    /// Call fail.lua (`keep`: leave the pin, after 422 anomalies of that attempt).
    Fail { keep: Option<Att> },
}

/// One payment being handled by a worker (its stream entry, counters and step).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Task {
    pub entry: Gen,
    pub failures: u8,
    pub anomalies: u8,
    pub step: Step,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Worker {
    pub frozen: bool,
    /// At most one task per payment (reclaim skips entries this consumer is working on).
    pub tasks: [Option<Task>; NP],
}

/// A POST on its way to, or waiting in, a processor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Post {
    pub payment: u8,
    pub proc: Proc,
    pub att: Att,
    /// Send start (Redis' clock).
    pub sent: Time,
    /// Its requestedAt: the sending worker's clock when the task chose it, before `begin`
    /// (the send start where [`Config::clocks`] is off).
    pub requested: Time,
    /// The processor has handled it (stored / 500 / 422) by then.
    pub deadline: Time,
    /// The worker still waiting for its answer.
    pub to: Option<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct State {
    pub now: Time,
    pub redis: Redis,
    /// `everysec`: what Redis would come back with after a crash.
    pub durable: Option<Redis>,
    pub workers: [Worker; NW],
    /// In flight to the processors, sorted.
    pub posts: Vec<Post>,
    /// Per processor, per payment: the requestedAt it stored for this acceptance.
    pub stored: [[Option<Time>; NP]; 2],
    /// Per payment: the processor that holds an earlier payment under its id, requested
    /// [`LONG_AGO`] ([`Config::earlier_use`]); it answers 422 to this one's POSTs and shows
    /// the earlier one on a lookup.
    pub earlier: [Option<Proc>; NP],
    /// The gateway answered 2xx for it.
    pub accepted: [bool; NP],
    pub budget: Budget,
    /// A purge under way: where it started and how far it got (the operator's `PurgeRun`).
    pub purge: Option<Purge>,
    /// Per payment: a purge deleted its status.
    pub purged: [bool; NP],
    /// Per payment: accepted after a purge started (noted where the stream ended), so that
    /// purge must keep it.
    pub accepted_in_purge: [bool; NP],
    /// Redis memory is at `maxmemory` (`noeviction`).
    pub full: bool,
    /// Seeded fault (k): a cleanup between its check and its delete: (worker, the consumers
    /// the check found, one bit each).
    pub cleanup: Option<(u8, u8)>,
}

/// A purge under way (`Store::purge_start` / `purge_sweep` / `purge_finish`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Purge {
    /// Per payment: its newest entry id when the purge noted where the stream ended (`None`
    /// until then). Entry ids are per payment in the model, and every later one is newer.
    pub last: Option<[Gen; NP]>,
    /// Per payment: the dead letters held when the purge noted where the dead-letter stream
    /// ended (`None` until then). The sweep starts once both are noted.
    pub dead_before: Option<[u8; NP]>,
    /// Per payment: its status existed when the sweep's SCAN began, so SCAN returns it.
    pub listed: [bool; NP],
    /// Per payment: the sweep ran purge.lua on it (SCAN may return a key more than once; a
    /// second run changes nothing a first one left, so once is enough).
    pub swept: [bool; NP],
    /// A step found the flag not its own (PURGELOST) and the purge stopped: the operator runs
    /// it again (the gateway's 409 says so).
    pub lost: bool,
}

/// Every step of the model. Those that run a script are named after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Tick,
    /// Gateway: accept.lua.
    Accept(u8),
    /// Worker: XREADGROUP of stream entry #i.
    Read(u8, u8),
    /// Worker: XAUTOCLAIM of stream entry #i.
    Claim(u8, u8),
    /// Task (worker, payment): begin.lua wanting that processor.
    Begin(u8, u8, Proc),
    /// Task: the local deadline check, then the POST (or settle.lua 'failed').
    Send(u8, u8),
    /// Task: a first attempt the worker does not send at once (its router wants begin.lua
    /// for it, or the window passed): begin.lua instead, the pin left as it is.
    Skip(u8, u8),
    /// Task: the POST's answer → record.lua / settle.lua / a lookup.
    Reply(u8, u8),
    /// Task: the client timeout → unanswered.lua.
    Timeout(u8, u8),
    /// Task: GET /payments/{id}.
    Ask(u8, u8),
    /// Task: begin.lua again while its attempt is unresolved (a retry on the pinned processor).
    Retry(u8, u8),
    /// Task: the lookup's answer → record.lua / settle.lua 'absent' / unanswered.lua held.
    Answer(u8, u8),
    /// Task: fail.lua.
    Fail(u8, u8),
    /// Processor: handles POST #i (stores it, answers 500, or 422 if it has it).
    Process(u8, Reply),
    /// Processor: answers the lookup of task (worker, payment).
    Lookup(u8, u8),
    /// Operator: redrive.lua.
    Redrive,
    Unfreeze(u8),
    // Faults.
    Crash(u8),
    Freeze(u8),
    /// POST #i never reaches its processor.
    Drop(u8),
    /// Task: the connection is reset, or an error answer that is not the processor's own
    /// (a proxy's 502/503/504, an HTML 500) arrives, before or after the processor handled
    /// the POST → unanswered.lua at once.
    Reset(u8, u8),
    /// Redis restarts from its last fsync.
    RedisLoss,
    /// Operator: `purge_start`, purge.lua with no payment (the flag), then where the payment
    /// stream ends (with fault (n): where the payment stream ends). Budgeted like a
    /// fault.
    PurgeStart,
    /// Operator: `purge_start` goes on: where the other stream ends.
    PurgeNoteEnd,
    /// Operator: `purge_sweep`'s purge.lua on a SCAN batch holding payment #p.
    PurgeSweep(u8),
    /// Operator: `purge_finish`, purge_finish.lua.
    PurgeFinish,
    /// The purge flag expires while its purge runs.
    PurgeFlagExpires,
    /// Operator: a purge that lost its flag is run again from `purge_start`.
    PurgeRestart,
    /// Worker: drop_consumers.lua.
    DropConsumers(u8),
    /// Seeded fault (k): the worker's check of the consumers (XINFO CONSUMERS)…
    CheckConsumers(u8),
    /// …and its XGROUP DELCONSUMER of those the check found.
    DelConsumers(u8),
    /// Redis memory reaches `maxmemory`.
    FillMemory,
    /// Memory freed by what the model leaves out: other payments recorded, the retention,
    /// an operator.
    FreeMemory,
}

/// Fairness classes (bits): steps that, once enabled and staying so, are taken.
pub mod fair {
    /// The operator's purge goes on.
    pub const PURGE: u8 = 1;
    /// Memory is freed from outside.
    pub const MEMORY: u8 = 2;
    /// Worker `w` resumes: `UNFREEZE << w`.
    pub const UNFREEZE: u8 = 4;
}

impl Action {
    /// Faults (and the operator's redrive and purge): the liveness check asks what can still
    /// be reached without them. A purge once started is carried through: its later steps
    /// are not faults.
    pub fn is_fault(self) -> bool {
        matches!(
            self,
            Action::Crash(_)
                | Action::Freeze(_)
                | Action::Drop(_)
                | Action::Reset(..)
                | Action::RedisLoss
                | Action::Redrive
                | Action::PurgeStart
                | Action::PurgeFlagExpires
                | Action::FillMemory
        )
    }

    /// Help from outside the model: memory freed by other payments or an operator. The
    /// memory check asks what in-flight work reaches without it.
    pub fn is_help(self) -> bool {
        matches!(self, Action::FreeMemory)
    }

    /// The fairness classes the step belongs to ([`fair`]).
    pub fn fairness(self) -> u8 {
        match self {
            Action::PurgeNoteEnd
            | Action::PurgeSweep(_)
            | Action::PurgeFinish
            | Action::PurgeRestart => fair::PURGE,
            Action::FreeMemory => fair::MEMORY,
            Action::Unfreeze(w) => fair::UNFREEZE << w,
            _ => 0,
        }
    }
}

pub fn worker_name(w: usize) -> char {
    (b'A' + w as u8) as char
}
