//! "Eventually", checked the way it can be checked exhaustively. stateright's `eventually`
//! only looks at paths that end (our clock can always tick, so none does) and would pass
//! vacuously; this explores the same [`Model`] itself, keeps the graph of its steps
//! (64-bit fingerprints, like stateright) and answers three questions about it. Faults are
//! left out of every schedule below: each question is about what happens once they stop.
//!
//! 1. **A finished state stays reachable**: from every reachable state, a finished state is
//!    reachable by steps that are not faults (walking the graph backwards from the finished
//!    states).
//!
//! 2. **Bounded progress (no livelock)**: between two ticks of the clock, every fault-free
//!    schedule from an unfinished state takes a bounded number of steps, unless it waits on
//!    a step that is bound to come. Precisely: in the graph of fault-free steps between
//!    unfinished states, leaving out ticks and steps that change nothing, every cycle is
//!    *unfair*: some step of a fairness class (the operator carrying on a purge he started,
//!    memory freed from outside, a frozen worker resuming) is enabled in every state of the
//!    cycle and never taken on it. Such a cycle is waiting, not a livelock: the operator's
//!    next step ends it. The bound printed is the longest run of steps without a tick from a
//!    state no cycle reaches.
//!
//!    Why time is left out: the processors and the workers' speed are the environment's. A
//!    processor that never answers in time, or a worker slower than its send window,
//!    repeats a task's loop forever, and the protocol lets it by design (an attempt of
//!    unknown outcome does not count towards `max_attempts`; the payment waits in Redis
//!    until the processor answers). Every such loop needs time to pass: a timeout, a send
//!    window, a `safe` to wait for. A loop that needs no tick is the protocol repeating
//!    itself on its own: a definite failure answered within the timeout is counted
//!    (`max_attempts`), so a processor answering 500 forever ends in a dead letter, and a
//!    worker that did not count it would loop without a tick, which this check finds
//!    while check 1 passes (a processor may store the payment at any turn of the loop).
//!
//! 3. **In-flight work reaches Redis at a full memory**: from every reachable state with
//!    memory full, a state where the work in flight has reached Redis (`settled`) is
//!    reachable by fault-free steps without help from outside (memory freed by what the
//!    model leaves out): memory freed by a deletion the protocol makes (a record, a dead
//!    letter), or every task back before begin with every payment a processor stored
//!    recorded. What is left then waits for begin, which Redis refuses until memory is
//!    freed, by design (nothing is sent that could not be recorded).

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::{Duration, Instant};

use stateright::Model;

/// What a step is to the liveness checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Left out of every schedule.
    Fault,
    /// The clock.
    Tick,
    /// Help from outside the model (left out of check 3).
    Help,
    Step,
}

/// A model the three checks can ask about its steps and states.
pub trait Live: Model {
    fn kind(&self, action: &Self::Action) -> Kind;
    /// The fairness classes a step belongs to, one bit each (at most 6).
    fn fairness(&self, action: &Self::Action) -> u8;
    fn finished(&self, state: &Self::State) -> bool;
    /// States from which a `settled` one must be reachable without help (check 3).
    fn must_settle(&self, state: &Self::State) -> bool;
    fn settled(&self, state: &Self::State) -> bool;
}

/// The fingerprints are hashes already.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

fn fingerprint<T: Hash>(value: &T) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

pub struct Liveness<A> {
    pub states: usize,
    pub edges: usize,
    pub elapsed: Duration,
    /// Check 1: the shortest schedule to a state from which no finished state can be
    /// reached without faults.
    pub stuck: Option<Vec<A>>,
    /// Check 2: a schedule to a livelock, and the loop that repeats there.
    pub livelock: Option<(Vec<A>, Vec<A>)>,
    /// Check 2: the most steps without a tick from an unfinished state no loop reaches.
    pub bound: u32,
    /// Check 2: loops that wait on a fair step (a purge under way, memory to be freed).
    pub waiting_loops: usize,
    /// Check 3: a schedule to a full-memory state from which nothing in flight reaches
    /// Redis without help.
    pub wedged: Option<Vec<A>>,
}

const FINISHED: u8 = 1;
const MUST_SETTLE: u8 = 2;
const SETTLED: u8 = 4;

const TICK: u8 = 1;
const HELP: u8 = 2;
/// Edge labels keep the step's fairness classes above these two bits.
const FAIR_SHIFT: u8 = 2;

/// Compressed rows: `offsets[k]..offsets[k + 1]` index `targets` (and `labels`).
struct Rows {
    offsets: Vec<u32>,
    targets: Vec<u32>,
    labels: Vec<u8>,
}

impl Rows {
    fn new(n: usize, edges: impl Iterator<Item = (u32, u32, u8)> + Clone) -> Rows {
        let mut offsets = vec![0u32; n + 1];
        for (f, _, _) in edges.clone() {
            offsets[f as usize + 1] += 1;
        }
        for k in 0..n {
            offsets[k + 1] += offsets[k];
        }
        let mut fill = offsets.clone();
        let m = offsets[n] as usize;
        let mut targets = vec![0u32; m];
        let mut labels = vec![0u8; m];
        for (f, t, l) in edges {
            let at = fill[f as usize] as usize;
            targets[at] = t;
            labels[at] = l;
            fill[f as usize] += 1;
        }
        Rows {
            offsets,
            targets,
            labels,
        }
    }

    fn of(&self, k: u32) -> impl Iterator<Item = (u32, u8)> + Clone + '_ {
        let range = self.offsets[k as usize] as usize..self.offsets[k as usize + 1] as usize;
        self.targets[range.clone()]
            .iter()
            .copied()
            .zip(self.labels[range].iter().copied())
    }
}

pub fn check<M>(model: &M) -> Liveness<M::Action>
where
    M: Live,
    M::State: Hash,
    M::Action: Clone,
{
    let start = Instant::now();
    let mut index: HashMap<u64, u32, BuildHasherDefault<Identity>> = HashMap::default();
    // For each state: the state it was first reached from, and how; its fingerprint, flags
    // and the fairness classes enabled in it.
    let mut parent: Vec<(u32, Option<M::Action>)> = Vec::new();
    let mut prints: Vec<u64> = Vec::new();
    let mut flags: Vec<u8> = Vec::new();
    let mut enabled: Vec<u8> = Vec::new();
    let mut frontier: VecDeque<(u32, M::State)> = VecDeque::new();
    // Steps that are not faults and change the state: from, to, label.
    let (mut from, mut to, mut labels): (Vec<u32>, Vec<u32>, Vec<u8>) = Default::default();
    let flags_of = |s: &M::State| {
        (if model.finished(s) { FINISHED } else { 0 })
            | (if model.must_settle(s) { MUST_SETTLE } else { 0 })
            | (if model.settled(s) { SETTLED } else { 0 })
    };
    for s in model.init_states() {
        let fp = fingerprint(&s);
        if let Entry::Vacant(v) = index.entry(fp) {
            let i = parent.len() as u32;
            v.insert(i);
            parent.push((i, None));
            prints.push(fp);
            flags.push(flags_of(&s));
            enabled.push(0);
            frontier.push_back((i, s));
        }
    }
    let mut actions = Vec::new();
    while let Some((i, s)) = frontier.pop_front() {
        model.actions(&s, &mut actions);
        let mut fair = 0;
        for a in actions.drain(..) {
            let Some(n) = model.next_state(&s, a.clone()) else {
                continue;
            };
            fair |= model.fairness(&a);
            let fp = fingerprint(&n);
            let j = match index.entry(fp) {
                Entry::Occupied(o) => *o.get(),
                Entry::Vacant(v) => {
                    let j = parent.len() as u32;
                    v.insert(j);
                    parent.push((i, Some(a.clone())));
                    prints.push(fp);
                    flags.push(flags_of(&n));
                    enabled.push(0);
                    frontier.push_back((j, n));
                    j
                }
            };
            let kind = model.kind(&a);
            if kind != Kind::Fault && i != j {
                let label = match kind {
                    Kind::Tick => TICK,
                    Kind::Help => HELP,
                    _ => 0,
                } | (model.fairness(&a) << FAIR_SHIFT);
                from.push(i);
                to.push(j);
                labels.push(label);
            }
        }
        enabled[i as usize] = fair;
    }
    drop(index);
    let n = parent.len();
    let path_to = |mut k: usize| {
        let mut path = Vec::new();
        while let (p, Some(a)) = &parent[k] {
            path.push(a.clone());
            k = *p as usize;
        }
        path.reverse();
        path
    };

    // Checks 1 and 3: backwards from the target states. States are numbered in BFS order,
    // so the first state that cannot reach a target is a nearest one.
    let edge_count = from.len();
    let back = Rows::new(n, (0..edge_count).map(|e| (to[e], from[e], labels[e])));
    drop((from, to, labels));
    let reach_back = |target: u8, skip: u8| {
        let mut ok: Vec<bool> = flags.iter().map(|f| f & target != 0).collect();
        let mut queue: Vec<u32> = (0..n as u32).filter(|&k| ok[k as usize]).collect();
        while let Some(k) = queue.pop() {
            for (p, label) in back.of(k) {
                if label & skip == 0 && !ok[p as usize] {
                    ok[p as usize] = true;
                    queue.push(p);
                }
            }
        }
        ok
    };
    let can_finish = reach_back(FINISHED, 0);
    let stuck = can_finish.iter().position(|&ok| !ok).map(path_to);
    drop(can_finish);
    let wedged = if flags.iter().any(|f| f & MUST_SETTLE != 0) {
        let can_settle = reach_back(SETTLED, HELP);
        (0..n)
            .find(|&k| flags[k] & MUST_SETTLE != 0 && !can_settle[k])
            .map(path_to)
    } else {
        None
    };

    // Check 2: the steps without a tick between unfinished states.
    let unfinished = |k: u32| flags[k as usize] & FINISHED == 0;
    let forward = Rows::new(
        n,
        (0..n as u32)
            .flat_map(|t| back.of(t).map(move |(f, l)| (f, t, l)))
            .filter(|&(f, t, l)| l & TICK == 0 && unfinished(f) && unfinished(t)),
    );
    drop(back);
    // Kahn's order: what it cannot order lies on a loop or after one.
    let mut indegree = vec![0u32; n];
    for &t in &forward.targets {
        indegree[t as usize] += 1;
    }
    let mut dist = vec![0u32; n];
    let mut queue: Vec<u32> = (0..n as u32)
        .filter(|&k| indegree[k as usize] == 0)
        .collect();
    let mut bound = 0;
    while let Some(k) = queue.pop() {
        bound = bound.max(dist[k as usize]);
        for (t, _) in forward.of(k) {
            let t = t as usize;
            dist[t] = dist[t].max(dist[k as usize] + 1);
            indegree[t] -= 1;
            if indegree[t] == 0 {
                queue.push(t as u32);
            }
        }
    }
    drop(dist);
    let left: Vec<u32> = (0..n as u32)
        .filter(|&k| indegree[k as usize] > 0)
        .collect();
    drop(indegree);
    let mut waiting_loops = 0;
    let mut livelock_at: Option<(u32, Vec<u32>)> = None;
    for component in components(&forward, &left) {
        if component.len() < 2 {
            continue;
        }
        let inside = |k: u32| component.binary_search(&k).is_ok();
        let always = component
            .iter()
            .fold(u8::MAX, |m, &k| m & enabled[k as usize]);
        let taken = component.iter().fold(0, |m, &k| {
            forward
                .of(k)
                .filter(|&(t, _)| inside(t))
                .fold(m, |m, (_, l)| m | (l >> FAIR_SHIFT))
        });
        if always & !taken != 0 {
            waiting_loops += 1;
            continue;
        }
        let first = component[0];
        if livelock_at.as_ref().is_none_or(|(k, _)| first < *k) {
            livelock_at = Some((first, cycle(&forward, first, &inside)));
        }
    }
    let livelock = livelock_at.map(|(k, cycle)| {
        let prefix = path_to(k as usize);
        let steps = replay(model, &prefix, &prints, &cycle);
        (prefix, steps)
    });
    Liveness {
        states: n,
        edges: edge_count,
        elapsed: start.elapsed(),
        stuck,
        livelock,
        bound,
        waiting_loops,
        wedged,
    }
}

/// The strongly connected components of `rows` restricted to `nodes`, each sorted (Tarjan's
/// algorithm without recursion).
fn components(rows: &Rows, nodes: &[u32]) -> Vec<Vec<u32>> {
    const NONE: u32 = u32::MAX;
    let n = rows.offsets.len() - 1;
    let mut member = vec![false; n];
    for &k in nodes {
        member[k as usize] = true;
    }
    // Visit order and lowest reachable order of each node; whether it is on the stack.
    let mut order = vec![NONE; n];
    let mut low = vec![NONE; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<u32> = Vec::new();
    let mut out = Vec::new();
    let mut next = 0u32;
    for &root in nodes {
        if order[root as usize] != NONE {
            continue;
        }
        // (node, position in its row)
        let mut calls: Vec<(u32, u32)> = Vec::new();
        macro_rules! visit {
            ($k:expr) => {{
                let k: u32 = $k;
                order[k as usize] = next;
                low[k as usize] = next;
                next += 1;
                stack.push(k);
                on_stack[k as usize] = true;
                calls.push((k, rows.offsets[k as usize]));
            }};
        }
        visit!(root);
        while let Some(&(k, at)) = calls.last() {
            let ku = k as usize;
            if at < rows.offsets[ku + 1] {
                calls.last_mut().unwrap().1 += 1;
                let t = rows.targets[at as usize] as usize;
                if !member[t] {
                    continue;
                }
                if order[t] == NONE {
                    visit!(t as u32);
                } else if on_stack[t] {
                    low[ku] = low[ku].min(order[t]);
                }
            } else {
                calls.pop();
                if let Some(&(p, _)) = calls.last() {
                    low[p as usize] = low[p as usize].min(low[ku]);
                }
                if low[ku] == order[ku] {
                    let mut component = Vec::new();
                    loop {
                        let m = stack.pop().unwrap();
                        on_stack[m as usize] = false;
                        component.push(m);
                        if m == k {
                            break;
                        }
                    }
                    component.sort_unstable();
                    out.push(component);
                }
            }
        }
    }
    out
}

/// A shortest loop from `start` back to it inside a component: the states after `start`.
fn cycle(rows: &Rows, start: u32, inside: &dyn Fn(u32) -> bool) -> Vec<u32> {
    let mut from: HashMap<u32, u32> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(k) = queue.pop_front() {
        for (t, _) in rows.of(k) {
            if !inside(t) {
                continue;
            }
            if t == start {
                let mut path = vec![start];
                let mut at = k;
                while at != start {
                    path.push(at);
                    at = from[&at];
                }
                path.reverse();
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(v) = from.entry(t) {
                v.insert(k);
                queue.push_back(t);
            }
        }
    }
    Vec::new()
}

/// The steps that go through `states` (by fingerprint) from the end of `prefix`.
fn replay<M>(model: &M, prefix: &[M::Action], prints: &[u64], states: &[u32]) -> Vec<M::Action>
where
    M: Model,
    M::State: Hash,
    M::Action: Clone,
{
    let mut s = model.init_states().remove(0);
    for a in prefix {
        s = model.next_state(&s, a.clone()).unwrap();
    }
    let mut steps = Vec::new();
    let mut actions = Vec::new();
    for &k in states {
        model.actions(&s, &mut actions);
        let found = actions.drain(..).find_map(|a| {
            let n = model.next_state(&s, a.clone())?;
            (fingerprint(&n) == prints[k as usize]).then_some((a, n))
        });
        let Some((a, n)) = found else {
            break;
        };
        steps.push(a);
        s = n;
    }
    steps
}
