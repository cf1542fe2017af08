//! Running the checkers and printing what they found: counts, times and, for a violated
//! property, the shortest schedule as one line per step with real times.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use stateright::{Checker, HasDiscoveries, Model};

use crate::liveness::{self, Kind, Live};
use crate::protocol::{self, worker_name, Action, Proc, Protocol, State, NW};
use crate::scripts::NP;

/// What stateright's breadth-first search found.
pub struct Safety {
    pub unique: usize,
    pub generated: usize,
    pub depth: usize,
    pub elapsed: Duration,
    /// Property name → the shortest schedule reaching it.
    pub found: HashMap<&'static str, Vec<Action>>,
}

/// Breadth-first over every reachable state. `first_failure`: stop at the first violated
/// property (one thread, so the schedule found is a shortest one).
pub fn safety(model: &Protocol, threads: usize, first_failure: bool) -> Safety {
    let start = Instant::now();
    let mut builder = model.clone().checker().threads(threads);
    if first_failure {
        builder = builder.finish_when(HasDiscoveries::AnyFailures);
    }
    let checker = builder.spawn_bfs().join();
    let found = checker
        .discoveries()
        .into_iter()
        .map(|(name, path)| (name, path.into_actions()))
        .collect();
    Safety {
        unique: checker.unique_state_count(),
        generated: checker.state_count(),
        depth: checker.max_depth(),
        elapsed: start.elapsed(),
        found,
    }
}

impl Live for Protocol {
    fn kind(&self, action: &Action) -> Kind {
        if action.is_fault() {
            Kind::Fault
        } else if *action == Action::Tick {
            Kind::Tick
        } else if action.is_help() {
            Kind::Help
        } else {
            Kind::Step
        }
    }

    fn fairness(&self, action: &Action) -> u8 {
        action.fairness()
    }

    fn finished(&self, state: &State) -> bool {
        protocol::finished(state)
    }

    fn must_settle(&self, state: &State) -> bool {
        state.full
    }

    fn settled(&self, state: &State) -> bool {
        protocol::carried_to_redis(state)
    }
}

pub fn liveness(model: &Protocol) -> liveness::Liveness<Action> {
    liveness::check(model)
}

/// The schedule with real times: each checked (normalized) step is matched by the step of
/// the concrete model whose result normalizes to the same state; one line per step, then
/// the final state.
pub fn render(model: &Protocol, actions: &[Action]) -> String {
    let concrete = model.concrete();
    let mut abstract_state = model.init_states().remove(0);
    let mut s = concrete.init_states().remove(0);
    let mut out = String::new();
    for &a in actions {
        let Some(next) = model.next_state(&abstract_state, a) else {
            let _ = writeln!(out, "{a:?}: not enabled (the replay diverged)");
            break;
        };
        let mut candidates = Vec::new();
        concrete.actions(&s, &mut candidates);
        let step = candidates.into_iter().find_map(|b| {
            let mut log = Some(String::new());
            let n = concrete.apply(&s, b, &mut log)?;
            (model.canonical(n.clone()) == next).then(|| (n, log.unwrap_or_default()))
        });
        let Some((n, log)) = step else {
            let _ = writeln!(out, "{a:?}: no concrete step matches (the replay diverged)");
            break;
        };
        let _ = writeln!(out, "t={} {log}", s.now);
        s = n;
        abstract_state = next;
    }
    out.push_str(&describe(&s, model.cfg.payments, model.cfg.workers));
    out
}

/// A schedule, then the steps that repeat forever from its end.
pub fn render_loop(model: &Protocol, path: &[Action], repeat: &[Action]) -> String {
    let whole: Vec<Action> = path.iter().chain(repeat).copied().collect();
    let text = render(model, &whole);
    let mut lines: Vec<&str> = text.lines().collect();
    let end = lines.pop().unwrap_or_default();
    let at = lines.len().saturating_sub(repeat.len());
    let mut out = lines[..at].join("\n");
    out.push_str("\n-- from here on, forever:\n");
    out.push_str(&lines[at..].join("\n"));
    out.push('\n');
    out.push_str(end);
    out.push('\n');
    out
}

/// The end state, briefly.
pub fn describe(s: &State, payments: usize, workers: usize) -> String {
    let mut out = String::from("end:");
    for p in 0..payments.min(NP) {
        let _ = write!(out, " p{}: ", p + 1);
        match s.redis.status[p] {
            None => out.push_str("no status"),
            Some(h) => {
                let _ = write!(out, "{}", h.st.name());
                if let Some(q) = h.proc {
                    let _ = write!(out, " {}", q.name());
                }
                if h.amb {
                    out.push_str(" amb");
                }
            }
        }
        let stored: Vec<String> = Proc::ALL
            .iter()
            .filter_map(|&q| s.stored[q.index()][p].map(|ra| format!("{}@{ra}", q.name())))
            .collect();
        let _ = write!(out, ", stored by [{}]", stored.join(", "));
        let recorded: Vec<String> = s
            .redis
            .summary
            .iter()
            .filter(|e| e.0 as usize == p)
            .map(|e| format!("{}@{}", e.1.name(), e.2))
            .collect();
        let _ = write!(out, ", summary [{}];", recorded.join(", "));
    }
    for w in 0..workers.min(NW) {
        let tasks = s.workers[w].tasks.iter().flatten().count();
        let _ = write!(
            out,
            " worker {}: {} task(s){};",
            worker_name(w),
            tasks,
            if s.workers[w].frozen { " frozen" } else { "" }
        );
    }
    out.push('\n');
    out
}

/// Checks a seeded fault: some safety property must fail. Returns the violated property
/// and the printed schedule.
pub fn expect_violation(name: &str, model: &Protocol) -> (&'static str, String) {
    let result = safety(model, 1, true);
    println!(
        "{name}: {} states ({} generated), depth {}, {:.1?}",
        result.unique, result.generated, result.depth, result.elapsed
    );
    let violated = protocol::SAFETY
        .iter()
        .find(|p| result.found.contains_key(*p))
        .copied();
    let Some(property) = violated else {
        panic!(
            "{name}: the checker found no violation in {} states",
            result.unique
        );
    };
    let trace = render(model, &result.found[property]);
    if std::env::var("MODEL_RAW").is_ok() {
        println!("{:?}", result.found[property]);
    }
    println!("violated: {property}\n{trace}");
    (property, trace)
}
