//! The processor's database: stored payments keyed by correlation id, and their totals.
//!
//! Before: a `POST /payments` that survived its delay and the failure flag
//! ([`handlers`](super::handlers)). After: `GET /payments/{id}`, the admin summary and
//! the test handle read it. One std `Mutex` around a `HashMap`; it is never held across
//! an `.await`, and a summary is a linear scan (a run stores ~17 000 payments).

use std::collections::HashMap;
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

/// What [`Store::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The payment is now stored.
    Stored,
    /// A payment with this correlation id was already stored; nothing changed.
    Duplicate,
}

/// All stored payments of one simulated processor.
#[derive(Debug, Default)]
pub struct Store {
    /// Payments by correlation id.
    payments: Mutex<HashMap<Uuid, StoredPayment>>,
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, StoredPayment>> {
        // A panicking test thread must not take the simulator down with it.
        self.payments.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `payment` unless its correlation id is already taken.
    pub fn insert(&self, payment: StoredPayment) -> Inserted {
        let mut payments = self.lock();
        if payments.contains_key(&payment.correlation_id) {
            return Inserted::Duplicate;
        }
        payments.insert(payment.correlation_id, payment);
        Inserted::Stored
    }

    /// The stored payment with this id.
    pub fn get(&self, id: &Uuid) -> Option<StoredPayment> {
        self.lock().get(id).cloned()
    }

    /// How many payments are stored.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Deletes every payment.
    pub fn purge(&self) {
        self.lock().clear();
    }

    /// Totals over payments with `from_ms <= requested_at_ms <= to_ms`; a `None` bound
    /// is open.
    pub fn totals(&self, from_ms: Option<i64>, to_ms: Option<i64>) -> Totals {
        let from = from_ms.unwrap_or(i64::MIN);
        let to = to_ms.unwrap_or(i64::MAX);
        self.lock()
            .values()
            .filter(|p| (from..=to).contains(&p.requested_at_ms))
            .fold(Totals::default(), |acc, p| Totals {
                count: acc.count + 1,
                cents: acc.cents + i128::from(p.amount_cents),
            })
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
    }
}
