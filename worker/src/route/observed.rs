//! What this process has recently seen of each processor's payment calls: a processor
//! that answered a definite failure is treated as failing for a short while, one that
//! stored a payment as healthy again. Feeds the routing policy.

use std::sync::atomic::{AtomicI64, Ordering};

use common::payment::Processor;
use common::time::{now_ms, Millis};

/// How long one definite failure marks a processor as failing.
const FAILING_FOR_MS: Millis = 1_000;

#[derive(Debug, Default)]
pub struct Observed {
    /// Per processor: until when (UTC ms) it counts as failing.
    failing_until: [AtomicI64; 2],
}

impl Observed {
    pub fn failure(&self, processor: Processor) {
        self.failing_until[processor.index()].store(now_ms() + FAILING_FOR_MS, Ordering::Relaxed);
    }

    pub fn success(&self, processor: Processor) {
        self.failing_until[processor.index()].store(0, Ordering::Relaxed);
    }

    pub fn failing(&self, processor: Processor) -> bool {
        self.failing_until[processor.index()].load(Ordering::Relaxed) > now_ms()
    }
}
