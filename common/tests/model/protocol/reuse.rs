//! An id used before, and clocks that are not Redis': the requestedAt a task sends (its
//! worker's wall clock, which may be off Redis' by a configured skew), what a processor
//! holds under a payment's id (this payment, or an earlier one accepted under the same id
//! before its status expired), and the worker's decision on a "found" lookup
//! (`pipeline.rs` `record_found`). Before it: a task's lookup ([`super::task`]); after it:
//! record.lua, or fail.lua with the pin kept.

use std::fmt::Write as _;

use super::task::set_step;
use super::{worker_name, Att, Proc, Protocol, State, Step, Time, LONG_AGO};

impl Protocol {
    /// The requestedAt of an attempt worker `w` began at `t0` and sends at `sent`: its wall
    /// clock at `t0` (the worker chooses it before `begin`, which keeps the earliest as
    /// `rq0`). Where the model has no clocks apart from Redis', the send start.
    pub(super) fn requested_at(&self, w: usize, t0: Time, sent: Time) -> Time {
        if !self.cfg.clocks() {
            return sent;
        }
        let at = i32::from(t0) + i32::from(self.cfg.skew[w]);
        Time::try_from(at).expect("the epoch keeps every requestedAt above the earlier use's")
    }

    /// The requestedAt `begin` lowers `rq0` to for an attempt worker `w` begins now
    /// (`None`: `rq0` is not kept, see [`super::Config::clocks`]).
    pub(super) fn rq0_arg(&self, w: usize, now: Time) -> Option<Time> {
        self.cfg.clocks().then(|| self.requested_at(w, now, now))
    }

    /// The requestedAt processor `proc` holds under payment `p`'s id: this payment's, or
    /// the earlier payment's ([`LONG_AGO`]). What its lookup shows, and why it answers 422.
    pub(super) fn holds(s: &State, proc: Proc, p: usize) -> Option<Time> {
        s.stored[proc.index()][p].or((s.earlier[p] == Some(proc)).then_some(LONG_AGO))
    }

    /// A lookup of attempt `att` on `proc` found a payment requested at `found`: unless it
    /// is an earlier payment with this id, it is recorded. `pipeline.rs` `record_found`
    /// reads the status, then records or dead-letters (fail.lua with the pin kept, the next
    /// step): older than `rq0`, the earliest requestedAt any attempt sent (begin.lua writes
    /// it before the send), is an earlier payment's. Both are worker clocks' readings, and
    /// every attempt's is at least `rq0`: no worker's skew makes this payment look earlier.
    /// A status without `rq0` (begun by an older worker; never in the model) falls back to
    /// the acceptance time minus the margin. Seeded fault (o) always does.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_found(
        &self,
        n: &mut State,
        w: usize,
        p: usize,
        proc: Proc,
        att: Att,
        found: Time,
        log: &mut Option<String>,
    ) -> Option<()> {
        let margin = i32::from(self.cfg.margin);
        let by_acceptance =
            |at: Option<Time>| at.is_some_and(|at| i32::from(found) < i32::from(at) - margin);
        // Whether it is an earlier payment's, and what it was compared with: `rq0`, or
        // (`None`) the acceptance time minus the margin.
        let (earlier, rq0, at) = match n.redis.status[p] {
            None => (false, None, None),
            Some(h) => match h.rq0 {
                Some(rq0) if !self.cfg.faults.clock_compare => (found < rq0, Some(rq0), h.at),
                _ => (by_acceptance(h.at), None, h.at),
            },
        };
        if earlier {
            say!(
                log,
                "worker {}: found on {} requested at {found} < {}: an earlier payment with this \
                 id: dead-letter, keep the pin",
                worker_name(w),
                proc.name(),
                rq0.map_or_else(
                    || format!("acceptance {} - margin {margin}", super::show(at)),
                    |rq0| format!("rq0 {rq0}")
                )
            );
            set_step(&mut n.workers[w].tasks[p], Step::Fail { keep: Some(att) });
            return Some(());
        }
        say!(
            log,
            "worker {}: found on {} -> ",
            worker_name(w),
            proc.name()
        );
        self.record(n, w, p, proc, found, log)
    }
}
