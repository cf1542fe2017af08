//! The payment protocol as one state machine (a stateright [`Model`]): Redis as the scripts
//! change it ([`crate::scripts`]), the workers' per-payment tasks, two processors, one clock,
//! and the faults — each a budgeted action, so the state space stays finite.
//!
//! Time is a global tick. Redis `TIME` is the tick; the workers' monotonic clocks run at the
//! same rate (their wall clocks, which stamp `requestedAt`, may be off it: [`reuse`]). Nothing bounds how long a worker's task takes between two of its steps (it can
//! be slow anywhere); only the heartbeat of a worker that is not frozen runs on time (once
//! per tick, `claim_idle` ≥ 3 ticks), so only a freeze or a crash lets a claim take an entry.
//! The processors keep to docs/protocol.md §3: a POST is received within `t` of
//! its send start (or never) and stored — or answered 500 or 422 — at most `g` after; a
//! client timeout does not cancel it. A lookup is answered within `t` of being asked, from
//! the processor's state at that moment.
//!
//! States are kept finite without a time horizon: times are only ever compared with each
//! other up to a small constant, so [`State::normalize`] shifts them to start at 0 (at
//! [`Config::epoch`] where requestedAt has clocks of its own: [`reuse`]) and shrinks
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
//! The two-payment configurations are a cross-check of that argument. Memory is the one
//! thing payments share: a full memory is freed by any payment's deletion, so the memory
//! configuration has two payments, and a step frees it from outside (other payments, the
//! retention, an operator).
//!
//! The steps live by concern: [`task`] (a payment task and the processors), [`ops`] (the
//! clock and heartbeat, accept, reads and claims, re-drive, faults), [`upkeep`] (the purge,
//! the stale-consumer cleanup, memory), [`reuse`] (clocks off Redis', an id used before,
//! the decision on a found payment), [`canon`] (the canonical form), [`props`] (the
//! properties and what "finished" means).

use std::fmt::Write as _;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use stateright::{Model, Property};

/// Appends to the step's description when one is wanted (trace printing only).
macro_rules! say {
    ($log:expr, $($arg:tt)*) => {
        if let Some(log) = $log.as_mut() {
            let _ = write!(log, $($arg)*);
        }
    };
}

mod canon;
mod ops;
mod props;
mod reuse;
mod task;
mod types;
mod upkeep;

pub use props::*;
pub use types::*;

fn show(t: Option<Time>) -> String {
    t.map_or_else(|| "0".into(), |t| t.to_string())
}

#[derive(Clone, Debug)]
pub struct Protocol {
    pub cfg: Config,
    pub normalize: bool,
    /// Per safety property: a violation was reported already (see [`first_violation`]).
    reported: Arc<[AtomicBool; 6]>,
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
        let mut n = s.clone();
        match action {
            Action::Begin(..)
            | Action::Send(..)
            | Action::Skip(..)
            | Action::Reply(..)
            | Action::Timeout(..)
            | Action::Reset(..)
            | Action::Ask(..)
            | Action::Retry(..)
            | Action::Lookup(..)
            | Action::Answer(..)
            | Action::Fail(..)
            | Action::Process(..) => self.task_step(s, &mut n, action, log)?,
            _ => self.other_step(s, &mut n, action, log)?,
        }
        // Deleting a stream entry or a payment frees memory (records, dead letters, acks of
        // finished payments, the purge).
        if n.full && n.redis.held() < s.redis.held() {
            n.full = false;
            say!(log, "; memory freed");
        }
        n.canonicalize(&self.cfg, self.normalize);
        Some(n)
    }

    /// The state the checker keeps for a concrete one (times, attempt numbers and entry ids
    /// renamed, workers and payments in their least order).
    pub fn canonical(&self, mut s: State) -> State {
        s.canonicalize(&self.cfg, true);
        s
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
                        Step::Send { first, .. } => {
                            actions.push(Action::Send(wu, pu));
                            if first {
                                actions.push(Action::Skip(wu, pu));
                            }
                        }
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
            if Self::holds(s, post.proc, post.payment as usize).is_some() {
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
        self.upkeep_actions(s, actions);
    }

    fn next_state(&self, s: &State, action: Action) -> Option<State> {
        self.apply(s, action, &mut None)
    }

    fn format_action(&self, action: &Action) -> String {
        format!("{action:?}")
    }

    fn properties(&self) -> Vec<Property<Self>> {
        props::properties(&self.cfg)
    }
}
