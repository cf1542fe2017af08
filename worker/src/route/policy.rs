//! The routing policy: which processor to try next for a payment, from what this process
//! has seen of both processors and how long the payment has waited.
//!
//! Default charges 5 %, fallback 15 %: fallback only pays off when default cannot take the
//! payment before it would be lost, so `fee-aware` holds a payment for default up to a
//! maximum time and only then lets it go to fallback.

use std::time::Duration;

use common::payment::Processor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Never use fallback: payments wait for default.
    DefaultOnly,
    /// Fallback as soon as default is known to be failing.
    CheapestAvailable,
    /// Wait for default while the payment is younger than `max_hold`, then behave as
    /// `CheapestAvailable`.
    FeeAware { max_hold: Duration },
}

/// What the caller knows when choosing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Situation {
    /// Time since the payment was accepted.
    pub age: Duration,
    /// Default answered a definite failure on this payment's last attempt, or is known
    /// to be failing.
    pub default_failing: bool,
    /// Fallback is known to be failing.
    pub fallback_failing: bool,
}

impl Policy {
    pub fn parse(text: &str, max_hold: Duration) -> Result<Self, String> {
        match text {
            "default-only" => Ok(Policy::DefaultOnly),
            "cheapest-available" => Ok(Policy::CheapestAvailable),
            "fee-aware" => Ok(Policy::FeeAware { max_hold }),
            other => Err(format!(
                "unknown policy {other:?}: expected default-only, cheapest-available or fee-aware"
            )),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Policy::DefaultOnly => "default-only",
            Policy::CheapestAvailable => "cheapest-available",
            Policy::FeeAware { .. } => "fee-aware",
        }
    }

    pub fn choose(&self, s: Situation) -> Processor {
        let fallback_allowed = match self {
            Policy::DefaultOnly => false,
            Policy::CheapestAvailable => true,
            Policy::FeeAware { max_hold } => s.age >= *max_hold,
        };
        if fallback_allowed && s.default_failing && !s.fallback_failing {
            Processor::Fallback
        } else {
            Processor::Default
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn situation(age_ms: u64, default_failing: bool, fallback_failing: bool) -> Situation {
        Situation {
            age: Duration::from_millis(age_ms),
            default_failing,
            fallback_failing,
        }
    }

    #[test]
    fn healthy_default_always_wins() {
        for p in [
            Policy::DefaultOnly,
            Policy::CheapestAvailable,
            Policy::FeeAware {
                max_hold: Duration::ZERO,
            },
        ] {
            assert_eq!(
                p.choose(situation(99_999, false, false)),
                Processor::Default
            );
        }
    }

    #[test]
    fn failing_default_goes_to_fallback_only_where_the_policy_allows() {
        let s = situation(1_000, true, false);
        assert_eq!(Policy::DefaultOnly.choose(s), Processor::Default);
        assert_eq!(Policy::CheapestAvailable.choose(s), Processor::Fallback);
        let hold = Policy::FeeAware {
            max_hold: Duration::from_secs(5),
        };
        assert_eq!(hold.choose(s), Processor::Default);
        assert_eq!(
            hold.choose(situation(5_000, true, false)),
            Processor::Fallback
        );
        // Both failing: nothing is gained by switching.
        assert_eq!(
            Policy::CheapestAvailable.choose(situation(0, true, true)),
            Processor::Default
        );
    }

    #[test]
    fn names_parse_back() {
        for p in [
            Policy::DefaultOnly,
            Policy::CheapestAvailable,
            Policy::FeeAware {
                max_hold: Duration::from_secs(1),
            },
        ] {
            assert_eq!(
                Policy::parse(p.name(), Duration::from_secs(1)).ok(),
                Some(p)
            );
        }
        assert!(Policy::parse("cheap", Duration::ZERO).is_err());
    }
}
