//! What a simulated processor is configured with at start ([`SimConfig`]).
//!
//! Before: a test builds it (usually from [`SimConfig::default_processor`] or
//! [`SimConfig::fallback_processor`]), or the binary reads it from the environment
//! ([`env`](mod@super::env)). After: [`Simulator::new`](super::Simulator::new) validates it
//! into running state. Delay, failure and token can change later through the admin
//! endpoints or the test handle; the fee and the limits cannot.

use std::time::Duration;

use common::money::Decimal;
use thiserror::Error;

/// The admin token the real processors start with.
pub const DEFAULT_TOKEN: &str = "123";
/// The default processor's fee.
pub const DEFAULT_PROCESSOR_FEE: &str = "0.05";
/// The fallback processor's fee.
pub const FALLBACK_PROCESSOR_FEE: &str = "0.15";
/// One health call per this window.
pub const DEFAULT_HEALTH_WINDOW: Duration = Duration::from_secs(5);
/// Payments handled at the same time.
pub const DEFAULT_MAX_CONCURRENT: usize = 800;
/// Payments waiting for a handling slot before `429`.
pub const DEFAULT_MAX_QUEUED: usize = 500;
/// Health callers that may wait for a later window before `429`.
pub const HEALTH_MAX_WAITERS: usize = 2;
/// Most decimals a fee may have; with `FEE_LIMIT`, fewer than 18 digits: the fee times
/// any sum of cents stays exact in an `i128`.
const MAX_FEE_SCALE: u32 = 12;
/// Fees are below this (a 100 % fee is `1`).
const FEE_LIMIT: Decimal = Decimal::new(1_000_000, 0);
/// What a fee must be, in words (error messages).
pub const FEE_RULE: &str =
    "expected a non-negative JSON number below 1000000 with at most 12 decimals, such as 0.05";

/// Start-up configuration of one simulated processor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// Fee per transaction as decimal text, e.g. `"0.05"`; kept exact.
    pub fee: String,
    /// Initial value of the `X-Rinha-Token` admin header.
    pub token: String,
    /// `GET /payments/service-health` serves one call per window (5 s for real;
    /// shorter in compressed-time tests).
    pub health_window: Duration,
    /// `POST /payments` handled at the same time.
    pub max_concurrent: usize,
    /// `POST /payments` queued for a slot; beyond that, `429`.
    pub max_queued: usize,
    /// Delay applied before each payment is decided, in milliseconds.
    pub initial_delay_ms: u64,
    /// Whether payments answer `500` from the start.
    pub initial_failure: bool,
}

impl SimConfig {
    /// The default processor: 5 % fee, token `123`, real limits, no delay, healthy.
    pub fn default_processor() -> Self {
        Self {
            fee: DEFAULT_PROCESSOR_FEE.to_owned(),
            token: DEFAULT_TOKEN.to_owned(),
            health_window: DEFAULT_HEALTH_WINDOW,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            max_queued: DEFAULT_MAX_QUEUED,
            initial_delay_ms: 0,
            initial_failure: false,
        }
    }

    /// The fallback processor: like the default one with a 15 % fee.
    pub fn fallback_processor() -> Self {
        Self {
            fee: FALLBACK_PROCESSOR_FEE.to_owned(),
            ..Self::default_processor()
        }
    }

    /// Checks the configuration; returns the parsed fee.
    pub(crate) fn validate(&self) -> Result<Decimal, ConfigError> {
        if self.health_window.is_zero() {
            return Err(ConfigError::HealthWindow);
        }
        if self.max_concurrent == 0 {
            return Err(ConfigError::MaxConcurrent);
        }
        parse_fee(&self.fee)
    }
}

/// A fee per transaction, read like every number of the workspace (a JSON number:
/// `0.05`, `0.150`, `1e-2`), kept without trailing zeros; not negative, below
/// `FEE_LIMIT` (a million), at most `MAX_FEE_SCALE` (12) decimals.
pub fn parse_fee(text: &str) -> Result<Decimal, ConfigError> {
    let invalid = || ConfigError::Fee(text.to_owned());
    let fee = text.parse::<Decimal>().map_err(|_| invalid())?.trimmed(0);
    let in_range = Decimal::ZERO <= fee && fee < FEE_LIMIT && fee.round(MAX_FEE_SCALE) == fee;
    in_range.then_some(fee).ok_or_else(invalid)
}

impl Default for SimConfig {
    fn default() -> Self {
        Self::default_processor()
    }
}

/// A [`SimConfig`] that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The fee is not a non-negative decimal number within [`parse_fee`]'s limits.
    #[error("invalid fee {0:?}: {FEE_RULE}")]
    Fee(String),
    /// A zero window would divide time into nothing.
    #[error("health_window must be greater than zero")]
    HealthWindow,
    /// Nothing could ever be handled.
    #[error("max_concurrent must be at least 1")]
    MaxConcurrent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_differ_only_by_fee() {
        let default = SimConfig::default_processor();
        let fallback = SimConfig::fallback_processor();
        assert!(default.validate().is_ok());
        assert!(fallback.validate().is_ok());
        assert_eq!(
            SimConfig {
                fee: default.fee.clone(),
                ..fallback
            },
            default
        );
    }

    #[test]
    fn refuses_what_cannot_run() {
        let bad = |f: fn(&mut SimConfig)| {
            let mut config = SimConfig::default();
            f(&mut config);
            config.validate()
        };
        assert_eq!(
            bad(|c| c.health_window = Duration::ZERO),
            Err(ConfigError::HealthWindow)
        );
        assert_eq!(
            bad(|c| c.max_concurrent = 0),
            Err(ConfigError::MaxConcurrent)
        );
        assert!(matches!(
            bad(|c| c.fee = "5%".into()),
            Err(ConfigError::Fee(_))
        ));
        assert!(bad(|c| c.max_queued = 0).is_ok());
    }

    #[test]
    fn fees_parse_exactly_by_the_one_number_grammar() {
        let fee = |text: &str| parse_fee(text).map(|f| f.to_string());
        assert_eq!(fee("0.05"), Ok("0.05".into()));
        assert_eq!(fee("0.150"), Ok("0.15".into()));
        assert_eq!(fee("1e-2"), Ok("0.01".into()));
        assert_eq!(fee("1"), Ok("1".into()));
        assert_eq!(fee("0"), Ok("0".into()));
        assert_eq!(fee("0.000000000001"), Ok("0.000000000001".into()));
        assert_eq!(fee("999999.999999999999"), Ok("999999.999999999999".into()));
        for bad in [
            "",
            ".",
            ".15",
            "-0.05",
            "5%",
            "0.05 ",
            "0.0000000000001",
            "1000000",
            "abc",
        ] {
            assert_eq!(fee(bad), Err(ConfigError::Fee(bad.into())), "{bad:?}");
        }
    }
}
