//! The processor's database: stored payments keyed by correlation id, and their totals.
//!
//! Before: a `POST /payments` that survived its delay and the failure flag
//! ([`handlers`](super::handlers)). After: `GET /payments/{id}`, the admin summary and
//! the test handle read it. The payments sit in shards by id, their totals in an index by
//! millisecond of `requestedAt`; std `Mutex`es, never held across an `.await`. A window's
//! totals read the milliseconds in it, not every payment: a soak stores millions, and a
//! linear scan under one lock, several times every 10 s, stalled the processor's `POST`s
//! longer and longer as the run went on; so did growing one map of millions at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use uuid::Uuid;

/// A payment the simulated processor accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPayment {
    /// The client's correlation id, the store's key.
    pub correlation_id: Uuid,
    /// The amount rounded to 2 decimals, in cents.
    pub amount_cents: i64,
    /// `requestedAt` in UTC milliseconds since the epoch: what the summary filters on.
    pub requested_at_ms: i64,
    /// `requestedAt` exactly as the client sent it (returned by `GET /payments/{id}`).
    pub requested_at: String,
}

/// Count and sum of the stored payments in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// How many payments.
    pub count: u64,
    /// Their amounts, in cents (`i128`: no sum of valid amounts can overflow it).
    pub cents: i128,
}

impl Totals {
    /// One payment's.
    fn of(payment: &StoredPayment) -> Self {
        Self {
            count: 1,
            cents: i128::from(payment.amount_cents),
        }
    }

    fn add(&mut self, other: Totals) {
        self.count += other.count;
        self.cents += other.cents;
    }
}

/// What [`Store::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The payment is now stored.
    Stored,
    /// A payment with this correlation id was already stored; nothing changed.
    Duplicate,
}

/// All stored payments of one simulated processor.
#[derive(Debug)]
pub struct Store {
    /// Payments by correlation id, in shards by id: growing one shard rehashes a
    /// fraction of the payments, so no `POST` waits for all of them to move.
    shards: Box<[Mutex<HashMap<Uuid, StoredPayment>>]>,
    /// Their totals; locked after a payment's shard, never before one.
    index: Mutex<Index>,
}

/// How many shards.
const SHARDS: usize = 64;

#[derive(Debug, Default)]
struct Index {
    /// Totals by millisecond of `requestedAt`.
    by_ms: BTreeMap<i64, Totals>,
    /// All of them.
    all: Totals,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            index: Mutex::default(),
        }
    }
}

/// A lock whose holder panicked is still good: a panicking test thread must not take the
/// simulator down with it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Store {
    fn shard(&self, id: &Uuid) -> MutexGuard<'_, HashMap<Uuid, StoredPayment>> {
        lock(&self.shards[(id.as_u128() % SHARDS as u128) as usize])
    }

    /// Stores `payment` unless its correlation id is already taken.
    pub fn insert(&self, payment: StoredPayment) -> Inserted {
        let mut shard = self.shard(&payment.correlation_id);
        if shard.contains_key(&payment.correlation_id) {
            return Inserted::Duplicate;
        }
        let one = Totals::of(&payment);
        {
            // While the shard is held, so the duplicate check and both writes are one
            // step for `insert`s; a summary (the index alone) may count a payment a
            // moment before `get` finds it, as a real processor's might.
            let mut index = lock(&self.index);
            index
                .by_ms
                .entry(payment.requested_at_ms)
                .or_default()
                .add(one);
            index.all.add(one);
        }
        shard.insert(payment.correlation_id, payment);
        Inserted::Stored
    }

    /// The stored payment with this id.
    pub fn get(&self, id: &Uuid) -> Option<StoredPayment> {
        self.shard(id).get(id).cloned()
    }

    /// How many payments are stored.
    pub fn len(&self) -> usize {
        lock(&self.index).all.count as usize
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Deletes every payment.
    pub fn purge(&self) {
        // Every shard, then the index: the order `insert` takes them in.
        let mut shards: Vec<_> = self.shards.iter().map(lock).collect();
        for shard in &mut shards {
            shard.clear();
        }
        *lock(&self.index) = Index::default();
    }

    /// Totals over payments with `from_ms <= requested_at_ms <= to_ms`; a `None` bound
    /// is open.
    pub fn totals(&self, from_ms: Option<i64>, to_ms: Option<i64>) -> Totals {
        let index = lock(&self.index);
        if from_ms.is_none() && to_ms.is_none() {
            return index.all;
        }
        let from = from_ms.unwrap_or(i64::MIN);
        let to = to_ms.unwrap_or(i64::MAX);
        let mut sum = Totals::default();
        if from <= to {
            for (_, t) in index.by_ms.range(from..=to) {
                sum.add(*t);
            }
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(amount_cents: i64, requested_at_ms: i64) -> StoredPayment {
        StoredPayment {
            correlation_id: Uuid::new_v4(),
            amount_cents,
            requested_at_ms,
            requested_at: String::new(),
        }
    }

    #[test]
    fn duplicates_keep_the_first_payment() {
        let store = Store::default();
        let first = payment(100, 1);
        let mut again = first.clone();
        again.amount_cents = 999;
        assert_eq!(store.insert(first.clone()), Inserted::Stored);
        assert_eq!(store.insert(again), Inserted::Duplicate);
        assert_eq!(store.get(&first.correlation_id), Some(first));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn totals_are_inclusive_and_bounds_open_independently() {
        let store = Store::default();
        for (cents, at) in [(1, 10), (10, 11), (100, 12)] {
            store.insert(payment(cents, at));
        }
        let t = |from, to| store.totals(from, to);
        assert_eq!(
            t(Some(11), Some(11)),
            Totals {
                count: 1,
                cents: 10
            }
        );
        assert_eq!(
            t(Some(10), Some(12)),
            Totals {
                count: 3,
                cents: 111
            }
        );
        assert_eq!(t(Some(13), None), Totals::default());
        assert_eq!(t(None, Some(10)), Totals { count: 1, cents: 1 });
        assert_eq!(t(Some(12), Some(10)), Totals::default());
        store.purge();
        assert!(store.is_empty());
        assert_eq!(t(None, None), Totals::default());
        assert_eq!(t(Some(10), Some(12)), Totals::default());
    }

    /// The per-millisecond index gives what a scan of every stored payment gives, for any
    /// window, with duplicates (never counted) and many payments in one millisecond.
    #[test]
    fn window_totals_equal_a_scan_of_the_stored_payments() {
        let store = Store::default();
        let mut stored: Vec<StoredPayment> = Vec::new();
        // A small linear congruential generator: the same sequence every run.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u64| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) % n
        };
        for _ in 0..2_000 {
            let p = payment(next(100_000) as i64, 1_000 + next(500) as i64);
            if next(10) == 0 {
                if let Some(old) = stored.last() {
                    // The same id again, another amount: a duplicate.
                    let mut again = p.clone();
                    again.correlation_id = old.correlation_id;
                    assert_eq!(store.insert(again), Inserted::Duplicate);
                    continue;
                }
            }
            assert_eq!(store.insert(p.clone()), Inserted::Stored);
            stored.push(p);
        }
        let scan = |from: i64, to: i64| {
            stored
                .iter()
                .filter(|p| (from..=to).contains(&p.requested_at_ms))
                .fold(Totals::default(), |mut acc, p| {
                    acc.add(Totals::of(p));
                    acc
                })
        };
        for _ in 0..500 {
            let (a, b) = (900 + next(700) as i64, 900 + next(700) as i64);
            assert_eq!(store.totals(Some(a), Some(b)), scan(a, b), "[{a}, {b}]");
            assert_eq!(store.totals(Some(a), None), scan(a, i64::MAX), "[{a}, ..]");
            assert_eq!(store.totals(None, Some(b)), scan(i64::MIN, b), "[.., {b}]");
        }
        assert_eq!(store.totals(None, None), scan(i64::MIN, i64::MAX));
        assert_eq!(store.len(), stored.len());
    }
}
