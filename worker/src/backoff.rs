//! Exponential backoff with full jitter, on tokio's clock (pausable in tests).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    step: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self { base, max, step: 0 }
    }

    /// The next delay: uniform in `[0, min(max, base × 2^step)]`, at least 1 ms.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.step.min(20))
            .min(self.max);
        self.step = self.step.saturating_add(1);
        let ms = ceiling.as_millis().max(1) as u64;
        Duration::from_millis(rand::random_range(1..=ms))
    }

    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    pub fn reset(&mut self) {
        self.step = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_cap() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(80));
        for step in 0..10u32 {
            let d = b.next_delay();
            let ceiling = (10u64 << step).min(80);
            assert!(
                d.as_millis() as u64 <= ceiling && d.as_millis() >= 1,
                "{step}: {d:?}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(10));
    }
}
