//! The steps of a payment task (begin, send, answers, lookups, settle, record, fail) and of
//! the processors that handle its POSTs.

use std::fmt::Write as _;

use super::{
    show, worker_name, Action, Att, Gen, Post, Proc, Protocol, Reply, State, Step, Task, Time,
};
use crate::scripts::{self, BeginReply, FailReply, RecordReply, Settle, SettleReply};

impl Protocol {
    /// A step of a payment task or a processor; `None` when not enabled.
    pub(super) fn task_step(
        &self,
        s: &State,
        n: &mut State,
        action: Action,
        log: &mut Option<String>,
    ) -> Option<()> {
        let cfg = &self.cfg;
        let now = s.now;
        match action {
            Action::Begin(w, p, wanted) => {
                let (w, p) = (w as usize, p as usize);
                let task = s.workers[w].tasks[p]?;
                // At a full memory Redis refuses begin.lua before it runs: nothing changes,
                // the task backs off and calls it again, as if it had not yet.
                if !self.runs(s, "begin") {
                    return None;
                }
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
                    self.rq0_arg(w, now),
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
                        set_step(
                            slot,
                            Step::Send {
                                proc,
                                att,
                                t0: now,
                                first: false,
                            },
                        );
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
                let Step::Send { proc, att, t0, .. } = task.step else {
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
                    self.settle_failed(n, w, p, proc, att, log)?;
                } else {
                    let requested = self.requested_at(w, t0, now);
                    say!(
                        log,
                        "worker {}: POST p{} to {} (att={att}, requestedAt={requested})",
                        worker_name(w),
                        p + 1,
                        proc.name()
                    );
                    n.posts.push(Post {
                        payment: p as u8,
                        proc,
                        att,
                        sent: now,
                        requested,
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
            Action::Skip(w, p) => {
                let (w, p) = (w as usize, p as usize);
                let task = s.workers[w].tasks[p]?;
                let Step::Send { first: true, .. } = task.step else {
                    return None;
                };
                say!(
                    log,
                    "worker {}: p{}'s first attempt not sent: begin instead",
                    worker_name(w),
                    p + 1
                );
                set_step(&mut n.workers[w].tasks[p], Step::Begin);
            }
            Action::Reply(w, p) => {
                let (w, p) = (w as usize, p as usize);
                let task = s.workers[w].tasks[p]?;
                let Step::AwaitPost {
                    proc,
                    att,
                    reply: Some(reply),
                    ..
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
                        // The requestedAt this POST carried: its 200 stored it there, and
                        // nothing else is ever stored there for this payment.
                        let requested_at = s.stored[proc.index()][p]
                            .expect("a 200 comes from the POST the processor stored");
                        self.record(n, w, p, proc, requested_at, log)?;
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
                            if !cfg.faults.uncounted_failures {
                                t.failures += 1;
                            }
                        }
                        self.settle_failed(n, w, p, proc, att, log)?;
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
                        self.settle_failed(n, w, p, proc, att, log)?;
                        return Some(());
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
                self.unanswered(n, w, p, proc, att, grace, false, log)?;
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
                let found = Self::holds(s, proc, p);
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
                    self.record_found(n, w, p, proc, att, requested_at, log)?;
                } else if after_422 {
                    let grace = cfg.worker_grace();
                    say!(log, "worker {}: 404 after 422 -> ", worker_name(w));
                    self.unanswered(n, w, p, proc, att, grace, true, log)?;
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
                        if self.refused(n, "settle") {
                            return None;
                        }
                        // scripts/settle.lua — common/src/scripts/settle.lua
                        let entry = self.callers_entry(n, w, p)?;
                        let reply = scripts::settle(
                            &mut n.redis,
                            p,
                            entry,
                            proc,
                            att,
                            Settle::Absent { asked: judged },
                            cfg.strict_safe,
                        );
                        self.after_settle(n, w, p, reply, proc, att, safe, log);
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
                let has = Self::holds(s, post.proc, p).is_some();
                if has != (outcome == Reply::AlreadyStored) {
                    return None;
                }
                n.posts.remove(i as usize);
                if outcome == Reply::Stored {
                    n.stored[q][p] = Some(post.requested);
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
            _ => return None,
        }
        Some(())
    }

    /// record.lua for the task's answer; `None` (the step is not taken yet) while Redis
    /// refuses it before it runs: `TRYAGAIN` while a purge holds its flag, or a full memory
    /// under seeded fault (l). The worker keeps the answer and calls record.lua again after
    /// a back-off (pipeline.rs `until_run`), so nothing changes until it runs.
    pub(super) fn record(
        &self,
        n: &mut State,
        w: usize,
        p: usize,
        proc: Proc,
        requested_at: Time,
        log: &mut Option<String>,
    ) -> Option<()> {
        let entry = n.workers[w].tasks[p].map(|t| t.entry);
        say!(
            log,
            "record(p{}, {}, requestedAt={requested_at}) -> ",
            p + 1,
            proc.name()
        );
        if self.refused(n, "record") {
            return None;
        }
        // scripts/record.lua — common/src/scripts/record.lua
        let honour_flag = !self.cfg.faults.record_ignores_purge;
        // `None`: TRYAGAIN (a purge holds the flag): recorded again later, as above.
        let reply = scripts::record_unless_purging(
            &mut n.redis,
            p,
            proc,
            requested_at,
            entry,
            honour_flag,
        )?;
        say!(
            log,
            "{}",
            match reply {
                RecordReply::Ok => "ok",
                RecordReply::Dup => "dup",
                RecordReply::Missing => "missing",
            }
        );
        n.workers[w].tasks[p] = None;
        Some(())
    }

    /// Whether Redis runs `script` in state `s`: while memory is full, only the scripts
    /// whose first line says `allow-oom` ([`scripts::allow_oom`]; seeded fault (l) takes it
    /// from record, settle and unanswered).
    pub(super) fn runs(&self, s: &State, script: &str) -> bool {
        if !s.full {
            return true;
        }
        let stripped =
            self.cfg.faults.no_allow_oom && matches!(script, "record" | "settle" | "unanswered");
        scripts::allow_oom(script) && !stripped
    }

    /// Whether Redis refuses `script` before it runs in state `s` (memory full). The worker
    /// calls the same script again after a back-off, never starting over from `begin`
    /// (pipeline.rs `until_run`): the step that calls it is not taken until it runs.
    fn refused(&self, s: &State, script: &str) -> bool {
        !self.runs(s, script)
    }

    /// unanswered.lua for the task's attempt (its outcome unknown; `held`: the processor
    /// said it holds the payment and cannot show it), then the task resolves the attempt by
    /// lookups, or begins again if a newer attempt owns the outcome.
    #[allow(clippy::too_many_arguments)]
    fn unanswered(
        &self,
        n: &mut State,
        w: usize,
        p: usize,
        proc: Proc,
        att: Att,
        grace: Time,
        held: bool,
        log: &mut Option<String>,
    ) -> Option<()> {
        if self.refused(n, "unanswered") {
            return None;
        }
        // scripts/unanswered.lua — common/src/scripts/unanswered.lua
        let entry = self.callers_entry(n, w, p)?;
        let r = scripts::unanswered(&mut n.redis, p, entry, proc, att, grace, held, n.now);
        say!(
            log,
            "unanswered(p{}, {}, att={att}, {}) -> {} safe={}",
            p + 1,
            proc.name(),
            if held {
                "held".to_string()
            } else {
                format!("grace={grace}")
            },
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
        Some(())
    }

    /// The stream entry a task passes to settle.lua / unanswered.lua: its own (with
    /// `no_entry_check`, whatever the status holds, so the check never fails).
    fn callers_entry(&self, n: &State, w: usize, p: usize) -> Option<Gen> {
        let own = n.workers[w].tasks[p]?.entry;
        if self.cfg.faults.no_entry_check {
            return Some(n.redis.status[p].map_or(own, |h| h.sid));
        }
        Some(own)
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
    ) -> Option<()> {
        if self.refused(n, "settle") {
            return None;
        }
        // scripts/settle.lua — common/src/scripts/settle.lua
        let entry = self.callers_entry(n, w, p)?;
        let reply = scripts::settle(
            &mut n.redis,
            p,
            entry,
            proc,
            att,
            Settle::Failed,
            self.cfg.strict_safe,
        );
        self.after_settle(n, w, p, reply, proc, att, None, log);
        Some(())
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

pub(super) fn set_step(slot: &mut Option<Task>, step: Step) {
    if let Some(t) = slot.as_mut() {
        t.step = step;
    }
}
