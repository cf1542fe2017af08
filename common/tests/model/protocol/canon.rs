//! The state's initial value, when time may pass, and its canonical form: times, attempt
//! numbers and entry ids renamed (order and small distances kept), workers and payments in
//! their least order (see the module documentation of [`super`]).

use super::{Att, Config, Durability, Gen, State, Step, Task, Time, Worker, LONG_AGO, NW};
use crate::scripts::{self, Redis, NP};

impl State {
    pub fn initial(cfg: &Config) -> State {
        let mut s = State {
            now: cfg.epoch(),
            redis: Redis::default(),
            durable: None,
            workers: [Worker::default(); NW],
            posts: Vec::new(),
            stored: [[None; NP]; 2],
            earlier: [None; NP],
            accepted: [false; NP],
            budget: cfg.budget,
            purge: None,
            purged: [false; NP],
            accepted_in_purge: [false; NP],
            full: false,
            cleanup: None,
        };
        s.earlier[0] = cfg.earlier_use;
        if !cfg.accept_steps {
            for p in 0..cfg.payments {
                scripts::accept(&mut s.redis, p, 1, cfg.first(0));
                s.accepted[p] = true;
                // accept.lua's `at`, kept where seeded fault (o) may read it.
                if let Some(h) = s.redis.status[p].as_mut().filter(|_| cfg.clocks()) {
                    h.at = Some(s.now);
                }
            }
        }
        if cfg.durability == Durability::EverySec {
            s.durable = Some(s.redis.clone());
        }
        s
    }

    /// Whether a task has a step it can take now (not waiting for an answer or for time).
    pub(super) fn can_step(&self, cfg: &Config, t: &Task) -> bool {
        match t.step {
            // Redis refuses begin.lua while memory is full: the task waits.
            Step::Begin => !self.full,
            Step::Send { .. } | Step::Fail { .. } => true,
            Step::AwaitPost { sent, reply, .. } => reply.is_some() || self.now >= sent + cfg.t,
            Step::Resolve { safe, .. } => self.absence_would_count(cfg, safe),
            Step::AwaitLookup { answer, .. } => answer.is_some(),
        }
    }

    /// Whether a 404 asked now would prove absence (the worker's rule).
    pub(super) fn absence_would_count(&self, cfg: &Config, safe: Option<Time>) -> bool {
        if cfg.strict_safe {
            Some(self.now) > safe
        } else {
            Some(self.now) >= safe
        }
    }

    /// Time may pass unless a processor or a lookup would miss its bound (or, with
    /// `prompt_workers`, a worker that is not frozen has a step to take).
    pub(super) fn tick_allowed(&self, cfg: &Config) -> bool {
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

    pub(super) fn for_each_redis(&mut self, f: &mut dyn FnMut(&mut Redis)) {
        f(&mut self.redis);
        if let Some(d) = self.durable.as_mut() {
            f(d);
        }
    }

    pub(super) fn for_each_time(&mut self, f: &mut dyn FnMut(&mut Time)) {
        f(&mut self.now);
        self.for_each_redis(&mut |r| {
            for h in r.status.iter_mut().flatten() {
                if let Some(t) = h.safe.as_mut() {
                    f(t);
                }
                if let Some(t) = h.safe0.as_mut() {
                    f(t);
                }
                if let Some(t) = h.rq0.as_mut() {
                    f(t);
                }
                if let Some(t) = h.at.as_mut() {
                    f(t);
                }
            }
            for e in r.stream.iter_mut().chain(r.orphans.iter_mut()) {
                if let Some((_, t)) = e.pending.as_mut() {
                    f(t);
                }
                if let Some(t) = e.at.as_mut() {
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
            f(&mut post.requested);
            f(&mut post.deadline);
        }
        for t in self.stored.iter_mut().flatten().flatten() {
            f(t);
        }
    }

    pub(super) fn for_each_att(&mut self, p: usize, f: &mut dyn FnMut(&mut Att)) {
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

    pub(super) fn for_each_gen(&mut self, p: usize, f: &mut dyn FnMut(&mut Gen)) {
        self.for_each_redis(&mut |r| {
            if let Some(h) = r.status[p].as_mut() {
                f(&mut h.sid);
            }
            for e in r.stream.iter_mut().filter(|e| e.payment as usize == p) {
                f(&mut e.id);
            }
            for e in r.orphans.iter_mut().filter(|e| e.payment as usize == p) {
                f(&mut e.id);
            }
        });
        if let Some(last) = self.purge.as_mut().and_then(|run| run.last.as_mut()) {
            f(&mut last[p]);
        }
        for w in self.workers.iter_mut() {
            if let Some(t) = w.tasks[p].as_mut() {
                f(&mut t.entry);
            }
        }
    }

    /// Forgets what cannot matter any more and sorts; with `normalize`, also renames times,
    /// attempt numbers and entry ids (order kept; see the module documentation).
    pub(super) fn canonicalize(&mut self, cfg: &Config, normalize: bool) {
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
        // An entry's acceptance time only matters to the consumer that reads it first; `rq0`
        // only where requestedAt is modelled apart from the send time.
        let clocks = cfg.clocks();
        self.for_each_redis(&mut |r| {
            for h in r.status.iter_mut().flatten() {
                if !clocks {
                    h.rq0 = None;
                }
            }
            for e in r.stream.iter_mut().chain(r.orphans.iter_mut()) {
                if e.pending.is_some() {
                    e.at = None;
                }
            }
            for e in r.orphans.iter_mut() {
                e.at = None;
            }
        });
        if normalize {
            let gap = cfg.widest_gap();
            let mut times = Vec::new();
            self.for_each_time(&mut |t| times.push(*t));
            // The earlier payment's requestedAt stays before everything (left out of the
            // map, it maps to itself); the rest starts at the epoch, above it.
            if cfg.earlier_use.is_some() {
                times.retain(|&t| t != LONG_AGO);
            }
            let map = compress(times, u32::from(cfg.epoch()), gap);
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
            // Workers whose clocks differ are not alike.
            let swap_w = cfg.workers == 2 && cfg.skew[0] == cfg.skew[1];
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

    pub(super) fn sort(&mut self) {
        self.posts.sort();
        self.for_each_redis(&mut |r| {
            r.stream.sort();
            r.orphans.sort();
            r.summary.sort();
        });
    }

    pub(super) fn swap_workers(&mut self) {
        self.workers.swap(0, 1);
        if let Some((w, found)) = self.cleanup.as_mut() {
            *w = 1 - *w;
            *found = ((*found & 1) << 1) | ((*found >> 1) & 1);
        }
        self.for_each_redis(&mut |r| {
            r.deleted.swap(0, 1);
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

    pub(super) fn swap_payments(&mut self) {
        self.for_each_redis(&mut |r| {
            r.status.swap(0, 1);
            r.dead.swap(0, 1);
            for e in r.stream.iter_mut().chain(r.orphans.iter_mut()) {
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
        self.earlier.swap(0, 1);
        self.accepted.swap(0, 1);
        self.purged.swap(0, 1);
        self.accepted_in_purge.swap(0, 1);
        if let Some(run) = self.purge.as_mut() {
            if let Some(last) = run.last.as_mut() {
                last.swap(0, 1);
            }
            if let Some(d) = run.dead_before.as_mut() {
                d.swap(0, 1);
            }
            run.listed.swap(0, 1);
            run.swept.swap(0, 1);
        }
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
