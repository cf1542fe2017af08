//! The concurrency limit of `POST /payments`: so many handled at once, so many queued.
//!
//! Before: the handler calls [`Gate::try_enter`] as soon as a payment arrives; a full
//! gate is an immediate `429`. After: the payment's spawned task waits on
//! [`Ticket::wait_for_slot`] (FIFO) and holds the [`Slot`] through delay, failure check
//! and store. Dropping either releases its place.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Admission to payment handling (800 at once + 500 queued in the real processors).
#[derive(Debug)]
pub struct Gate {
    /// One permit per request that may be handled at the same time.
    slots: Arc<Semaphore>,
    /// Requests admitted and not finished: handled plus queued.
    inside: AtomicUsize,
    /// `max_concurrent + max_queued`: beyond this, refuse.
    capacity: usize,
}

/// A place in the gate (handled or queued); released on drop.
#[derive(Debug)]
pub struct Ticket {
    gate: Arc<Gate>,
}

/// A handling slot; released (with its ticket) on drop.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    _ticket: Ticket,
}

impl Gate {
    /// A gate handling `max_concurrent` requests at once with `max_queued` waiting.
    pub fn new(max_concurrent: usize, max_queued: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_concurrent)),
            inside: AtomicUsize::new(0),
            capacity: max_concurrent.saturating_add(max_queued),
        }
    }

    /// Requests admitted and not finished (handled plus queued).
    pub fn inside(&self) -> usize {
        self.inside.load(Ordering::Acquire)
    }

    /// A ticket, or `None` when the handled and queued places are all taken.
    pub fn try_enter(self: &Arc<Self>) -> Option<Ticket> {
        let before = self.inside.fetch_add(1, Ordering::AcqRel);
        if before >= self.capacity {
            self.inside.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Ticket {
            gate: Arc::clone(self),
        })
    }
}

impl Ticket {
    /// Waits (in arrival order) for a handling slot. `None` only if the semaphore was
    /// closed, which this module never does.
    pub async fn wait_for_slot(self) -> Option<Slot> {
        let permit = Arc::clone(&self.gate.slots).acquire_owned().await.ok()?;
        Some(Slot {
            _permit: permit,
            _ticket: self,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.gate.inside.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn refuses_beyond_handled_plus_queued_and_releases_on_drop() {
        let gate = Arc::new(Gate::new(1, 1));
        let first = gate.try_enter().unwrap();
        let second = gate.try_enter().unwrap();
        assert!(gate.try_enter().is_none());

        let slot = first.wait_for_slot().await.unwrap();
        // The queued ticket cannot get a slot while the first one holds it.
        let waiting = tokio::spawn(second.wait_for_slot());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert!(gate.try_enter().is_none());

        drop(slot);
        let _slot = waiting.await.unwrap().unwrap();
        assert!(gate.try_enter().is_some());
    }
}
