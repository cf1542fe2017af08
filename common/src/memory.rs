//! Redis' memory against a high-water mark, read every so often by a background task: the
//! gateways stop accepting at `MEMORY_HIGH_WATER` of `maxmemory`, the workers send no first
//! attempt without `begin` once memory is full (a mark of 100 %).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::metrics as names;
use crate::store::Store;

/// Whether Redis' memory is above the high-water mark, as of the last reading.
#[derive(Debug, Default)]
pub struct MemoryWatch {
    high: AtomicBool,
}

impl MemoryWatch {
    /// A watch that reads as above the mark until its first reading.
    pub fn high_until_read() -> Self {
        Self {
            high: AtomicBool::new(true),
        }
    }

    pub fn is_high(&self) -> bool {
        self.high.load(Ordering::Relaxed)
    }

    /// Takes one reading: `used` bytes of `max` (0 = no limit) against `high_water` percent.
    pub fn update(&self, used: u64, max: u64, high_water: u8) -> bool {
        let ratio = if max == 0 {
            0.0
        } else {
            used as f64 / max as f64
        };
        metrics::gauge!(names::REDIS_MEMORY_USED_RATIO).set(ratio);
        let high = max > 0
            && high_water > 0
            && u128::from(used) * 100 >= u128::from(max) * u128::from(high_water);
        self.high.store(high, Ordering::Relaxed);
        high
    }

    /// Reads Redis' memory once; an unreadable memory keeps the last reading.
    pub async fn read(&self, store: &Store, high_water: u8) {
        if let Ok((used, max)) = store.memory().await {
            let was_high = self.is_high();
            let high = self.update(used, max, high_water);
            if high != was_high {
                tracing::warn!(
                    used,
                    max,
                    high_water,
                    high,
                    "redis memory high-water mark crossed"
                );
            }
        }
    }
}

/// Reads Redis' memory every `every` into `watch`, until the task is dropped or aborted.
pub async fn watch_memory(store: Store, watch: Arc<MemoryWatch>, high_water: u8, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        watch.read(&store, high_water).await;
    }
}
