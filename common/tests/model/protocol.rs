//! The payment protocol as one state machine (a stateright [`Model`]): Redis as the scripts
//! change it ([`crate::scripts`]), the workers' per-payment tasks, two processors, one clock,
//! and the faults — each a budgeted action, so the state space stays finite.
//!
//! Time is a global tick. Redis `TIME` is the tick; the workers' monotonic clocks run at the
//! same rate. Nothing bounds how long a worker's task takes between two of its steps (it can
//! be slow anywhere); only the heartbeat of a worker that is not frozen runs on time (once
//! per tick, `claim_idle` ≥ 3 ticks), so only a freeze or a crash lets a claim take an entry.
//! The processors keep to docs/protocol.md §3: a POST is received within `t` of
//! its send start (or never) and stored — or answered 500 or 422 — at most `g` after; a
//! client timeout does not cancel it. A lookup is answered within `t` of being asked, from
//! the processor's state at that moment.
//!
//! States are kept finite without a time horizon: times are only ever compared with each
//! other up to a small constant, so [`State::normalize`] shifts them to start at 0 and shrinks
//! any gap wider than that constant (the same for attempt numbers and entry ids, compared
//! for equality and "the next one"), and keeps the least of the states that differ only by
//! the names of workers or payments. A trace is lifted onto the model without normalization
//! ([`Protocol::concrete`]) to print real times.
//!
//! Why one payment covers any number: every script reads and writes one payment's keys
//! (redrive and touch loop over payments independently), processors keep payments apart, and
//! a worker's crash or freeze is, for each payment, a crash or freeze of that payment's task.
//! So every run with several payments, restricted to one payment, is a run of the
//! one-payment model with no more faults; each property is about one payment at a time.
//! The two-payment configurations are a cross-check of that argument.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use stateright::{Model, Property};

use crate::scripts::{
    self, AcceptReply, BeginReply, FailReply, RecordReply, Redis, Settle, SettleReply, St, NP,
};

/// A Redis-clock time in ticks.
pub type Time = u16;
/// An attempt number (`att`).
pub type Att = u8;
/// A stream entry id, per payment.
pub type Gen = u8;

/// Most workers a model can have.
pub const NW: usize = 2;

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
            },
            faults: Faults::default(),
            reset_reaches_later: false,
            strict_safe: false,
            early_lookups: false,
            prompt_workers: false,
            accept_steps: false,
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

    /// The largest constant two times are compared with, plus one: wider gaps are shrunk.
    fn widest_gap(&self) -> Time {
        self.bound()
            .max(self.t + self.late + self.g)
            .max(self.claim_idle)
            .max(self.d)
            + 1
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
    /// begin said go at `t0` (local clock, taken before the call): send the POST if still
    /// before `t0 + d`, else settle this attempt as failed.
    Send { proc: Proc, att: Att, t0: Time },
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
    /// Send start, also its requestedAt.
    pub sent: Time,
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
    /// Per processor, per payment: the requestedAt it stored.
    pub stored: [[Option<Time>; NP]; 2],
    /// The gateway answered 2xx for it.
    pub accepted: [bool; NP],
    pub budget: Budget,
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
}

impl Action {
    /// Faults (and the operator's redrive): the liveness check asks what can still be reached
    /// without them.
    pub fn is_fault(self) -> bool {
        matches!(
            self,
            Action::Crash(_)
                | Action::Freeze(_)
                | Action::Drop(_)
                | Action::Reset(..)
                | Action::RedisLoss
                | Action::Redrive
        )
    }
}

pub fn worker_name(w: usize) -> char {
    (b'A' + w as u8) as char
}

/// Appends to the step's description when one is wanted (trace printing only).
macro_rules! say {
    ($log:expr, $($arg:tt)*) => {
        if let Some(log) = $log.as_mut() {
            let _ = write!(log, $($arg)*);
        }
    };
}

fn show(t: Option<Time>) -> String {
    t.map_or_else(|| "0".into(), |t| t.to_string())
}

#[derive(Clone, Debug)]
pub struct Protocol {
    pub cfg: Config,
    pub normalize: bool,
    /// Per safety property: a violation was reported already (see [`first_violation`]).
    reported: Arc<[AtomicBool; 4]>,
}

impl Protocol {
    pub fn new(cfg: Config) -> Self {
        Protocol {
            cfg,
            normalize: true,
            reported: Arc::default(),
        }
    }

    /// The same model without normalization: real times, for printing a trace.
    pub fn concrete(&self) -> Self {
        Protocol {
            cfg: self.cfg.clone(),
            normalize: false,
            reported: Arc::default(),
        }
    }

    fn fresh_gen(s: &State, p: usize) -> Gen {
        let mut max = 0;
        let mut s = s.clone();
        s.for_each_gen(p, &mut |g| max = max.max(*g));
        max + 1
    }

    /// One step; `log` receives its description. `None` when the action is not enabled.
    pub fn apply(&self, s: &State, action: Action, log: &mut Option<String>) -> Option<State> {
        let cfg = &self.cfg;
        let mut n = s.clone();
        let now = s.now;
        match action {
            Action::Tick => {
                if !s.tick_allowed(cfg) {
                    return None;
                }
                if let Some(d) = n.durable.as_mut() {
                    *d = n.redis.clone();
                }
                n.now += 1;
                say!(log, "tick");
                for w in 0..cfg.workers {
                    if n.workers[w].frozen {
                        continue;
                    }
                    let owned: Vec<(usize, Gen)> = (0..NP)
                        .filter_map(|p| n.workers[w].tasks[p].map(|t| (p, t.entry)))
                        .collect();
                    if owned.is_empty() {
                        continue;
                    }
                    // scripts/touch.lua — common/src/scripts/touch.lua
                    let lost = scripts::touch(&mut n.redis, w as u8, &owned, n.now);
                    for p in lost {
                        n.workers[w].tasks[p] = None;
                        say!(
                            log,
                            "; worker {}: touch -> p{} lost, its task stops",
                            worker_name(w),
                            p + 1
                        );
                    }
                }
            }
            Action::Accept(p) => {
                let p = p as usize;
                let sid = Self::fresh_gen(&n, p);
                // scripts/accept.lua — common/src/scripts/accept.lua
                match scripts::accept(&mut n.redis, p, sid) {
                    AcceptReply::Ok(_) => say!(log, "gateway: accept(p{}) -> ok, 202", p + 1),
                    AcceptReply::Dup(st) => {
                        say!(log, "gateway: accept(p{}) -> dup {}", p + 1, st.name())
                    }
                }
                n.accepted[p] = true;
            }
            Action::Read(w, i) | Action::Claim(w, i) => {
                let (w, i) = (w as usize, i as usize);
                let e = s.redis.stream[i];
                let p = e.payment as usize;
                if let Action::Read(..) = action {
                    scripts::read(&mut n.redis, i, w as u8, now);
                    say!(
                        log,
                        "worker {}: XREADGROUP -> p{} (entry {})",
                        worker_name(w),
                        p + 1,
                        e.id
                    );
                } else {
                    scripts::autoclaim(&mut n.redis, i, w as u8, now);
                    say!(
                        log,
                        "worker {}: XAUTOCLAIM -> p{} (entry {}, idle {} on worker {})",
                        worker_name(w),
                        p + 1,
                        e.id,
                        e.pending.map_or(0, |(_, at)| now - at),
                        e.pending.map_or('?', |(c, _)| worker_name(c as usize))
                    );
                }
                n.workers[w].tasks[p] = Some(Task {
                    entry: e.id,
                    failures: 0,
                    anomalies: 0,
                    step: Step::Begin,
                });
            }
            Action::Begin(w, p, wanted) => {
                let (w, p) = (w as usize, p as usize);
                let task = s.workers[w].tasks[p]?;
                let fence = !cfg.faults.no_fence;
                say!(
                    log,
                    "worker {}: begin(p{}, {}) -> ",
                    worker_name(w),
                    p + 1,
                    wanted.name()
                );
                // scripts/begin.lua — common/src/scripts/begin.lua
                let reply = scripts::begin(
                    &mut n.redis,
                    p,
                    wanted,
                    w as u8,
                    task.entry,
                    cfg.bound(),
                    now,
                    fence,
                    !cfg.faults.retry_forgets_earlier,
                );
                let slot = &mut n.workers[w].tasks[p];
                match reply {
                    BeginReply::Go {
                        proc,
                        att,
                        earlier_unresolved,
                    } => {
                        say!(
                            log,
                            "go att={att}{} (safe={})",
                            if earlier_unresolved {
                                " earlier unresolved"
                            } else {
                                ""
                            },
                            show(n.redis.status[p].and_then(|h| h.safe))
                        );
                        set_step(slot, Step::Send { proc, att, t0: now });
                    }
                    BeginReply::Pinned { proc, safe, att } => {
                        say!(log, "pinned {} att={att} safe={}", proc.name(), show(safe));
                        set_step(slot, Step::Resolve { proc, att, safe });
                    }
                    BeginReply::Done(st) => {
                        n.redis.ack(p, task.entry);
                        say!(log, "done {}; ack", st.name());
                        *slot = None;
                    }
                    BeginReply::Missing => {
                        n.redis.ack(p, task.entry);
                        say!(log, "missing; ack");
                        *slot = None;
                    }
                    BeginReply::Lost => {
                        say!(log, "lost; the task stops");
                        *slot = None;
                    }
                }
            }
            Action::Send(w, p) => {
                let (w, p) = (w as usize, p as usize);
                let task = s.workers[w].tasks[p]?;
                let Step::Send { proc, att, t0 } = task.step else {
                    return None;
                };
                let checked = !cfg.faults.no_fence && !cfg.faults.no_send_deadline;
                if checked && now > t0 + cfg.d {
                    say!(
                        log,
                        "worker {}: send window over (t0={t0}): settle(p{}, {}, att={att}, failed) -> ",
                        worker_name(w),
                        p + 1,
                        proc.name()
                    );
                    self.settle_failed(&mut n, w, p, proc, att, log);
                } else {
                    say!(
                        log,
                        "worker {}: POST p{} to {} (att={att}, requestedAt={now})",
                        worker_name(w),
                        p + 1,
                        proc.name()
                    );
                    n.posts.push(Post {
                        payment: p as u8,
                        proc,
                        att,
                        sent: now,
                        deadline: now + cfg.t + cfg.late + cfg.g,
                        to: Some(w as u8),
                    });
                    set_step(
                        &mut n.workers[w].tasks[p],
                        Step::AwaitPost {
                            proc,
                            att,
                            sent: now,
                            reply: None,
                        },
                    );
                }
            }
            Action::Reply(w, p) => {
                let (w, p) = (w as usize, p as usize);
                let task = s.workers[w].tasks[p]?;
                let Step::AwaitPost {
                    proc,
                    att,
                    sent,
                    reply: Some(reply),
                } = task.step
                else {
                    return None;
                };
                match reply {
                    Reply::Stored => {
                        say!(
                            log,
                            "worker {}: 200 from {} -> ",
                            worker_name(w),
                            proc.name()
                        );
                        self.record(&mut n, w, p, proc, sent, log);
                    }
                    Reply::Failed => {
                        say!(
                            log,
                            "worker {}: 500 from {} -> settle(p{}, att={att}, failed) -> ",
                            worker_name(w),
                            proc.name(),
                            p + 1
                        );
                        if let Some(t) = n.workers[w].tasks[p].as_mut() {
                            t.failures += 1;
                        }
                        self.settle_failed(&mut n, w, p, proc, att, log);
                    }
                    Reply::AlreadyStored => {
                        say!(
                            log,
                            "worker {}: 422 from {} -> GET /payments/p{} asked at {now}",
                            worker_name(w),
                            proc.name(),
                            p + 1
                        );
                        set_step(
                            &mut n.workers[w].tasks[p],
                            Step::AwaitLookup {
                                proc,
                                att,
                                safe: None,
                                asked: now,
                                after_422: true,
                                answer: None,
                            },
                        );
                    }
                }
            }
            Action::Timeout(w, p) | Action::Reset(w, p) => {
                let (w, p) = (w as usize, p as usize);
                let task = s.workers[w].tasks[p]?;
                let Step::AwaitPost {
                    proc,
                    att,
                    sent,
                    reply,
                } = task.step
                else {
                    return None;
                };
                // A timeout only while no answer came; a reset, or a proxy's error answer in
                // place of the processor's (which may have stored the payment), at any time.
                if reply.is_some() && !matches!(action, Action::Reset(..)) {
                    return None;
                }
                if let Action::Reset(..) = action {
                    if cfg.faults.proxy_error_is_failure {
                        n.budget.messages = n.budget.messages.checked_sub(1)?;
                        say!(
                            log,
                            "FAULT proxy error: worker {} takes it for {}'s failure -> settle(p{}, att={att}, failed) -> ",
                            worker_name(w),
                            proc.name(),
                            p + 1
                        );
                        for post in n.posts.iter_mut() {
                            if post.payment as usize == p && post.proc == proc && post.att == att {
                                post.to = None;
                            }
                        }
                        self.settle_failed(&mut n, w, p, proc, att, log);
                        return Some(n);
                    }
                    n.budget.messages = n.budget.messages.checked_sub(1)?;
                    say!(log, "FAULT connection reset: worker {}: ", worker_name(w));
                    for post in n.posts.iter_mut() {
                        if post.payment as usize == p
                            && post.proc == proc
                            && post.att == att
                            && post.sent == sent
                        {
                            post.to = None;
                            if !cfg.reset_reaches_later {
                                post.deadline = post.deadline.min(now + cfg.g);
                            }
                        }
                    }
                } else {
                    if now < sent + cfg.t {
                        return None;
                    }
                    say!(
                        log,
                        "worker {}: timeout of the POST to {}: ",
                        worker_name(w),
                        proc.name()
                    );
                }
                // The worker adds what is left of the client timeout: a call cut short (a
                // reset, a proxy's 502/504) may still reach the processor until then
                // (pipeline.rs `unanswered`). `fault_reset_from_now` drops that.
                let left = if cfg.faults.grace_from_reset {
                    0
                } else {
                    (sent + cfg.t).saturating_sub(now)
                };
                let grace = cfg.worker_grace() + left + cfg.worker_late();
                // scripts/unanswered.lua — common/src/scripts/unanswered.lua
                let r = scripts::unanswered(&mut n.redis, p, proc, att, grace, false, now);
                say!(
                    log,
                    "unanswered(p{}, {}, att={att}, grace={grace}) -> {} safe={}",
                    p + 1,
                    proc.name(),
                    if r.ok { "ok" } else { "stale" },
                    show(r.safe)
                );
                let step = if r.ok {
                    Step::Resolve {
                        proc,
                        att,
                        safe: r.safe,
                    }
                } else {
                    Step::Begin
                };
                set_step(&mut n.workers[w].tasks[p], step);
            }
            Action::Ask(w, p) => {
                let (w, p) = (w as usize, p as usize);
                let task = s.workers[w].tasks[p]?;
                let Step::Resolve { proc, att, safe } = task.step else {
                    return None;
                };
                say!(
                    log,
                    "worker {}: GET /payments/p{} on {} asked at {now} (safe={})",
                    worker_name(w),
                    p + 1,
                    proc.name(),
                    show(safe)
                );
                set_step(
                    &mut n.workers[w].tasks[p],
                    Step::AwaitLookup {
                        proc,
                        att,
                        safe,
                        asked: now,
                        after_422: false,
                        answer: None,
                    },
                );
            }
            Action::Retry(w, p) => {
                let (w, p) = (w as usize, p as usize);
                let task = s.workers[w].tasks[p]?;
                let Step::Resolve { proc, att, .. } = task.step else {
                    return None;
                };
                n.budget.retries = n.budget.retries.checked_sub(1)?;
                say!(
                    log,
                    "worker {}: p{} unresolved on {} (att={att}): begin again",
                    worker_name(w),
                    p + 1,
                    proc.name()
                );
                set_step(&mut n.workers[w].tasks[p], Step::Begin);
            }
            Action::Lookup(w, p) => {
                let (w, p) = (w as usize, p as usize);
                let task = s.workers[w].tasks[p]?;
                let Step::AwaitLookup {
                    proc,
                    att,
                    safe,
                    asked,
                    after_422,
                    answer: None,
                } = task.step
                else {
                    return None;
                };
                let found = s.stored[proc.index()][p];
                say!(
                    log,
                    "{}: GET /payments/p{} -> {}",
                    proc.name(),
                    p + 1,
                    found.map_or_else(
                        || "404".to_string(),
                        |ra| format!("found (requestedAt={ra})")
                    )
                );
                set_step(
                    &mut n.workers[w].tasks[p],
                    Step::AwaitLookup {
                        proc,
                        att,
                        safe,
                        asked,
                        after_422,
                        answer: Some(found),
                    },
                );
            }
            Action::Answer(w, p) => {
                let (w, p) = (w as usize, p as usize);
                let task = s.workers[w].tasks[p]?;
                let Step::AwaitLookup {
                    proc,
                    att,
                    safe,
                    asked,
                    after_422,
                    answer: Some(answer),
                } = task.step
                else {
                    return None;
                };
                if let Some(requested_at) = answer {
                    say!(
                        log,
                        "worker {}: found on {} -> ",
                        worker_name(w),
                        proc.name()
                    );
                    self.record(&mut n, w, p, proc, requested_at, log);
                } else if after_422 {
                    let grace = cfg.worker_grace();
                    // scripts/unanswered.lua — common/src/scripts/unanswered.lua
                    let r = scripts::unanswered(&mut n.redis, p, proc, att, grace, true, now);
                    say!(
                        log,
                        "worker {}: 404 after 422 -> unanswered(p{}, {}, att={att}, held) -> {} safe={}",
                        worker_name(w),
                        p + 1,
                        proc.name(),
                        if r.ok { "ok" } else { "stale" },
                        show(r.safe)
                    );
                    let step = if r.ok {
                        Step::Resolve {
                            proc,
                            att,
                            safe: r.safe,
                        }
                    } else {
                        Step::Begin
                    };
                    set_step(&mut n.workers[w].tasks[p], step);
                } else {
                    let judged = if cfg.faults.absence_at_answer {
                        now
                    } else {
                        asked
                    };
                    let late_enough = if cfg.strict_safe {
                        Some(judged) > safe
                    } else {
                        Some(judged) >= safe
                    };
                    if late_enough {
                        say!(
                            log,
                            "worker {}: 404 (asked at {asked}) -> settle(p{}, {}, att={att}, absent, {judged}) -> ",
                            worker_name(w),
                            p + 1,
                            proc.name()
                        );
                        // scripts/settle.lua — common/src/scripts/settle.lua
                        let reply = scripts::settle(
                            &mut n.redis,
                            p,
                            proc,
                            att,
                            Settle::Absent { asked: judged },
                            cfg.strict_safe,
                        );
                        self.after_settle(&mut n, w, p, reply, proc, att, safe, log);
                    } else {
                        say!(
                            log,
                            "worker {}: 404 asked at {asked} < safe={}: ask again later",
                            worker_name(w),
                            show(safe)
                        );
                        set_step(
                            &mut n.workers[w].tasks[p],
                            Step::Resolve { proc, att, safe },
                        );
                    }
                }
            }
            Action::Fail(w, p) => {
                let (w, p) = (w as usize, p as usize);
                let task = s.workers[w].tasks[p]?;
                let Step::Fail { keep } = task.step else {
                    return None;
                };
                // scripts/fail.lua — common/src/scripts/fail.lua
                let reply = scripts::fail(
                    &mut n.redis,
                    p,
                    Some(task.entry),
                    keep.map(|att| (w as u8, att)),
                );
                say!(
                    log,
                    "worker {}: fail(p{}{}) -> {reply:?}",
                    worker_name(w),
                    p + 1,
                    if keep.is_some() { ", keep" } else { "" }
                );
                let slot = &mut n.workers[w].tasks[p];
                match reply {
                    FailReply::Unresolved | FailReply::Stale => set_step(slot, Step::Begin),
                    FailReply::Ok | FailReply::Processed | FailReply::Missing => *slot = None,
                }
            }
            Action::Process(i, outcome) => {
                let post = *s.posts.get(i as usize)?;
                let p = post.payment as usize;
                let q = post.proc.index();
                let has = s.stored[q][p].is_some();
                if has != (outcome == Reply::AlreadyStored) {
                    return None;
                }
                n.posts.remove(i as usize);
                if outcome == Reply::Stored {
                    n.stored[q][p] = Some(post.sent);
                }
                say!(
                    log,
                    "{}: POST p{} att={} -> {}",
                    post.proc.name(),
                    p + 1,
                    post.att,
                    match outcome {
                        Reply::Stored => "stored, 200",
                        Reply::Failed => "500",
                        Reply::AlreadyStored => "422",
                    }
                );
                let mut delivered = false;
                if let Some(w) = post.to {
                    if now <= post.sent + cfg.t {
                        if let Some(t) = n.workers[w as usize].tasks[p].as_mut() {
                            if t.step
                                == (Step::AwaitPost {
                                    proc: post.proc,
                                    att: post.att,
                                    sent: post.sent,
                                    reply: None,
                                })
                            {
                                t.step = Step::AwaitPost {
                                    proc: post.proc,
                                    att: post.att,
                                    sent: post.sent,
                                    reply: Some(outcome),
                                };
                                delivered = true;
                            }
                        }
                    }
                }
                if !delivered {
                    say!(log, " (nobody gets the answer)");
                }
            }
            Action::Redrive => {
                n.budget.redrives = n.budget.redrives.checked_sub(1)?;
                let mut next: [Gen; NP] = [0; NP];
                for (p, g) in next.iter_mut().enumerate() {
                    *g = Self::fresh_gen(&n, p);
                }
                // scripts/redrive.lua — common/src/scripts/redrive.lua
                let moved = scripts::redrive(&mut n.redis, now, cfg.faults.old_redrive, |p| {
                    let g = next[p];
                    next[p] += 1;
                    g
                });
                say!(log, "operator: redrive -> {moved} re-queued");
            }
            Action::Unfreeze(w) => {
                n.workers[w as usize].frozen = false;
                say!(log, "worker {} resumes", worker_name(w as usize));
            }
            Action::Crash(w) => {
                n.budget.crashes = n.budget.crashes.checked_sub(1)?;
                n.workers[w as usize] = Worker::default();
                say!(
                    log,
                    "FAULT worker {} crashes (restarts with no task)",
                    worker_name(w as usize)
                );
            }
            Action::Freeze(w) => {
                n.budget.freezes = n.budget.freezes.checked_sub(1)?;
                n.workers[w as usize].frozen = true;
                say!(log, "FAULT worker {} frozen", worker_name(w as usize));
            }
            Action::Drop(i) => {
                n.budget.messages = n.budget.messages.checked_sub(1)?;
                let post = n.posts.remove(i as usize);
                say!(
                    log,
                    "FAULT the POST of p{} att={} to {} never arrives",
                    post.payment + 1,
                    post.att,
                    post.proc.name()
                );
            }
            Action::RedisLoss => {
                n.budget.redis_losses = n.budget.redis_losses.checked_sub(1)?;
                n.redis = n.durable.clone()?;
                say!(log, "FAULT redis restarts and loses its unsynced writes");
            }
        }
        n.canonicalize(cfg, self.normalize);
        Some(n)
    }

    /// The state the checker keeps for a concrete one (times, attempts and entry ids renamed,
    /// workers and payments in their least order).
    pub fn canonical(&self, mut s: State) -> State {
        s.canonicalize(&self.cfg, true);
        s
    }

    /// record.lua after a 200 or a lookup that found it; the task ends.
    fn record(
        &self,
        n: &mut State,
        w: usize,
        p: usize,
        proc: Proc,
        requested_at: Time,
        log: &mut Option<String>,
    ) {
        let entry = n.workers[w].tasks[p].map(|t| t.entry);
        // scripts/record.lua — common/src/scripts/record.lua
        let reply = scripts::record(&mut n.redis, p, proc, requested_at, entry);
        say!(
            log,
            "record(p{}, {}, requestedAt={requested_at}) -> {}",
            p + 1,
            proc.name(),
            match reply {
                RecordReply::Ok => "ok",
                RecordReply::Dup => "dup",
                RecordReply::Missing => "missing",
            }
        );
        n.workers[w].tasks[p] = None;
    }

    /// settle.lua 'failed' for the task's attempt (a definite "not stored"), then what the
    /// task does with its answer.
    fn settle_failed(
        &self,
        n: &mut State,
        w: usize,
        p: usize,
        proc: Proc,
        att: Att,
        log: &mut Option<String>,
    ) {
        // scripts/settle.lua — common/src/scripts/settle.lua
        let reply = scripts::settle(
            &mut n.redis,
            p,
            proc,
            att,
            Settle::Failed,
            self.cfg.strict_safe,
        );
        self.after_settle(n, w, p, reply, proc, att, None, log);
    }

    /// What the task does with settle.lua's answer.
    #[allow(clippy::too_many_arguments)]
    fn after_settle(
        &self,
        n: &mut State,
        w: usize,
        p: usize,
        reply: SettleReply,
        proc: Proc,
        att: Att,
        known_safe: Option<Time>,
        log: &mut Option<String>,
    ) {
        let max = self.cfg.max_attempts;
        let Some(task) = n.workers[w].tasks[p].as_mut() else {
            return;
        };
        match reply {
            SettleReply::Cleared => {
                if task.failures >= max {
                    say!(
                        log,
                        "cleared; {} definite failures: dead-letter",
                        task.failures
                    );
                    task.step = Step::Fail { keep: None };
                } else {
                    say!(log, "cleared");
                    task.step = Step::Begin;
                }
            }
            SettleReply::Early(safe) => {
                say!(log, "early safe={}: resolve by lookup", show(safe));
                task.step = Step::Resolve { proc, att, safe };
            }
            SettleReply::Stale => {
                say!(log, "stale");
                task.step = Step::Begin;
            }
            SettleReply::Held => {
                task.anomalies += 1;
                if task.anomalies >= max {
                    say!(
                        log,
                        "held ({} anomalies): dead-letter, keep the pin",
                        task.anomalies
                    );
                    task.step = Step::Fail { keep: Some(att) };
                } else {
                    say!(log, "held (anomaly {})", task.anomalies);
                    task.step = Step::Resolve {
                        proc,
                        att,
                        safe: known_safe,
                    };
                }
            }
        }
    }
}

fn set_step(slot: &mut Option<Task>, step: Step) {
    if let Some(t) = slot.as_mut() {
        t.step = step;
    }
}

impl State {
    pub fn initial(cfg: &Config) -> State {
        let mut s = State {
            now: 0,
            redis: Redis::default(),
            durable: None,
            workers: [Worker::default(); NW],
            posts: Vec::new(),
            stored: [[None; NP]; 2],
            accepted: [false; NP],
            budget: cfg.budget,
        };
        if !cfg.accept_steps {
            for p in 0..cfg.payments {
                scripts::accept(&mut s.redis, p, 1);
                s.accepted[p] = true;
            }
        }
        if cfg.durability == Durability::EverySec {
            s.durable = Some(s.redis.clone());
        }
        s
    }

    /// Whether a task has a step it can take now (not waiting for an answer or for time).
    fn can_step(&self, cfg: &Config, t: &Task) -> bool {
        match t.step {
            Step::Begin | Step::Send { .. } | Step::Fail { .. } => true,
            Step::AwaitPost { sent, reply, .. } => reply.is_some() || self.now >= sent + cfg.t,
            Step::Resolve { safe, .. } => self.absence_would_count(cfg, safe),
            Step::AwaitLookup { answer, .. } => answer.is_some(),
        }
    }

    /// Whether a 404 asked now would prove absence (the worker's rule).
    fn absence_would_count(&self, cfg: &Config, safe: Option<Time>) -> bool {
        if cfg.strict_safe {
            Some(self.now) > safe
        } else {
            Some(self.now) >= safe
        }
    }

    /// Time may pass unless a processor or a lookup would miss its bound (or, with
    /// `prompt_workers`, a worker that is not frozen has a step to take).
    fn tick_allowed(&self, cfg: &Config) -> bool {
        if cfg.prompt_workers
            && self.workers[..cfg.workers]
                .iter()
                .any(|w| !w.frozen && w.tasks.iter().flatten().any(|t| self.can_step(cfg, t)))
        {
            return false;
        }
        self.posts.iter().all(|p| self.now < p.deadline)
            && self.workers.iter().all(|w| {
                w.tasks.iter().flatten().all(|t| match t.step {
                    Step::AwaitLookup {
                        asked,
                        answer: None,
                        ..
                    } => self.now < asked + cfg.t,
                    _ => true,
                })
            })
    }

    fn for_each_redis(&mut self, f: &mut dyn FnMut(&mut Redis)) {
        f(&mut self.redis);
        if let Some(d) = self.durable.as_mut() {
            f(d);
        }
    }

    fn for_each_time(&mut self, f: &mut dyn FnMut(&mut Time)) {
        f(&mut self.now);
        self.for_each_redis(&mut |r| {
            for h in r.status.iter_mut().flatten() {
                if let Some(t) = h.safe.as_mut() {
                    f(t);
                }
                if let Some(t) = h.safe0.as_mut() {
                    f(t);
                }
            }
            for e in r.stream.iter_mut() {
                if let Some((_, t)) = e.pending.as_mut() {
                    f(t);
                }
            }
            for (_, _, t) in r.summary.iter_mut() {
                f(t);
            }
        });
        for w in self.workers.iter_mut() {
            for t in w.tasks.iter_mut().flatten() {
                match &mut t.step {
                    Step::Begin | Step::Fail { .. } => {}
                    Step::Send { t0, .. } => f(t0),
                    Step::AwaitPost { sent, .. } => f(sent),
                    Step::Resolve { safe, .. } => {
                        if let Some(t) = safe.as_mut() {
                            f(t);
                        }
                    }
                    Step::AwaitLookup {
                        safe,
                        asked,
                        answer,
                        ..
                    } => {
                        if let Some(t) = safe.as_mut() {
                            f(t);
                        }
                        f(asked);
                        if let Some(Some(t)) = answer.as_mut() {
                            f(t);
                        }
                    }
                }
            }
        }
        for post in self.posts.iter_mut() {
            f(&mut post.sent);
            f(&mut post.deadline);
        }
        for t in self.stored.iter_mut().flatten().flatten() {
            f(t);
        }
    }

    fn for_each_att(&mut self, p: usize, f: &mut dyn FnMut(&mut Att)) {
        self.for_each_redis(&mut |r| {
            if let Some(h) = r.status[p].as_mut() {
                f(&mut h.att);
            }
        });
        for w in self.workers.iter_mut() {
            if let Some(t) = w.tasks[p].as_mut() {
                match &mut t.step {
                    Step::Begin | Step::Fail { keep: None } => {}
                    Step::Fail { keep: Some(att) }
                    | Step::Send { att, .. }
                    | Step::AwaitPost { att, .. }
                    | Step::Resolve { att, .. }
                    | Step::AwaitLookup { att, .. } => f(att),
                }
            }
        }
        for post in self.posts.iter_mut().filter(|x| x.payment as usize == p) {
            f(&mut post.att);
        }
    }

    fn for_each_gen(&mut self, p: usize, f: &mut dyn FnMut(&mut Gen)) {
        self.for_each_redis(&mut |r| {
            if let Some(h) = r.status[p].as_mut() {
                f(&mut h.sid);
            }
            for e in r.stream.iter_mut().filter(|e| e.payment as usize == p) {
                f(&mut e.id);
            }
        });
        for w in self.workers.iter_mut() {
            if let Some(t) = w.tasks[p].as_mut() {
                f(&mut t.entry);
            }
        }
    }

    /// Forgets what cannot matter any more and sorts; with `normalize`, also renames times,
    /// attempt numbers and entry ids (order kept; see the module documentation).
    fn canonicalize(&mut self, cfg: &Config, normalize: bool) {
        let workers = self.workers;
        for post in self.posts.iter_mut() {
            if let Some(w) = post.to {
                let waiting = workers[w as usize].tasks[post.payment as usize].is_some_and(|t| {
                    t.step
                        == Step::AwaitPost {
                            proc: post.proc,
                            att: post.att,
                            sent: post.sent,
                            reply: None,
                        }
                });
                if !waiting {
                    post.to = None;
                }
            }
        }
        if normalize {
            let gap = cfg.widest_gap();
            let mut times = Vec::new();
            self.for_each_time(&mut |t| times.push(*t));
            let map = compress(times, 0, gap);
            self.for_each_time(&mut |t| *t = lookup(&map, *t));
            for p in 0..NP {
                let mut atts = vec![0];
                self.for_each_att(p, &mut |a| atts.push(*a));
                let map = compress(atts, 0, 2u8);
                self.for_each_att(p, &mut |a| *a = lookup(&map, *a));
                let mut gens = Vec::new();
                self.for_each_gen(p, &mut |g| gens.push(*g));
                let map = compress(gens, 1, 1u8);
                self.for_each_gen(p, &mut |g| *g = lookup(&map, *g));
            }
        }
        self.sort();
        if normalize {
            // Symmetry: workers are alike and so are payments; keep the least of the states
            // that only differ by their names.
            let swap_w = cfg.workers == 2;
            let swap_p = cfg.payments == 2;
            let mut best = self.clone();
            for (w, p) in [(true, false), (false, true), (true, true)] {
                if (w && !swap_w) || (p && !swap_p) {
                    continue;
                }
                let mut other = self.clone();
                if w {
                    other.swap_workers();
                }
                if p {
                    other.swap_payments();
                }
                other.sort();
                if other < best {
                    best = other;
                }
            }
            *self = best;
        }
    }

    fn sort(&mut self) {
        self.posts.sort();
        self.for_each_redis(&mut |r| {
            r.stream.sort();
            r.summary.sort();
        });
    }

    fn swap_workers(&mut self) {
        self.workers.swap(0, 1);
        self.for_each_redis(&mut |r| {
            for e in r.stream.iter_mut() {
                if let Some((c, _)) = e.pending.as_mut() {
                    *c = 1 - *c;
                }
            }
        });
        for post in self.posts.iter_mut() {
            if let Some(w) = post.to.as_mut() {
                *w = 1 - *w;
            }
        }
    }

    fn swap_payments(&mut self) {
        self.for_each_redis(&mut |r| {
            r.status.swap(0, 1);
            r.dead.swap(0, 1);
            for e in r.stream.iter_mut() {
                e.payment = 1 - e.payment;
            }
            for e in r.summary.iter_mut() {
                e.0 = 1 - e.0;
            }
        });
        for w in self.workers.iter_mut() {
            w.tasks.swap(0, 1);
        }
        for post in self.posts.iter_mut() {
            post.payment = 1 - post.payment;
        }
        for q in self.stored.iter_mut() {
            q.swap(0, 1);
        }
        self.accepted.swap(0, 1);
    }
}

/// Maps sorted distinct values to `first`, then each next one at most `gap` after the one
/// before: equality, order and distances up to `gap - 1` are kept.
fn compress<T: Copy + Ord + Into<u32> + TryFrom<u32>>(
    mut values: Vec<T>,
    first: u32,
    gap: T,
) -> Vec<(T, T)> {
    values.sort();
    values.dedup();
    let gap: u32 = gap.into();
    let mut out = Vec::with_capacity(values.len());
    let mut prev: Option<(u32, u32)> = None;
    for v in values {
        let v32: u32 = v.into();
        let new = match prev {
            None => first,
            Some((old, new)) => new + (v32 - old).min(gap),
        };
        prev = Some((v32, new));
        let Ok(mapped) = T::try_from(new) else {
            panic!("normalized value out of range");
        };
        out.push((v, mapped));
    }
    out
}

fn lookup<T: Copy + Ord>(map: &[(T, T)], v: T) -> T {
    match map.binary_search_by(|(k, _)| k.cmp(&v)) {
        Ok(i) => map[i].1,
        Err(_) => v,
    }
}

impl Model for Protocol {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![State::initial(&self.cfg)]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        let cfg = &self.cfg;
        if s.tick_allowed(cfg) {
            actions.push(Action::Tick);
        }
        for p in 0..cfg.payments {
            if !s.accepted[p] {
                actions.push(Action::Accept(p as u8));
            }
        }
        for w in 0..cfg.workers {
            let worker = &s.workers[w];
            let wu = w as u8;
            if !worker.frozen {
                for (i, e) in s.redis.stream.iter().enumerate() {
                    if worker.tasks[e.payment as usize].is_some() {
                        continue;
                    }
                    match e.pending {
                        None => actions.push(Action::Read(wu, i as u8)),
                        Some((_, at)) if s.now >= at + cfg.claim_idle => {
                            actions.push(Action::Claim(wu, i as u8))
                        }
                        Some(_) => {}
                    }
                }
                for p in 0..cfg.payments {
                    let Some(task) = worker.tasks[p] else {
                        continue;
                    };
                    let pu = p as u8;
                    match task.step {
                        Step::Begin => {
                            actions.push(Action::Begin(wu, pu, Proc::Default));
                            actions.push(Action::Begin(wu, pu, Proc::Fallback));
                        }
                        Step::Send { .. } => actions.push(Action::Send(wu, pu)),
                        Step::AwaitPost { sent, reply, .. } => {
                            if reply.is_some() {
                                actions.push(Action::Reply(wu, pu));
                            } else if s.now >= sent + cfg.t {
                                actions.push(Action::Timeout(wu, pu));
                            }
                            // A reset before any answer, or a proxy's error in place of the
                            // processor's answer (after it stored the payment, or not).
                            if s.budget.messages > 0 {
                                actions.push(Action::Reset(wu, pu));
                            }
                        }
                        Step::Resolve { safe, .. } => {
                            if cfg.early_lookups || s.absence_would_count(cfg, safe) {
                                actions.push(Action::Ask(wu, pu));
                            }
                            if s.budget.retries > 0 {
                                actions.push(Action::Retry(wu, pu));
                            }
                        }
                        Step::AwaitLookup { answer, .. } => {
                            if answer.is_some() {
                                actions.push(Action::Answer(wu, pu));
                            }
                        }
                        Step::Fail { .. } => actions.push(Action::Fail(wu, pu)),
                    }
                }
            }
            for p in 0..cfg.payments {
                if let Some(Task {
                    step: Step::AwaitLookup { answer: None, .. },
                    ..
                }) = worker.tasks[p]
                {
                    actions.push(Action::Lookup(wu, p as u8));
                }
            }
            let busy = worker.tasks.iter().any(Option::is_some);
            if worker.frozen {
                actions.push(Action::Unfreeze(wu));
            } else if busy && s.budget.freezes > 0 {
                actions.push(Action::Freeze(wu));
            }
            if busy && s.budget.crashes > 0 {
                actions.push(Action::Crash(wu));
            }
        }
        for (i, post) in s.posts.iter().enumerate() {
            let i = i as u8;
            if s.stored[post.proc.index()][post.payment as usize].is_some() {
                actions.push(Action::Process(i, Reply::AlreadyStored));
            } else {
                actions.push(Action::Process(i, Reply::Stored));
                actions.push(Action::Process(i, Reply::Failed));
            }
            if s.budget.messages > 0 {
                actions.push(Action::Drop(i));
            }
        }
        if s.budget.redrives > 0 && s.redis.dead.iter().any(|&d| d > 0) {
            actions.push(Action::Redrive);
        }
        if s.budget.redis_losses > 0 && s.durable.as_ref().is_some_and(|d| *d != s.redis) {
            actions.push(Action::RedisLoss);
        }
    }

    fn next_state(&self, s: &State, action: Action) -> Option<State> {
        self.apply(s, action, &mut None)
    }

    fn format_action(&self, action: &Action) -> String {
        format!("{action:?}")
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(NEVER_BOTH, |m, s| {
                first_violation(m, 0, never_stored_by_both(s))
            }),
            Property::always(DEAD_NOT_STORED, |m, s| {
                first_violation(m, 1, dead_letter_never_stored(s))
            }),
            Property::always(SUMMARY_TRUE, |m, s| {
                first_violation(m, 2, summary_counts_only_stored_once(s))
            }),
            Property::always(ACCEPTED_KEPT, |m, s| {
                first_violation(m, 3, accepted_never_forgotten(s))
            }),
            Property::sometimes(SOME_FALLBACK, |_, s: &State| {
                s.redis
                    .status
                    .iter()
                    .flatten()
                    .any(|h| h.st == St::Processed && h.proc == Some(Proc::Fallback) && h.att >= 2)
            }),
            Property::sometimes(SOME_DEAD, |_, s: &State| {
                s.redis.status.iter().flatten().any(|h| h.st == St::Failed)
            }),
            Property::sometimes(SOME_FINISHED, |_, s| all_processed(s)),
        ]
    }
}

pub const NEVER_BOTH: &str = "never stored by both processors";
pub const DEAD_NOT_STORED: &str = "a dead letter is never stored anywhere";
pub const SUMMARY_TRUE: &str = "the summary counts only what a processor stored, once";
pub const ACCEPTED_KEPT: &str = "an accepted payment is never forgotten";
pub const SOME_FALLBACK: &str = "sometimes: processed by the fallback after an earlier attempt";
pub const SOME_DEAD: &str = "sometimes: dead-lettered";
pub const SOME_FINISHED: &str = "sometimes: every payment processed";

/// The safety properties, for tests that must not see any of them fail.
pub const SAFETY: [&str; 4] = [NEVER_BOTH, DEAD_NOT_STORED, SUMMARY_TRUE, ACCEPTED_KEPT];
/// What must be reachable, or the model would pass vacuously.
pub const SOMETIMES: [&str; 3] = [SOME_FALLBACK, SOME_DEAD, SOME_FINISHED];

/// stateright's breadth-first search keeps, per property, the LAST violating state it met
/// in a batch of states, not the first: only the first violation is reported (the others
/// pass), so that the schedule kept is a shortest one (exactly so with one thread).
fn first_violation(m: &Protocol, property: usize, holds: bool) -> bool {
    holds || m.reported[property].swap(true, Ordering::Relaxed)
}

pub fn never_stored_by_both(s: &State) -> bool {
    (0..NP).all(|p| !(s.stored[0][p].is_some() && s.stored[1][p].is_some()))
}

pub fn dead_letter_never_stored(s: &State) -> bool {
    (0..NP).all(|p| {
        let dead = s.redis.status[p].is_some_and(|h| h.st == St::Failed);
        !dead || (s.stored[0][p].is_none() && s.stored[1][p].is_none())
    })
}

pub fn summary_counts_only_stored_once(s: &State) -> bool {
    let summary = &s.redis.summary;
    summary
        .iter()
        .all(|&(p, q, ra)| s.stored[q.index()][p as usize] == Some(ra))
        && summary.windows(2).all(|w| w[0].0 != w[1].0)
}

pub fn accepted_never_forgotten(s: &State) -> bool {
    (0..NP).all(|p| !s.accepted[p] || s.redis.status[p].is_some())
}

fn all_processed(s: &State) -> bool {
    let accepted = s.accepted.iter().filter(|a| **a).count();
    finished(s) && accepted > 0 && s.redis.summary.len() == accepted
}

/// Nothing in flight, and every accepted payment processed exactly once (the summary equal
/// to what the processors stored) or dead-lettered and stored nowhere.
pub fn finished(s: &State) -> bool {
    let idle = s.posts.is_empty()
        && s.redis.stream.is_empty()
        && s.workers
            .iter()
            .all(|w| w.tasks.iter().all(Option::is_none));
    idle && (0..NP).all(|p| {
        let stored: Vec<(Proc, Time)> = Proc::ALL
            .iter()
            .filter_map(|&q| s.stored[q.index()][p].map(|ra| (q, ra)))
            .collect();
        let recorded: Vec<(Proc, Time)> = s
            .redis
            .summary
            .iter()
            .filter(|e| e.0 as usize == p)
            .map(|e| (e.1, e.2))
            .collect();
        match s.redis.status[p] {
            None => !s.accepted[p] && stored.is_empty(),
            Some(h) => match h.st {
                St::Processed => stored.len() == 1 && recorded == stored,
                St::Failed => stored.is_empty() && recorded.is_empty() && s.redis.dead[p] > 0,
                St::Queued | St::Processing => false,
            },
        }
    })
}
