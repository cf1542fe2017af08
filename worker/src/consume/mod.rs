//! Getting entries out of the stream: [`read`] takes new entries with `XREADGROUP`,
//! [`reclaim`] takes over entries a dead consumer left pending (`XAUTOCLAIM`) and keeps
//! this consumer's own in-flight entries fresh so nobody takes them from a live process.
//! Both hand each entry to [`spawn_payment`], bounded by one semaphore.

pub mod read;
pub mod reclaim;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::entry::StreamEntry;
use common::metrics as names;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use common::store::FailMode;

use crate::dispatch::client::RedisClock;
use crate::pipeline::{self, Context, Finish};

/// Shared by the reader, the reclaimer and the payment tasks.
pub struct Pool {
    pub ctx: Arc<Context>,
    /// One permit per payment being handled.
    pub permits: Arc<Semaphore>,
    /// Entry ids this consumer is working on (for the heartbeat), each with the flag that
    /// tells its task the entry now belongs to another consumer.
    pub in_flight: Mutex<HashMap<String, Arc<AtomicBool>>>,
    /// The payment tasks, so a simulated crash can stop them all.
    tasks: Mutex<JoinSet<()>>,
}

impl Pool {
    pub fn new(ctx: Arc<Context>) -> Arc<Self> {
        let permits = Arc::new(Semaphore::new(ctx.config.concurrency));
        Arc::new(Self {
            ctx,
            permits,
            in_flight: Mutex::new(HashMap::new()),
            tasks: Mutex::new(JoinSet::new()),
        })
    }

    /// Waits for one permit, then takes up to `max - 1` more without waiting.
    pub async fn permits_up_to(&self, max: usize) -> Vec<OwnedSemaphorePermit> {
        let mut taken = Vec::with_capacity(max);
        if let Ok(first) = self.permits.clone().acquire_owned().await {
            taken.push(first);
        }
        while taken.len() < max {
            match self.permits.clone().try_acquire_owned() {
                Ok(p) => taken.push(p),
                Err(_) => break,
            }
        }
        taken
    }

    /// Stops every payment task where it is.
    #[cfg(feature = "test-hooks")]
    pub fn abort_all(&self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.abort_all();
        }
    }

    pub fn in_flight_ids(&self) -> Vec<String> {
        self.in_flight
            .lock()
            .map(|set| set.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The heartbeat found these entries owned by another consumer: their tasks stop at
    /// their next step (they could not send anyway: `begin` checks ownership).
    pub fn mark_lost(&self, entry_ids: &[String]) {
        if let Ok(set) = self.in_flight.lock() {
            for id in entry_ids {
                if let Some(flag) = set.get(id) {
                    flag.store(true, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Entries that name no valid payment go to the dead letters with the reason — with the
/// payment's status set to failed when the entry names one — never acknowledged silently.
pub async fn dead_letter_undecodable(
    ctx: &Context,
    bad: Vec<(String, common::entry::EntryError)>,
) -> Result<(), common::store::StoreError> {
    for (entry_id, error) in bad {
        tracing::error!(%error, "dead-lettering an undecodable stream entry");
        let reason = format!("undecodable stream entry: {}", error.reason);
        match error.payment {
            Some(payment) => {
                ctx.store
                    .dead_letter(&payment, "", &reason, &entry_id, FailMode::Entry, "")
                    .await?;
            }
            None => ctx.store.dead_letter_entry(&entry_id, &reason).await?,
        }
        metrics::counter!(names::DEAD_LETTERS_TOTAL, "reason" => "undecodable").increment(1);
    }
    Ok(())
}

/// Runs one payment in its own task, holding `permit` until it ends. `read`: the entry was
/// handed to this consumer first (XREADGROUP `>`), with Redis' clock at the read.
pub fn spawn_payment(
    pool: &Arc<Pool>,
    entry: StreamEntry,
    permit: OwnedSemaphorePermit,
    read: Option<RedisClock>,
) {
    let lost = Arc::new(AtomicBool::new(false));
    if let Ok(mut set) = pool.in_flight.lock() {
        set.insert(entry.entry_id.clone(), lost.clone());
    }
    metrics::gauge!(names::WORKER_IN_FLIGHT).increment(1.0);
    let task_pool = pool.clone();
    let task = async move {
        let pool = task_pool;
        let finish = pipeline::process(&pool.ctx, &entry, read, &lost).await;
        match finish {
            Finish::Released => {
                tracing::debug!(entry = %entry.entry_id, "released at shutdown, stays pending");
            }
            Finish::Lost => {
                metrics::counter!(names::ENTRIES_LOST_TOTAL).increment(1);
                tracing::warn!(entry = %entry.entry_id, "entry owned by another consumer now; stopped without sending");
            }
            _ => {}
        }
        if let Ok(mut set) = pool.in_flight.lock() {
            set.remove(&entry.entry_id);
        }
        metrics::gauge!(names::WORKER_IN_FLIGHT).decrement(1.0);
        drop(permit);
    };
    if let Ok(mut tasks) = pool.tasks.lock() {
        // Reap finished tasks so the set only holds live ones.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }
}
