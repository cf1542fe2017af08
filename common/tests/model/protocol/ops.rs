//! The steps around the payment tasks: the clock and the heartbeat, the gateway's accept,
//! the reads and claims of stream entries, the operator's re-drive, and the faults that hit
//! workers, messages and Redis.

use std::fmt::Write as _;

use super::{worker_name, Action, Gen, Protocol, State, Step, Task, Worker};
use crate::scripts::{self, AcceptReply, NP};

impl Protocol {
    /// A step that is not a payment task's; `None` when not enabled.
    pub(super) fn other_step(
        &self,
        s: &State,
        n: &mut State,
        action: Action,
        log: &mut Option<String>,
    ) -> Option<()> {
        let cfg = &self.cfg;
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
                // Refused at a full memory (503): nothing changes, the client posts again.
                if !self.runs(s, "accept") {
                    return None;
                }
                let sid = Self::fresh_gen(n, p);
                // scripts/accept.lua — common/src/scripts/accept.lua
                match scripts::accept(&mut n.redis, p, sid, cfg.first(now)) {
                    AcceptReply::Ok(_) => say!(log, "gateway: accept(p{}) -> ok, 202", p + 1),
                    AcceptReply::Dup(st) => {
                        say!(log, "gateway: accept(p{}) -> dup {}", p + 1, st.name())
                    }
                }
                n.accepted[p] = true;
                n.accepted_in_purge[p] = n.purge.is_some_and(|run| run.last.is_some());
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
                // The first consumer to read an entry that carries its acceptance time sends
                // the first attempt accept.lua pinned, within the send window of that time.
                let step = match (action, e.at) {
                    (Action::Read(..), Some(at)) => Step::Send {
                        proc: super::Proc::Default,
                        att: 1,
                        t0: if cfg.faults.first_from_read { now } else { at },
                        first: true,
                    },
                    _ => Step::Begin,
                };
                n.workers[w].tasks[p] = Some(Task {
                    entry: e.id,
                    failures: 0,
                    anomalies: 0,
                    step,
                });
            }
            Action::Redrive => {
                if !self.runs(s, "redrive") {
                    return None;
                }
                n.budget.redrives = n.budget.redrives.checked_sub(1)?;
                let mut next: [Gen; NP] = [0; NP];
                for (p, g) in next.iter_mut().enumerate() {
                    *g = Self::fresh_gen(n, p);
                }
                // scripts/redrive.lua — common/src/scripts/redrive.lua
                let moved = scripts::redrive(&mut n.redis, now, cfg.faults.old_redrive, |p| {
                    let g = next[p];
                    next[p] += 1;
                    g
                });
                say!(log, "operator: redrive -> {moved} re-queued");
                // It reads and removes every letter, the oldest first.
                if let Some(d) = n.purge.as_mut().and_then(|run| run.dead_before.as_mut()) {
                    *d = [0; NP];
                }
            }
            Action::Unfreeze(w) => {
                n.workers[w as usize].frozen = false;
                say!(log, "worker {} resumes", worker_name(w as usize));
            }
            Action::Crash(w) => {
                n.budget.crashes = n.budget.crashes.checked_sub(1)?;
                n.workers[w as usize] = Worker::default();
                if n.cleanup.is_some_and(|(by, _)| by == w) {
                    n.cleanup = None;
                }
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
            _ => return self.upkeep_step(s, n, action, log),
        }
        Some(())
    }
}
