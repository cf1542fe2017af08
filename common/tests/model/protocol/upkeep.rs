//! The upkeep around the payments: the operator's purge (`Store::purge_start`,
//! `purge_sweep`, `purge_finish`), the workers' stale-consumer cleanup (reclaim.rs), and
//! Redis memory reaching `maxmemory` and being freed.

use std::fmt::Write as _;

use super::{worker_name, Action, Protocol, Purge, State, NW};
use crate::scripts::{self, NP};

impl Protocol {
    /// A purge, cleanup or memory step; `None` when not enabled.
    pub(super) fn upkeep_step(
        &self,
        s: &State,
        n: &mut State,
        action: Action,
        log: &mut Option<String>,
    ) -> Option<()> {
        let cfg = &self.cfg;
        match action {
            Action::PurgeStart | Action::PurgeRestart => {
                match (action, s.purge) {
                    (Action::PurgeStart, None) => {
                        n.budget.purges = n.budget.purges.checked_sub(1)?;
                    }
                    (Action::PurgeRestart, Some(run)) if run.lost => {
                        // A new purge: what was accepted during the lost one is before it.
                        n.accepted_in_purge = [false; NP];
                    }
                    _ => return None,
                }
                // scripts/purge.lua — common/src/scripts/purge.lua, 'start': the flag (SET NX).
                if !scripts::purge_start(&mut n.redis, scripts::OWN) {
                    // PURGERUNNING: the flag of a purge that died half-way has not expired
                    // yet (the model's purges never die: it expires as a fault).
                    return None;
                }
                n.purge = Some(Purge {
                    last: None,
                    dead_before: None,
                    listed: [false; NP],
                    swept: [false; NP],
                    lost: false,
                });
                say!(log, "operator: purge_start: flag taken; ");
                if !cfg.faults.purge_forgets_newer {
                    self.note_dead_end(n, log);
                } else {
                    self.note_stream_end(n, log);
                }
            }
            Action::PurgeNoteEnd => {
                let run = s.purge?;
                if run.lost {
                    return None;
                }
                say!(log, "operator: purge_start: ");
                match (run.last, run.dead_before) {
                    (None, Some(_)) => self.note_stream_end(n, log),
                    (Some(_), None) => self.note_dead_end(n, log),
                    _ => return None,
                }
                let run = n.purge.as_mut()?;
                for (p, listed) in run.listed.iter_mut().enumerate() {
                    *listed = n.redis.status[p].is_some();
                }
                say!(log, "; the sweep's SCAN starts");
            }
            Action::PurgeSweep(p) => {
                let p = p as usize;
                let run = s.purge?;
                let last = run.last?;
                if run.lost
                    || run.dead_before.is_none()
                    || run.swept[p]
                    || s.redis.status[p].is_none()
                {
                    return None;
                }
                // scripts/purge.lua — common/src/scripts/purge.lua
                let Some(deleted) = scripts::purge(
                    &mut n.redis,
                    scripts::OWN,
                    &[p],
                    &last,
                    !cfg.faults.purge_forgets_newer,
                    !cfg.faults.purge_without_owner,
                ) else {
                    n.purge.as_mut()?.lost = true;
                    say!(
                        log,
                        "operator: purge(p{}) -> PURGELOST: the purge stops (409)",
                        p + 1
                    );
                    return Some(());
                };
                n.purge.as_mut()?.swept[p] = true;
                let st = s.redis.status[p]?;
                if deleted.is_empty() {
                    say!(
                        log,
                        "operator: purge(p{}) -> kept ({}, entry {} newer)",
                        p + 1,
                        st.st.name(),
                        st.sid
                    );
                } else {
                    n.purged[p] = true;
                    say!(
                        log,
                        "operator: purge(p{}) -> deleted ({})",
                        p + 1,
                        st.st.name()
                    );
                }
            }
            Action::PurgeFinish => {
                let run = s.purge?;
                let (last, dead_before) = (run.last?, run.dead_before?);
                // SCAN returns every key that exists from its start to its end.
                if run.lost || (0..NP).any(|p| run.listed[p] && !run.swept[p]) {
                    return None;
                }
                // scripts/purge_finish.lua — common/src/scripts/purge_finish.lua (allow-oom:
                // it runs at a full memory too).
                if !self.runs(s, "purge_finish") {
                    return None;
                }
                let owned = !cfg.faults.purge_without_owner;
                if scripts::purge_finish(&mut n.redis, scripts::OWN, &last, &dead_before, owned) {
                    n.purge = None;
                    say!(
                        log,
                        "operator: purge_finish -> summary wiped, streams trimmed, flag cleared"
                    );
                } else {
                    n.purge.as_mut()?.lost = true;
                    say!(
                        log,
                        "operator: purge_finish -> PURGELOST: nothing deleted (409)"
                    );
                }
            }
            Action::PurgeFlagExpires => {
                s.redis.purging?;
                n.budget.flag_expiries = n.budget.flag_expiries.checked_sub(1)?;
                n.redis.purging = None;
                say!(
                    log,
                    "FAULT the purge flag expires (the purge too slow between renewals)"
                );
            }
            Action::DropConsumers(w) => {
                let wi = w as usize;
                if cfg.faults.split_consumer_cleanup || s.workers[wi].frozen {
                    return None;
                }
                if scripts::idle_consumers(&s.redis, w, cfg.workers).is_empty() {
                    return None;
                }
                n.budget.cleanups = n.budget.cleanups.checked_sub(1)?;
                // scripts/drop_consumers.lua — common/src/scripts/drop_consumers.lua
                let gone = scripts::drop_consumers(&mut n.redis, w, cfg.workers);
                say!(
                    log,
                    "worker {}: drop_consumers -> deleted {}",
                    worker_name(wi),
                    names(&gone)
                );
            }
            Action::CheckConsumers(w) => {
                let wi = w as usize;
                if !cfg.faults.split_consumer_cleanup || s.workers[wi].frozen || s.cleanup.is_some()
                {
                    return None;
                }
                let found = scripts::idle_consumers(&s.redis, w, cfg.workers);
                if found.is_empty() {
                    return None;
                }
                n.budget.cleanups = n.budget.cleanups.checked_sub(1)?;
                n.cleanup = Some((w, found.iter().fold(0, |m, &c| m | (1 << c))));
                say!(
                    log,
                    "FAULT worker {}: XINFO CONSUMERS -> {} idle, nothing pending",
                    worker_name(wi),
                    names(&found)
                );
            }
            Action::DelConsumers(w) => {
                let (by, found) = s.cleanup?;
                if by != w || s.workers[w as usize].frozen {
                    return None;
                }
                let gone: Vec<u8> = (0..NW as u8).filter(|c| found & (1 << c) != 0).collect();
                for &c in &gone {
                    scripts::del_consumer(&mut n.redis, c);
                }
                n.cleanup = None;
                say!(
                    log,
                    "worker {}: XGROUP DELCONSUMER {} ({} entries leave the pending list)",
                    worker_name(w as usize),
                    names(&gone),
                    n.redis.orphans.len() - s.redis.orphans.len()
                );
            }
            Action::FillMemory => {
                if s.full || s.redis.stream.is_empty() {
                    return None;
                }
                n.budget.memory_fills = n.budget.memory_fills.checked_sub(1)?;
                n.full = true;
                say!(log, "FAULT redis memory full (maxmemory, noeviction)");
            }
            Action::FreeMemory => {
                if !s.full {
                    return None;
                }
                n.full = false;
                say!(
                    log,
                    "memory freed from outside (other payments, retention, operator)"
                );
            }
            _ => return None,
        }
        Some(())
    }
}

impl Protocol {
    /// The upkeep steps enabled in `s` (`purge_finish` before the sweep's steps: breadth-first
    /// search then meets a purge that finishes before one that sweeps).
    pub(super) fn upkeep_actions(&self, s: &State, actions: &mut Vec<Action>) {
        let cfg = &self.cfg;
        if let Some(run) = &s.purge {
            if run.lost {
                actions.push(Action::PurgeRestart);
            } else if run.last.is_none() || run.dead_before.is_none() {
                actions.push(Action::PurgeNoteEnd);
            } else {
                actions.push(Action::PurgeFinish);
                for p in 0..cfg.payments {
                    if !run.swept[p] && s.redis.status[p].is_some() {
                        actions.push(Action::PurgeSweep(p as u8));
                    }
                }
            }
        } else if s.budget.purges > 0 {
            actions.push(Action::PurgeStart);
        }
        if s.redis.purging.is_some() && s.budget.flag_expiries > 0 {
            actions.push(Action::PurgeFlagExpires);
        }
        if s.budget.cleanups > 0 {
            for w in 0..cfg.workers as u8 {
                if cfg.faults.split_consumer_cleanup {
                    actions.push(Action::CheckConsumers(w));
                } else {
                    actions.push(Action::DropConsumers(w));
                }
            }
        }
        if let Some((w, _)) = s.cleanup {
            actions.push(Action::DelConsumers(w));
        }
        if s.full {
            actions.push(Action::FreeMemory);
        } else if s.budget.memory_fills > 0 {
            actions.push(Action::FillMemory);
        }
    }
}

impl Protocol {
    /// `purge_start` notes where the payment stream ends (XINFO STREAM).
    fn note_stream_end(&self, n: &mut State, log: &mut Option<String>) {
        let mut last = [0; NP];
        for (p, l) in last.iter_mut().enumerate() {
            *l = Self::fresh_gen(n, p) - 1;
        }
        if let Some(run) = n.purge.as_mut() {
            run.last = Some(last);
        }
        say!(
            log,
            "the stream ends at entry {}",
            show_ids(&last[..self.cfg.payments])
        );
    }

    /// `purge_start` notes where the dead-letter stream ends (XINFO STREAM).
    fn note_dead_end(&self, n: &mut State, log: &mut Option<String>) {
        if let Some(run) = n.purge.as_mut() {
            run.dead_before = Some(n.redis.dead);
        }
        say!(
            log,
            "the dead-letter stream ends after {} letter(s)",
            n.redis.dead.iter().map(|&d| u32::from(d)).sum::<u32>()
        );
    }
}

fn show_ids(ids: &[u8]) -> String {
    ids.iter()
        .enumerate()
        .map(|(p, id)| format!("p{}:{id}", p + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

fn names(consumers: &[u8]) -> String {
    consumers
        .iter()
        .map(|&c| worker_name(c as usize).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
