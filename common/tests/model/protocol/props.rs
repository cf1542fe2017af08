//! The properties the checker holds the model to, and what "finished" means.

use std::sync::atomic::Ordering;

use stateright::Property;

use super::{Config, Proc, Protocol, State, Step, Time};
use crate::scripts::{St, NP};

pub const NEVER_BOTH: &str = "never stored by both processors";
pub const DEAD_NOT_STORED: &str = "a dead letter is never stored anywhere";
pub const SUMMARY_TRUE: &str = "the summary counts only what a processor stored, once";
pub const ACCEPTED_KEPT: &str = "an accepted payment is never forgotten";
pub const SUMMARY_COMPLETE: &str =
    "the summary counts every processed payment, and outside a purge only those";
pub const ENTRY_KEPT: &str = "an unfinished payment's stream entry stays within reach";
pub const SOME_FALLBACK: &str = "sometimes: processed by the fallback after an earlier attempt";
pub const SOME_DEAD: &str = "sometimes: dead-lettered";
pub const SOME_FINISHED: &str = "sometimes: every payment processed";
pub const SOME_PURGED: &str = "sometimes: a purge deletes a payment a processor stored";
pub const SOME_KEPT: &str = "sometimes: a payment accepted during a purge is recorded after it";
pub const SOME_DROPPED: &str = "sometimes: a consumer deleted while a payment is in flight";
pub const SOME_FULL: &str = "sometimes: memory full while an attempt is in flight";
pub const SOME_FIRST: &str = "sometimes: processed by the first attempt, sent without begin";
pub const SOME_EARLIER: &str =
    "sometimes: dead-lettered, pin kept, where a processor holds an earlier payment with its id";
pub const SOME_BEHIND: &str =
    "sometimes: recorded with a requestedAt older than its acceptance minus the margin";

/// The safety properties, for tests that must not see any of them fail.
pub const SAFETY: [&str; 6] = [
    NEVER_BOTH,
    DEAD_NOT_STORED,
    SUMMARY_TRUE,
    ACCEPTED_KEPT,
    SUMMARY_COMPLETE,
    ENTRY_KEPT,
];

/// What must be reachable in a configuration, or the model would pass vacuously.
pub fn sometimes(cfg: &Config) -> Vec<&'static str> {
    let mut out = vec![SOME_FALLBACK, SOME_DEAD, SOME_FINISHED];
    if cfg.budget.purges > 0 {
        out.extend([SOME_PURGED, SOME_KEPT]);
    }
    if cfg.budget.cleanups > 0 {
        out.push(SOME_DROPPED);
    }
    if cfg.budget.memory_fills > 0 {
        out.push(SOME_FULL);
    }
    if cfg.first_attempt {
        out.push(SOME_FIRST);
    }
    if cfg.earlier_use.is_some() {
        out.push(SOME_EARLIER);
    }
    if cfg
        .skew
        .iter()
        .any(|&s| i32::from(s) < -i32::from(cfg.margin))
    {
        out.push(SOME_BEHIND);
    }
    out
}

/// The model's properties (stateright's [`stateright::Model::properties`]).
pub(super) fn properties(cfg: &Config) -> Vec<Property<Protocol>> {
    let mut out = vec![
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
        Property::always(SUMMARY_COMPLETE, |m, s| {
            first_violation(m, 4, summary_counts_every_processed(s))
        }),
        Property::always(ENTRY_KEPT, |m, s| {
            first_violation(m, 5, entry_within_reach(s))
        }),
    ];
    for name in sometimes(cfg) {
        out.push(match name {
            SOME_FALLBACK => {
                Property::sometimes(SOME_FALLBACK, |_, s: &State| {
                    s.redis.status.iter().flatten().any(|h| {
                        h.st == St::Processed && h.proc == Some(Proc::Fallback) && h.att >= 2
                    })
                })
            }
            SOME_DEAD => Property::sometimes(SOME_DEAD, |_, s: &State| {
                s.redis.status.iter().flatten().any(|h| h.st == St::Failed)
            }),
            SOME_FINISHED => Property::sometimes(SOME_FINISHED, |_, s| all_processed(s)),
            SOME_PURGED => Property::sometimes(SOME_PURGED, |_, s: &State| {
                (0..NP).any(|p| s.purged[p] && s.stored.iter().any(|q| q[p].is_some()))
            }),
            SOME_KEPT => Property::sometimes(SOME_KEPT, |_, s: &State| {
                s.purge.is_none()
                    && (0..NP).any(|p| {
                        s.accepted_in_purge[p]
                            && s.redis.status[p].is_some_and(|h| h.st == St::Processed)
                    })
            }),
            SOME_DROPPED => Property::sometimes(SOME_DROPPED, |_, s: &State| {
                s.redis.deleted.iter().any(|&d| d)
                    && s.redis
                        .status
                        .iter()
                        .flatten()
                        .any(|h| h.st == St::Processing)
            }),
            // Every begin.lua counts an attempt on from the one accept.lua pinned.
            SOME_FIRST => Property::sometimes(SOME_FIRST, |_, s: &State| {
                s.redis
                    .status
                    .iter()
                    .flatten()
                    .any(|h| h.st == St::Processed && h.att == 1)
            }),
            // A pin kept: the earlier payment's (its processor answers only 422 to this
            // one, and its lookup always finds the earlier one, so no anomaly is counted).
            SOME_EARLIER => Property::sometimes(SOME_EARLIER, |_, s: &State| {
                (0..NP).any(|p| {
                    s.redis.status[p].is_some_and(|h| {
                        h.st == St::Failed && h.amb && h.proc.is_some() && h.proc == s.earlier[p]
                    })
                })
            }),
            SOME_BEHIND => Property::sometimes(SOME_BEHIND, |m: &Protocol, s: &State| {
                let margin = i32::from(m.cfg.margin);
                s.redis.summary.iter().any(|&(p, _, ra)| {
                    s.redis.status[p as usize]
                        .and_then(|h| h.at)
                        .is_some_and(|at| i32::from(ra) < i32::from(at) - margin)
                })
            }),
            _ => Property::sometimes(SOME_FULL, |_, s: &State| s.full && past_begin(s)),
        });
    }
    out
}

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

/// An accepted payment keeps its status, unless a purge deleted it, which a purge may do
/// only to a payment accepted before it started (a purge is the operator deleting
/// everything there is; what is accepted while it runs stays whole).
pub fn accepted_never_forgotten(s: &State) -> bool {
    (0..NP).all(|p| {
        !s.accepted[p] || s.redis.status[p].is_some() || (s.purged[p] && !s.accepted_in_purge[p])
    })
}

/// A payment whose status says processed is in the summary; and the summary counts only
/// processed payments, except while a purge runs (it deletes statuses first and wipes the
/// summary last).
pub fn summary_counts_every_processed(s: &State) -> bool {
    let counted = |p: usize| s.redis.summary.iter().any(|e| e.0 as usize == p);
    (0..NP).all(|p| {
        let processed = s.redis.status[p].is_some_and(|h| h.st == St::Processed);
        (!processed || counted(p)) && (s.purge.is_some() || !counted(p) || processed)
    })
}

/// A queued or in-flight payment's stream entry (the one its status names) is in the stream
/// and in reach: pending on a consumer (XAUTOCLAIM can take it) or not delivered yet
/// (XREADGROUP hands it out), never an entry that left the pending list with its consumer.
pub fn entry_within_reach(s: &State) -> bool {
    (0..NP).all(|p| match s.redis.status[p] {
        Some(h) if matches!(h.st, St::Queued | St::Processing) => s
            .redis
            .stream
            .iter()
            .any(|e| e.payment as usize == p && e.id == h.sid),
        _ => true,
    })
}

/// Some task has begun an attempt and not yet carried its outcome to Redis.
pub fn past_begin(s: &State) -> bool {
    s.workers
        .iter()
        .flat_map(|w| w.tasks.iter().flatten())
        .any(|t| t.step != Step::Begin)
}

/// At a full memory, the work in flight has reached Redis: memory was freed (a deletion),
/// or no task is past begin, no POST is on its way, and every payment a processor stored
/// is recorded (or purged). What is left waits for begin, which Redis refuses until memory
/// is freed.
pub fn carried_to_redis(s: &State) -> bool {
    !s.full
        || (!past_begin(s)
            && s.posts.is_empty()
            && (0..NP).all(|p| {
                s.stored.iter().all(|q| q[p].is_none())
                    || s.purged[p]
                    || s.redis.status[p].is_some_and(|h| h.st == St::Processed)
            }))
}

pub(super) fn all_processed(s: &State) -> bool {
    let accepted = s.accepted.iter().filter(|a| **a).count();
    finished(s) && accepted > 0 && s.redis.summary.len() == accepted
}

/// Nothing in flight, and every accepted payment processed exactly once (the summary equal
/// to what the processors stored), dead-lettered and stored nowhere, or purged.
pub fn finished(s: &State) -> bool {
    let idle = s.posts.is_empty()
        && s.redis.stream.is_empty()
        && s.redis.orphans.is_empty()
        && s.purge.is_none()
        && s.cleanup.is_none()
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
            // A purge deleted it: what the processors hold stays theirs.
            None => s.purged[p] || (!s.accepted[p] && stored.is_empty()),
            Some(h) => match h.st {
                St::Processed => stored.len() == 1 && recorded == stored,
                St::Failed => stored.is_empty() && recorded.is_empty() && s.redis.dead[p] > 0,
                St::Queued | St::Processing => false,
            },
        }
    })
}
