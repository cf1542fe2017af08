//! The properties the checker holds the model to, and what "finished" means.

use std::sync::atomic::Ordering;

use super::{Proc, Protocol, State, Time};
use crate::scripts::{St, NP};

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
pub(super) fn first_violation(m: &Protocol, property: usize, holds: bool) -> bool {
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

pub(super) fn all_processed(s: &State) -> bool {
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
