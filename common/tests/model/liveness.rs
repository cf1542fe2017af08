//! "Eventually", checked the way it can be checked exhaustively: from every reachable state,
//! a finished state is reachable by steps that are not faults. stateright's `eventually`
//! only looks at paths that end (our clock can always tick, so none does) and would pass
//! vacuously; this explores the same [`Model`] itself, keeps the graph (64-bit fingerprints,
//! like stateright), and walks it backwards from the finished states.

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::{Duration, Instant};

use stateright::Model;

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
    /// The shortest schedule to a state from which no finished state can be reached
    /// without faults.
    pub stuck: Option<Vec<A>>,
}

pub fn check<M>(
    model: &M,
    is_fault: impl Fn(&M::Action) -> bool,
    finished: impl Fn(&M::State) -> bool,
) -> Liveness<M::Action>
where
    M: Model,
    M::State: Hash,
    M::Action: Clone,
{
    let start = Instant::now();
    let mut index: HashMap<u64, u32, BuildHasherDefault<Identity>> = HashMap::default();
    // For each state: the state it was first reached from, and how.
    let mut parent: Vec<(u32, Option<M::Action>)> = Vec::new();
    let mut good: Vec<bool> = Vec::new();
    let mut frontier: VecDeque<(u32, M::State)> = VecDeque::new();
    // Steps that are not faults, as (from, to).
    let mut from: Vec<u32> = Vec::new();
    let mut to: Vec<u32> = Vec::new();
    for s in model.init_states() {
        if let Entry::Vacant(v) = index.entry(fingerprint(&s)) {
            let i = parent.len() as u32;
            v.insert(i);
            parent.push((i, None));
            good.push(finished(&s));
            frontier.push_back((i, s));
        }
    }
    let mut actions = Vec::new();
    while let Some((i, s)) = frontier.pop_front() {
        model.actions(&s, &mut actions);
        for a in actions.drain(..) {
            let Some(n) = model.next_state(&s, a.clone()) else {
                continue;
            };
            let j = match index.entry(fingerprint(&n)) {
                Entry::Occupied(o) => *o.get(),
                Entry::Vacant(v) => {
                    let j = parent.len() as u32;
                    v.insert(j);
                    parent.push((i, Some(a.clone())));
                    good.push(finished(&n));
                    frontier.push_back((j, n));
                    j
                }
            };
            if !is_fault(&a) {
                from.push(i);
                to.push(j);
            }
        }
    }
    drop(index);
    let n = parent.len();
    // Reverse adjacency (compressed rows): who steps into each state.
    let mut offsets = vec![0u32; n + 1];
    for &t in &to {
        offsets[t as usize + 1] += 1;
    }
    for k in 0..n {
        offsets[k + 1] += offsets[k];
    }
    let mut fill = offsets.clone();
    let mut preds = vec![0u32; from.len()];
    for (&f, &t) in from.iter().zip(&to) {
        preds[fill[t as usize] as usize] = f;
        fill[t as usize] += 1;
    }
    let edges = from.len();
    drop((from, to, fill));
    let mut can_finish = good;
    let mut queue: Vec<u32> = (0..n as u32).filter(|&k| can_finish[k as usize]).collect();
    while let Some(k) = queue.pop() {
        let k = k as usize;
        for &p in &preds[offsets[k] as usize..offsets[k + 1] as usize] {
            if !can_finish[p as usize] {
                can_finish[p as usize] = true;
                queue.push(p);
            }
        }
    }
    // States are numbered in BFS order: the first stuck one is a nearest one.
    let stuck = can_finish.iter().position(|&ok| !ok).map(|mut k| {
        let mut path = Vec::new();
        while let (p, Some(a)) = &parent[k] {
            path.push(a.clone());
            k = *p as usize;
        }
        path.reverse();
        path
    });
    Liveness {
        states: n,
        edges,
        elapsed: start.elapsed(),
        stuck,
    }
}
