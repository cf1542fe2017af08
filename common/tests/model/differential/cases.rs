//! The cases of the differential test: a model state of one payment (often with a second
//! beside it) and a script's input, drawn from a fixed xorshift sequence per script. States
//! are broad (any `st`, pin, mark, bounds before, at or after [`NOW`], 422 mark, attempt,
//! entries absent, undelivered or pending on either consumer since any earlier time, dead
//! letters, the summary event of a processed payment; for the purge and the consumer cleanup
//! also orphans, deleted consumers and the purge flag); inputs lean towards the state (the
//! pinned processor, the latest attempt, an entry and the consumer it is pending on, a lookup
//! asked just before, at or after `safe`, where the stream ended when a purge started just
//! before or at the status' entry), so that every branch of each script is reached.

use crate::protocol::{Att, Gen, Proc, Time};
use crate::scripts::{Entry, Redis, Settle, St, Status, FOREIGN, NP};

/// The model time every case runs at; generated times lie in `0..=2 * NOW`.
pub const NOW: Time = 4;
/// Entries per payment a state may hold (`1..=GENS`).
const GENS: Gen = 3;
pub const ALL_ST: [St; 4] = [St::Queued, St::Processing, St::Processed, St::Failed];

/// One script call and its inputs; the payment is payment 0 unless the input names others.
#[derive(Clone, Debug)]
pub enum Input {
    /// `first`: the first-attempt bound in ticks (0 = none).
    Accept {
        first: Time,
    },
    Begin {
        wanted: Proc,
        consumer: u8,
        entry: Gen,
        bound: Time,
    },
    Unanswered {
        proc: Proc,
        att: Att,
        grace: Time,
        held: bool,
        entry: Gen,
    },
    Settle {
        proc: Proc,
        att: Att,
        how: Settle,
        entry: Gen,
    },
    Record {
        proc: Proc,
        requested_at: Time,
        entry: Option<Gen>,
    },
    Fail {
        entry: Option<Gen>,
        keep: Option<(u8, Att)>,
    },
    Redrive,
    Touch {
        consumer: u8,
        entries: Vec<(usize, Gen)>,
    },
    /// The whole purge: `purge_start` on the state without what is newer than `last` (per
    /// payment, the entries after it) and than `dead_before` (per payment, the dead letters
    /// after the first so many), then that written, then `purge_sweep`, and `purge_finish`
    /// when `finish` (else the state is compared while the purge runs). `lose`: the flag
    /// changes under the purge (`None`: it expired; `Some(FOREIGN)`: another purge took it)
    /// before the sweep (`false`) or before the finish (`true`).
    Purge {
        last: [Gen; NP],
        dead_before: [u8; NP],
        finish: bool,
        lose: Option<(bool, Option<u8>)>,
    },
    DropConsumers {
        me: u8,
    },
}

impl Input {
    /// Whether entry `g` of payment `p` is written after the purge started.
    pub fn late(&self, p: usize, g: Gen) -> bool {
        matches!(self, Input::Purge { last, .. } if g > last[p])
    }

    /// How many of payment `p`'s `dead` letters are written before the purge started.
    pub fn early_dead(&self, p: usize, dead: u8) -> u8 {
        match self {
            Input::Purge { dead_before, .. } => dead_before[p],
            _ => dead,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Case {
    pub state: Redis,
    pub input: Input,
    /// Which spelling the setup uses where two mean the same to the scripts: per payment,
    /// bit 0 `amb = '0'` (else missing), bit 1 `safe = '0'`, bit 2 `safe0 = '0'`.
    pub style: u32,
}

/// xorshift64*: a fixed sequence per seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn small(&mut self, n: u64) -> u8 {
        self.below(n) as u8
    }

    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }

    fn time(&mut self) -> Time {
        self.below(2 * u64::from(NOW) + 1) as Time
    }

    fn some_time(&mut self) -> Option<Time> {
        self.chance(2, 3).then(|| self.time())
    }

    fn proc(&mut self) -> Proc {
        self.pick(&Proc::ALL)
    }

    fn some_proc(&mut self, num: u64, den: u64) -> Option<Proc> {
        self.chance(num, den).then(|| self.proc())
    }

    /// Usually `likely` (when there is one), else any of `0..n`.
    fn near(&mut self, likely: Option<u8>, n: u64) -> u8 {
        match likely {
            Some(v) if self.chance(3, 4) => v,
            _ => self.small(n),
        }
    }
}

/// A generated state: payment 0 present with probability `present`/8 with a status among
/// `sts`; with `second`/8, payment 1 too; up to `dead` dead letters each.
fn state(rng: &mut Rng, present: u64, second: u64, sts: &[St], dead: u64) -> Redis {
    let mut r = Redis::default();
    for p in 0..NP {
        if p == 1 && !rng.chance(second, 8) {
            continue;
        }
        if rng.chance(present, 8) {
            let h = Status {
                st: rng.pick(sts),
                proc: rng.some_proc(2, 3),
                amb: rng.chance(1, 2),
                safe: rng.some_time(),
                safe0: rng.some_time().filter(|_| rng.chance(1, 2)),
                held: rng.some_proc(1, 3),
                att: rng.small(4),
                sid: 1 + rng.small(u64::from(GENS)),
                rq0: None,
                at: None,
            };
            if h.st == St::Processed && rng.chance(3, 4) {
                let proc = h.proc.unwrap_or_else(|| rng.proc());
                r.summary.push((p as u8, proc, rng.time()));
            }
            r.status[p] = Some(h);
        }
        for id in 1..=GENS {
            if rng.chance(1, 2) {
                let pending = match rng.below(3) {
                    0 => None,
                    c => Some((c as u8 - 1, rng.below(u64::from(NOW) + 1) as Time)),
                };
                r.stream.push(Entry {
                    payment: p as u8,
                    id,
                    pending,
                    at: None,
                });
            }
        }
        r.dead[p] = if rng.chance(1, 4) {
            1 + rng.small(dead.max(1))
        } else {
            0
        };
    }
    r.stream.sort();
    r.summary.sort();
    r
}

/// A consumer and an entry of payment `p`: usually an entry pending there and its owner.
fn owned(rng: &mut Rng, r: &Redis, p: usize) -> (u8, Gen) {
    let pending: Vec<(u8, Gen)> = r
        .stream
        .iter()
        .filter(|e| usize::from(e.payment) == p)
        .filter_map(|e| e.pending.map(|(c, _)| (c, e.id)))
        .collect();
    if !pending.is_empty() && rng.chance(2, 3) {
        rng.pick(&pending)
    } else {
        (rng.small(2), 1 + rng.small(u64::from(GENS)))
    }
}

/// Makes orphans of undelivered entries and deletes consumers, as a consumer group can hold
/// them: its last-delivered id splits the stream (in the order of the real ids, where
/// `late` entries come last) into delivered entries, pending or orphans, and undelivered
/// ones after them; a deleted consumer holds no pending entry. Sets the purge flag at times.
fn group(rng: &mut Rng, r: &mut Redis, late: impl Fn(usize, Gen) -> bool) {
    let key = |e: &Entry| (late(usize::from(e.payment), e.id), e.payment, e.id);
    let mut order: Vec<Entry> = r.stream.clone();
    order.sort_by_key(key);
    let cut = order
        .get(rng.below(order.len() as u64 + 1) as usize)
        .map(key);
    let (orphans, stream): (Vec<Entry>, Vec<Entry>) = r
        .stream
        .iter()
        .partition(|e| e.pending.is_none() && cut.is_none_or(|cut| key(e) < cut));
    (r.stream, r.orphans) = (stream, orphans);
    for c in 0..NP {
        r.deleted[c] = !r.has_pending(c as u8) && rng.chance(1, 3);
    }
    r.purging = rng.chance(1, 4).then_some(FOREIGN);
}

fn case(rng: &mut Rng, state: Redis, input: Input) -> Case {
    Case {
        state,
        input,
        style: rng.next() as u32,
    }
}

pub fn gen_accept(rng: &mut Rng) -> Case {
    let r = state(rng, 4, 2, &ALL_ST, 1);
    let first = if rng.chance(1, 2) {
        1 + Time::from(rng.small(4))
    } else {
        0
    };
    case(rng, r, Input::Accept { first })
}

pub fn gen_begin(rng: &mut Rng) -> Case {
    let sts = [
        St::Queued,
        St::Processing,
        St::Processing,
        St::Processed,
        St::Failed,
    ];
    let mut r = state(rng, 7, 2, &sts, 1);
    // An earlier attempt's requestedAt, before, at or after the one this attempt sends.
    if let Some(h) = r.status[0].as_mut() {
        h.rq0 = rng.some_time();
    }
    let h = r.status[0];
    let (consumer, entry) = owned(rng, &r, 0);
    let input = Input::Begin {
        wanted: match h.and_then(|h| h.proc) {
            Some(p) if rng.chance(1, 2) => p,
            _ => rng.proc(),
        },
        consumer,
        entry,
        bound: 1 + rng.below(4) as Time,
    };
    case(rng, r, input)
}

/// The processor and attempt of an answer for payment 0: usually its pinned and latest.
fn answer(rng: &mut Rng, r: &Redis) -> (Proc, Att) {
    let h = r.status[0];
    let proc = match h.and_then(|h| h.proc) {
        Some(p) if rng.chance(3, 4) => p,
        _ => rng.proc(),
    };
    (proc, rng.near(h.map(|h| h.att), 5))
}

/// The caller's stream entry: mostly the payment's, else another (a task of an entry a
/// purge took, its id accepted again since).
fn callers_entry(rng: &mut Rng, r: &Redis) -> Gen {
    let sid = r.status[0].map(|h| h.sid);
    match sid {
        Some(sid) if rng.chance(7, 8) => sid,
        _ => rng.near(sid, u64::from(GENS) + 1).max(1),
    }
}

pub fn gen_unanswered(rng: &mut Rng) -> Case {
    let r = state(rng, 7, 2, &ALL_ST, 1);
    let (proc, att) = answer(rng, &r);
    let input = Input::Unanswered {
        proc,
        att,
        grace: rng.below(5) as Time,
        held: rng.chance(1, 2),
        entry: callers_entry(rng, &r),
    };
    case(rng, r, input)
}

pub fn gen_settle(rng: &mut Rng) -> Case {
    let r = state(rng, 7, 2, &ALL_ST, 1);
    let (proc, att) = answer(rng, &r);
    let how = if rng.chance(1, 3) {
        Settle::Failed
    } else {
        // Often just before, at or just after `safe`.
        let asked = match r.status[0].and_then(|h| h.safe) {
            Some(safe) if rng.chance(1, 2) => (safe + rng.below(3) as Time).saturating_sub(1),
            _ => rng.time(),
        };
        Settle::Absent { asked }
    };
    let entry = callers_entry(rng, &r);
    case(
        rng,
        r,
        Input::Settle {
            proc,
            att,
            how,
            entry,
        },
    )
}

pub fn gen_record(rng: &mut Rng) -> Case {
    let mut r = state(rng, 7, 2, &ALL_ST, 1);
    r.purging = rng.chance(1, 8).then_some(FOREIGN);
    let sid = r.status[0].map(|h| h.sid);
    let entry = rng
        .chance(3, 4)
        .then(|| rng.near(sid, u64::from(GENS) + 1).max(1));
    let input = Input::Record {
        proc: rng.proc(),
        requested_at: rng.time(),
        entry,
    };
    case(rng, r, input)
}

pub fn gen_fail(rng: &mut Rng) -> Case {
    let r = state(rng, 7, 2, &ALL_ST, 1);
    let input = if rng.chance(1, 2) {
        let (c, entry) = owned(rng, &r, 0);
        let att = rng.near(r.status[0].map(|h| h.att), 5);
        Input::Fail {
            entry: Some(entry),
            keep: Some((c, att)),
        }
    } else {
        let sid = r.status[0].map(|h| h.sid);
        Input::Fail {
            entry: rng
                .chance(4, 5)
                .then(|| rng.near(sid, u64::from(GENS) + 1).max(1)),
            keep: None,
        }
    };
    case(rng, r, input)
}

pub fn gen_redrive(rng: &mut Rng) -> Case {
    let sts = [
        St::Failed,
        St::Failed,
        St::Queued,
        St::Processing,
        St::Processed,
    ];
    let mut r = state(rng, 7, 6, &sts, 2);
    for d in r.dead.iter_mut() {
        *d = rng.small(3);
    }
    case(rng, r, Input::Redrive)
}

pub fn gen_touch(rng: &mut Rng) -> Case {
    let r = state(rng, 7, 4, &ALL_ST, 1);
    let consumer = rng.small(2);
    let entries = (0..rng.below(4))
        .map(|_| {
            let p = rng.below(NP as u64) as usize;
            // Usually a pending entry, of this consumer or another.
            (p, owned(rng, &r, p).1)
        })
        .collect();
    case(rng, r, Input::Touch { consumer, entries })
}

pub fn gen_purge(rng: &mut Rng) -> Case {
    purge_case(rng, false)
}

/// A purge case that always runs `purge_finish`, on a flag the purge took (none preset),
/// kept or lost before the finish.
pub fn gen_purge_finish(rng: &mut Rng) -> Case {
    purge_case(rng, true)
}

fn purge_case(rng: &mut Rng, finishing: bool) -> Case {
    let mut r = state(rng, 7, 5, &ALL_ST, 2);
    // Often the status' own entry on either side of where the stream ended.
    let last = std::array::from_fn(|p| match r.status[p] {
        Some(h) if rng.chance(2, 3) => h.sid - rng.small(2),
        _ => rng.small(u64::from(GENS) + 1),
    });
    let dead_before = std::array::from_fn(|p| rng.small(u64::from(r.dead[p]) + 1));
    let lose = rng.chance(1, 3).then(|| {
        let at_finish = finishing || rng.chance(1, 2);
        (at_finish, rng.chance(1, 2).then_some(FOREIGN))
    });
    let input = Input::Purge {
        last,
        dead_before,
        finish: finishing || rng.chance(1, 2),
        lose,
    };
    group(rng, &mut r, |p, g| input.late(p, g));
    if finishing {
        r.purging = None;
    }
    case(rng, r, input)
}

pub fn gen_drop_consumers(rng: &mut Rng) -> Case {
    let mut r = state(rng, 6, 4, &ALL_ST, 1);
    // Often a consumer with nothing pending: its entries undelivered.
    if rng.chance(1, 2) {
        let c = rng.small(NP as u64);
        for e in r.stream.iter_mut() {
            if e.pending.is_some_and(|(o, _)| o == c) {
                e.pending = None;
            }
        }
    }
    group(rng, &mut r, |_, _| false);
    let me = rng.small(NP as u64 + 1);
    case(rng, r, Input::DropConsumers { me })
}
