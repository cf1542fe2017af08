//! Exact money: amounts as integer cents, fees and totals as exact decimals.
//!
//! Owns the only places where a number's *text* becomes money and money becomes text
//! again. Before: [`handlers`](super::handlers) hands over the raw JSON number of
//! `amount` (a `serde_json::value::RawValue`) or the configured fee. After: the
//! [`store`](super::store) keeps cents, and the summary prints [`Decimal`]s.
//!
//! No `f64` ever touches an amount: `19.9 * 100.0` is `1989.9999999999998`, and the
//! tests compare summaries to the cent across thousands of payments.

use thiserror::Error;

/// Largest accepted amount, in cents (1e13 currency units, like the gateway's limit).
pub const MAX_CENTS: i64 = 1_000_000_000_000_000;

/// Most fractional digits a configured fee may have; keeps fee × total inside `i128`.
const MAX_FEE_SCALE: u32 = 12;

/// Why an `amount` was refused (the handler answers `400`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AmountError {
    /// Not a JSON number (a string, `null`, an object...).
    #[error("amount must be a JSON number")]
    NotANumber,
    /// Zero or negative once rounded to cents.
    #[error("amount must be greater than zero")]
    NotPositive,
    /// Above [`MAX_CENTS`].
    #[error("amount is too large")]
    TooLarge,
}

/// Parses the text of a JSON number into cents, rounded to 2 decimals half away from
/// zero (`0.005` → 1 cent, `19.994` → 1999), exactly, whatever its notation
/// (`19.9`, `19.90`, `1.99e1`, `1990E-2`).
pub fn parse_amount_cents(text: &str) -> Result<i64, AmountError> {
    let text = text.trim();
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], parse_exponent(&unsigned[at + 1..])?),
        None => (unsigned, 0),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((int_part, frac_part)) => (int_part, frac_part),
        None => (mantissa, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty()
        || !all_digits(int_part)
        || !all_digits(frac_part)
        || (mantissa.contains('.') && frac_part.is_empty())
    {
        return Err(AmountError::NotANumber);
    }

    // value = digits × 10^(exponent − frac_len); in cents the power grows by 2.
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Err(AmountError::NotPositive);
    }
    let frac_len = i64::try_from(frac_part.len()).map_err(|_| AmountError::TooLarge)?;
    let shift = exponent.saturating_sub(frac_len).saturating_add(2);

    let cents = if shift >= 0 {
        // digits followed by `shift` zeros; anything past 19 digits is beyond MAX_CENTS.
        let width = i64::try_from(digits.len())
            .map_err(|_| AmountError::TooLarge)?
            .saturating_add(shift);
        if width > 19 {
            return Err(AmountError::TooLarge);
        }
        let mut cents = parse_digits(digits)?;
        for _ in 0..shift {
            cents = cents.checked_mul(10).ok_or(AmountError::TooLarge)?;
        }
        cents
    } else {
        // Drop the last `-shift` digits; the first dropped digit decides the rounding.
        let dropped = usize::try_from(shift.unsigned_abs()).unwrap_or(usize::MAX);
        let (kept, round_digit) = if dropped > digits.len() {
            ("", b'0')
        } else {
            let split = digits.len() - dropped;
            (&digits[..split], digits.as_bytes()[split])
        };
        if kept.len() > 19 {
            return Err(AmountError::TooLarge);
        }
        let kept = if kept.is_empty() {
            0
        } else {
            parse_digits(kept)?
        };
        kept + u64::from(round_digit >= b'5')
    };

    if cents == 0 || negative {
        return Err(AmountError::NotPositive);
    }
    match i64::try_from(cents) {
        Ok(cents) if cents <= MAX_CENTS => Ok(cents),
        _ => Err(AmountError::TooLarge),
    }
}

/// The exponent of a JSON number, saturated: `1e999999999999999999` is simply huge.
fn parse_exponent(text: &str) -> Result<i64, AmountError> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AmountError::NotANumber);
    }
    let magnitude = digits.bytes().fold(0_i64, |acc, b| {
        acc.saturating_mul(10).saturating_add(i64::from(b - b'0'))
    });
    Ok(if negative { -magnitude } else { magnitude })
}

fn parse_digits(digits: &str) -> Result<u64, AmountError> {
    digits.parse::<u64>().map_err(|_| AmountError::TooLarge)
}

/// Why a configured fee was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0:?} is not a non-negative decimal with at most {MAX_FEE_SCALE} decimals (e.g. 0.05)")]
pub struct FeeError(pub String);

/// An exact decimal number: `units × 10^-scale`.
///
/// Used for the fee (`0.05` = 5 × 10⁻²), for totals in cents (scale 2) and for their
/// product, which is printed without ever being rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    units: i128,
    scale: u32,
}

impl Decimal {
    /// An amount of cents.
    pub fn from_cents(cents: i128) -> Self {
        Self {
            units: cents,
            scale: 2,
        }
    }

    /// Parses a fee such as `0.05` or `.15` or `1`: plain non-negative decimal notation.
    pub fn parse_fee(text: &str) -> Result<Self, FeeError> {
        let err = || FeeError(text.to_owned());
        let (int_part, frac_part) = text.split_once('.').unwrap_or((text, ""));
        let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let scale = u32::try_from(frac_part.len()).map_err(|_| err())?;
        if (int_part.is_empty() && frac_part.is_empty())
            || !digits_only(int_part)
            || !digits_only(frac_part)
            || scale > MAX_FEE_SCALE
            || (text.contains('.') && frac_part.is_empty())
        {
            return Err(err());
        }
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        // At most 18 significant digits: the fee times any sum of cents stays in i128.
        if digits.len() > 18 {
            return Err(err());
        }
        let units = if digits.is_empty() {
            0
        } else {
            digits.parse::<i128>().map_err(|_| err())?
        };
        Ok(Self { units, scale })
    }

    /// The exact product, or `None` if it would not fit.
    pub fn checked_mul(self, other: Self) -> Option<Self> {
        Some(Self {
            units: self.units.checked_mul(other.units)?,
            scale: self.scale.checked_add(other.scale)?,
        })
    }

    /// The exact value as JSON-number text, with trailing zeros trimmed but at least
    /// `min_decimals` decimals: `Decimal::from_cents(3_336_480).render(2)` is `33364.80`.
    pub fn render(&self, min_decimals: u32) -> String {
        let digits = self.units.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let padded = if digits.len() <= scale {
            format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
        } else {
            digits
        };
        let (int_part, frac_part) = padded.split_at(padded.len() - scale);
        let mut frac = frac_part.trim_end_matches('0').to_owned();
        while frac.len() < min_decimals as usize {
            frac.push('0');
        }
        let sign = if self.units < 0 { "-" } else { "" };
        if frac.is_empty() {
            format!("{sign}{int_part}")
        } else {
            format!("{sign}{int_part}.{frac}")
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn plain_amounts_become_exact_cents() {
        assert_eq!(parse_amount_cents("19.90"), Ok(1990));
        assert_eq!(parse_amount_cents("19.9"), Ok(1990));
        assert_eq!(parse_amount_cents("19"), Ok(1900));
        assert_eq!(parse_amount_cents("0.01"), Ok(1));
        assert_eq!(parse_amount_cents("0.1"), Ok(10));
        assert_eq!(parse_amount_cents("1234567.89"), Ok(123_456_789));
        assert_eq!(parse_amount_cents(" 5.5 "), Ok(550));
    }

    #[test]
    fn exponent_notation_is_exact() {
        assert_eq!(parse_amount_cents("1.99e1"), Ok(1990));
        assert_eq!(parse_amount_cents("1990E-2"), Ok(1990));
        assert_eq!(parse_amount_cents("1e+2"), Ok(10_000));
        assert_eq!(parse_amount_cents("1e13"), Ok(MAX_CENTS));
        assert_eq!(parse_amount_cents("5e-3"), Ok(1));
        assert_eq!(parse_amount_cents("4e-3"), Err(AmountError::NotPositive));
    }

    #[test]
    fn rounds_half_away_from_zero_on_the_third_decimal() {
        assert_eq!(parse_amount_cents("19.994"), Ok(1999));
        assert_eq!(parse_amount_cents("19.995"), Ok(2000));
        assert_eq!(parse_amount_cents("19.9949999999999999999999"), Ok(1999));
        assert_eq!(parse_amount_cents("0.005"), Ok(1));
        assert_eq!(parse_amount_cents("0.0049"), Err(AmountError::NotPositive));
        assert_eq!(
            parse_amount_cents("0.000000000000000000000000000000000000000000001"),
            Err(AmountError::NotPositive)
        );
    }

    #[test]
    fn refuses_what_is_not_a_positive_number() {
        for text in [
            "\"19.90\"",
            "null",
            "true",
            "{}",
            "[]",
            "",
            "1.",
            ".5",
            "1e",
            "1x",
        ] {
            assert_eq!(
                parse_amount_cents(text),
                Err(AmountError::NotANumber),
                "{text}"
            );
        }
        assert_eq!(parse_amount_cents("0"), Err(AmountError::NotPositive));
        assert_eq!(parse_amount_cents("0.00"), Err(AmountError::NotPositive));
        assert_eq!(parse_amount_cents("-1"), Err(AmountError::NotPositive));
        assert_eq!(parse_amount_cents("-0.0"), Err(AmountError::NotPositive));
    }

    #[test]
    fn refuses_amounts_beyond_the_limit() {
        assert_eq!(
            parse_amount_cents("10000000000000.01"),
            Err(AmountError::TooLarge)
        );
        assert_eq!(parse_amount_cents("1e14"), Err(AmountError::TooLarge));
        assert_eq!(
            parse_amount_cents("1e999999999999999999999"),
            Err(AmountError::TooLarge)
        );
        assert_eq!(
            parse_amount_cents("123456789012345678901234567890"),
            Err(AmountError::TooLarge)
        );
    }

    #[test]
    fn fees_parse_exactly() {
        let fee = Decimal::parse_fee("0.05").unwrap();
        assert_eq!(fee, Decimal { units: 5, scale: 2 });
        assert_eq!(fee.render(0), "0.05");
        assert_eq!(Decimal::parse_fee("0.150").unwrap().render(0), "0.15");
        assert_eq!(Decimal::parse_fee(".15").unwrap().render(0), "0.15");
        assert_eq!(Decimal::parse_fee("1").unwrap().render(0), "1");
        assert_eq!(Decimal::parse_fee("0").unwrap().render(0), "0");
        for bad in [
            "",
            ".",
            "-0.05",
            "5%",
            "0.05 ",
            "1e-2",
            "0.0000000000001",
            "abc",
        ] {
            assert!(Decimal::parse_fee(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn totals_render_without_float_drift() {
        // 16752 × 19.90
        let total = Decimal::from_cents(16_752 * 1_990);
        assert_eq!(total.render(2), "333364.80");
        assert_eq!(Decimal::from_cents(1_000 * 1_990).render(2), "19900.00");
        assert_eq!(Decimal::from_cents(5).render(2), "0.05");
        assert_eq!(Decimal::from_cents(0).render(2), "0.00");
        assert_eq!(Decimal::from_cents(-150).render(2), "-1.50");
    }

    #[test]
    fn fee_times_total_is_exact() {
        let fee = Decimal::parse_fee("0.05").unwrap();
        let total = Decimal::from_cents(16_752 * 1_990);
        assert_eq!(fee.checked_mul(total).unwrap().render(2), "16668.24");
        let fee = Decimal::parse_fee("0.15").unwrap();
        assert_eq!(fee.checked_mul(total).unwrap().render(2), "50004.72");
        // Fees finer than a cent are printed, not rounded away.
        let one_cent = Decimal::from_cents(1);
        assert_eq!(fee.checked_mul(one_cent).unwrap().render(2), "0.0015");
    }
}
