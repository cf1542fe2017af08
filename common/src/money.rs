//! Money, exact, for the whole workspace: the one grammar a number's text is read with,
//! the one rounding rule, the one way money is printed.
//!
//! - [`Cents`]: one payment's amount, a whole number of cents (`i64`). Built from the text
//!   of a JSON number by [`Cents::parse_amount`], under the rule of whoever reads it
//!   ([`SubCents`]): the gateway refuses digits finer than a cent (docs/protocol.md §2, `422`), the
//!   processors round them away (docs/protocol.md §3, "amount rounded to 2 decimals"). Everything else
//!   about an amount (grammar, sign, the 1e13 cap) is the same for both.
//! - [`Decimal`]: `units × 10^-scale` in an `i128`, for what is finer than a cent or larger
//!   than a payment: fees (5 % of 19.90 is 0.995), sums of cents, the load test's score.
//!
//! One grammar: the text of a JSON number (RFC 8259 §6,
//! `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, nothing around it), read digit by
//! digit and never through `f64` (`19.9 * 100.0` is `1989.9999999999998`). One rounding
//! rule: half away from zero (`0.005` → `0.01`, `-2.985` → `-2.99`), what money is
//! usually rounded with and what docs/protocol.md §5's score has always used here. One rendering:
//! `Display` prints exactly the decimals a value carries (`19.90`, `0.0015`);
//! [`Decimal::trimmed`] and [`Decimal::round`] choose how many.
//!
//! Comes before: [`crate::payment`] (a request's amount), the gateway's summary, the
//! worker's processor call, and the load tests' simulator and score. Comes after: nothing.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Largest accepted amount, in whole currency units (docs/protocol.md §2).
pub const MAX_AMOUNT_UNITS: i64 = 10_000_000_000_000;
/// Largest accepted amount in cents.
pub const MAX_CENTS: i64 = MAX_AMOUNT_UNITS * 100;

/// Most decimals a parsed [`Decimal`] keeps, and the most a product keeps (beyond, it is
/// rounded): money has 2, fees a few, the score's factors 5; `i128` holds 38 digits.
pub const MAX_SCALE: u32 = 18;

/// A JSON number's exponent saturates here: `1e99999999999999999999` is simply huge, and
/// every caller's range check rejects it as such. Far below `i64` overflow when combined
/// with a count of digits.
const EXPONENT_LIMIT: i64 = 1 << 40;

// ---- The grammar ---------------------------------------------------------------------

/// The text of a JSON number, split but not converted: its value is
/// `digits × 10^exponent`, `digits` being `int` then `frac` as written. Borrowed and
/// unbounded: a thousand digits or a huge exponent are read without allocating or
/// overflowing.
struct Number<'a> {
    negative: bool,
    int: &'a [u8],
    frac: &'a [u8],
    /// The power of ten of the last digit.
    exponent: i64,
}

/// `value × 10^scale`, split at the point into the whole part and what is dropped.
struct Scaled {
    /// `None` when the whole part does not fit a `u128`.
    whole: Option<u128>,
    /// The first dropped digit is 5 or more: rounding half away from zero adds one.
    round_up: bool,
    /// Some dropped digit is not zero: the value is not a whole number at this scale.
    inexact: bool,
}

impl<'a> Number<'a> {
    /// Reads `text` by the JSON number grammar; `None` if it is anything else.
    fn lex(text: &'a str) -> Option<Self> {
        let bytes = text.as_bytes();
        let digits_from = |start: usize| {
            start
                + bytes[start..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count()
        };
        let negative = bytes.first() == Some(&b'-');
        let int_start = usize::from(negative);
        let mut i = digits_from(int_start);
        let int = &bytes[int_start..i];
        if int.is_empty() || (int.len() > 1 && int[0] == b'0') {
            return None;
        }
        let mut frac: &[u8] = &[];
        if bytes.get(i) == Some(&b'.') {
            let end = digits_from(i + 1);
            frac = &bytes[i + 1..end];
            if frac.is_empty() {
                return None;
            }
            i = end;
        }
        let mut exponent: i64 = 0;
        if matches!(bytes.get(i), Some(b'e' | b'E')) {
            i += 1;
            let exp_negative = bytes.get(i) == Some(&b'-');
            if matches!(bytes.get(i), Some(b'-' | b'+')) {
                i += 1;
            }
            let end = digits_from(i);
            if end == i {
                return None;
            }
            exponent = bytes[i..end].iter().fold(0, |acc: i64, b| {
                (acc * 10 + i64::from(b - b'0')).min(EXPONENT_LIMIT)
            });
            if exp_negative {
                exponent = -exponent;
            }
            i = end;
        }
        if i != bytes.len() {
            return None;
        }
        let frac_len = i64::try_from(frac.len()).unwrap_or(i64::MAX);
        Some(Number {
            negative,
            int,
            frac,
            exponent: exponent.saturating_sub(frac_len),
        })
    }

    fn digits(&self) -> impl Iterator<Item = u8> + '_ {
        self.int.iter().chain(self.frac).map(|b| b - b'0')
    }

    fn is_zero(&self) -> bool {
        self.digits().all(|d| d == 0)
    }

    /// The value times `10^scale`, cut at the point.
    fn scaled(&self, scale: u32) -> Scaled {
        let count = self.int.len() + self.frac.len();
        let shift = self.exponent.saturating_add(i64::from(scale));
        // How many trailing digits fall after the point (may exceed `count`: the value
        // then starts with zeros after the point that were never written).
        let dropped = usize::try_from(shift.min(0).unsigned_abs()).unwrap_or(usize::MAX);
        let kept = count.saturating_sub(dropped);
        let mut whole = Some(0u128);
        for d in self.digits().take(kept) {
            whole = whole
                .and_then(|w| w.checked_mul(10))
                .and_then(|w| w.checked_add(u128::from(d)));
        }
        if shift > 0 {
            // Zeros after the digits; a zero value stays zero however large the exponent.
            let zeros = u32::try_from(shift).unwrap_or(u32::MAX);
            whole = match whole {
                Some(0) => Some(0),
                w => w.and_then(|w| w.checked_mul(10u128.checked_pow(zeros)?)),
            };
        }
        let mut rest = self.digits().skip(kept);
        let first = if dropped > count {
            0
        } else {
            rest.next().unwrap_or(0)
        };
        Scaled {
            whole,
            round_up: first >= 5,
            inexact: first != 0 || rest.any(|d| d != 0),
        }
    }
}

// ---- Cents ---------------------------------------------------------------------------

/// One payment's amount as an integer number of cents. Never a float in arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cents(i64);

/// What an amount's digits finer than a cent mean. The only difference between who reads
/// amounts: everything else of [`Cents::parse_amount`] is one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubCents {
    /// The gateway (docs/protocol.md §2): at most 2 decimals, else [`AmountError::TooPrecise`]
    /// (`19.900` is fine: trailing zeros add no precision).
    Reject,
    /// The processors (docs/protocol.md §3): the amount is rounded to 2 decimals, half away from zero
    /// (`0.005` → 1 cent, `19.994` → 1999); what rounds to zero is
    /// [`AmountError::NotPositive`].
    Round,
}

/// Why an amount's text is not an acceptable amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount must be a JSON number")]
    NotANumber,
    #[error("amount must be greater than zero")]
    NotPositive,
    #[error("amount must have at most 2 decimal places")]
    TooPrecise,
    #[error("amount must be at most 1e13")]
    TooLarge,
}

impl Cents {
    pub const ZERO: Cents = Cents(0);

    pub const fn new(cents: i64) -> Self {
        Self(cents)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    /// Parses the text of a JSON number (`19.90`, `19.9`, `1.99e1`, `1990E-2`) into exact
    /// cents: more than zero, at most 1e13, digits finer than a cent as `sub_cents` says.
    /// Checked in this order: not a number, not positive (negative or zero as written),
    /// too precise, too large, and (when rounding) rounded to zero.
    pub fn parse_amount(text: &str, sub_cents: SubCents) -> Result<Self, AmountError> {
        let number = Number::lex(text).ok_or(AmountError::NotANumber)?;
        if number.negative || number.is_zero() {
            return Err(AmountError::NotPositive);
        }
        let scaled = number.scaled(2);
        let cents = match sub_cents {
            SubCents::Reject if scaled.inexact => return Err(AmountError::TooPrecise),
            SubCents::Reject => scaled.whole,
            SubCents::Round => scaled
                .whole
                .and_then(|w| w.checked_add(u128::from(scaled.round_up))),
        };
        match cents.map(i64::try_from) {
            Some(Ok(0)) => Err(AmountError::NotPositive),
            Some(Ok(cents)) if cents <= MAX_CENTS => Ok(Self(cents)),
            _ => Err(AmountError::TooLarge),
        }
    }
}

impl fmt::Display for Cents {
    /// Exact decimal text with two decimals, e.g. `19.90`, `-0.05`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Decimal::from(*self), f)
    }
}

impl std::ops::Add for Cents {
    type Output = Cents;
    fn add(self, rhs: Cents) -> Cents {
        Cents(self.0 + rhs.0)
    }
}

impl std::ops::AddAssign for Cents {
    fn add_assign(&mut self, rhs: Cents) {
        self.0 += rhs.0;
    }
}

// ---- Decimal -------------------------------------------------------------------------

/// An exact signed decimal `units × 10^-scale`. Equality and order are by value
/// (`2.50 == 2.5`); the scale only decides how many decimals it prints.
///
/// Arithmetic is exact; a product with more than [`MAX_SCALE`] decimals is rounded to
/// that many. `checked_*` return `None` past `i128`; the operators `+ - *` panic there
/// instead of wrapping (values are money and scores, 20 orders of magnitude below it).
#[derive(Clone, Copy, Debug, Default)]
pub struct Decimal {
    /// The digits, sign included.
    units: i128,
    /// How many of those digits are after the decimal point.
    scale: u32,
}

/// Why a text is not a [`Decimal`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("not a decimal number: {0:?}")]
    Syntax(String),
    #[error("number out of range (more than {MAX_SCALE} decimals or 38 digits): {0:?}")]
    Range(String),
}

impl Decimal {
    pub const ZERO: Decimal = Decimal::new(0, 0);
    pub const ONE: Decimal = Decimal::new(1, 0);

    /// `units × 10^-scale`.
    pub const fn new(units: i128, scale: u32) -> Self {
        Decimal { units, scale }
    }

    /// A whole number.
    pub const fn from_int(n: i64) -> Self {
        Decimal::new(n as i128, 0)
    }

    /// A number of cents (2 decimals).
    pub const fn from_cents(cents: i64) -> Self {
        Decimal::new(cents as i128, 2)
    }

    pub fn is_zero(self) -> bool {
        self.units == 0
    }

    /// The same value with `scale ≥ self.scale` decimals; `None` when it does not fit.
    fn widened(self, scale: u32) -> Option<Self> {
        let factor = 10i128.checked_pow(scale.checked_sub(self.scale)?)?;
        Some(Decimal::new(self.units.checked_mul(factor)?, scale))
    }

    fn aligned(self, other: Self) -> Option<(i128, i128, u32)> {
        let scale = self.scale.max(other.scale);
        Some((
            self.widened(scale)?.units,
            other.widened(scale)?.units,
            scale,
        ))
    }

    pub fn checked_add(self, rhs: Self) -> Option<Self> {
        let (a, b, scale) = self.aligned(rhs)?;
        Some(Decimal::new(a.checked_add(b)?, scale))
    }

    pub fn checked_sub(self, rhs: Self) -> Option<Self> {
        let (a, b, scale) = self.aligned(rhs)?;
        Some(Decimal::new(a.checked_sub(b)?, scale))
    }

    /// The exact product (`0.05 × 19.90 = 0.9950`), rounded only past [`MAX_SCALE`]
    /// decimals.
    pub fn checked_mul(self, rhs: Self) -> Option<Self> {
        let product = Decimal::new(
            self.units.checked_mul(rhs.units)?,
            self.scale.checked_add(rhs.scale)?,
        );
        Some(if product.scale > MAX_SCALE {
            product.trimmed(0).round(MAX_SCALE)
        } else {
            product
        })
    }

    /// Rounded to `scale` decimals, half away from zero (`2.985` → `2.99`, `-2.985` →
    /// `-2.99`); more decimals than it has are added as zeros.
    ///
    /// # Panics
    /// When adding decimals would leave `i128` (38 digits).
    pub fn round(self, scale: u32) -> Self {
        if scale >= self.scale {
            return self.widened(scale).expect("decimal overflow");
        }
        // 10^39 exceeds every i128: all digits are dropped and the first is a zero.
        let Some(div) = 10i128.checked_pow(self.scale - scale) else {
            return Decimal::new(0, scale);
        };
        let (q, r) = (self.units / div, self.units % div);
        // |r| ≥ div/2 without overflow: |r| ≥ div - |r|.
        let away = if r.unsigned_abs() >= div.unsigned_abs() - r.unsigned_abs() {
            self.units.signum()
        } else {
            0
        };
        Decimal::new(q + away, scale)
    }

    /// Without trailing zero decimals, but keeping at least `min_scale` of them:
    /// `1.500` → `1.5` (`trimmed(0)`), `16668.2400` → `16668.24` (`trimmed(2)`),
    /// `5.00` stays `5.00` (`trimmed(2)`).
    pub fn trimmed(self, min_scale: u32) -> Self {
        let mut d = self;
        while d.scale > min_scale && d.units % 10 == 0 {
            d.units /= 10;
            d.scale -= 1;
        }
        d
    }

    /// Whole cents, rounding half away from zero; `None` if it does not fit an `i64`.
    pub fn to_cents(self) -> Option<Cents> {
        i64::try_from(self.round(2).units).ok().map(Cents::new)
    }

    /// Writes the exact value with `scale` decimals, no allocation.
    fn write(&self, out: &mut impl fmt::Write) -> fmt::Result {
        let mut buf = [0u8; 39]; // u128::MAX has 39 digits
        let mut start = buf.len();
        let mut abs = self.units.unsigned_abs();
        loop {
            start -= 1;
            buf[start] = b'0' + (abs % 10) as u8;
            abs /= 10;
            if abs == 0 {
                break;
            }
        }
        let digits = std::str::from_utf8(&buf[start..]).map_err(|_| fmt::Error)?;
        if self.units < 0 {
            out.write_char('-')?;
        }
        let scale = self.scale as usize;
        if digits.len() > scale {
            let (int, frac) = digits.split_at(digits.len() - scale);
            out.write_str(int)?;
            if !frac.is_empty() {
                out.write_char('.')?;
                out.write_str(frac)?;
            }
        } else {
            out.write_str("0.")?;
            for _ in digits.len()..scale {
                out.write_char('0')?;
            }
            out.write_str(digits)?;
        }
        Ok(())
    }
}

impl From<Cents> for Decimal {
    fn from(cents: Cents) -> Self {
        Decimal::from_cents(cents.get())
    }
}

impl std::ops::Add for Decimal {
    type Output = Decimal;
    fn add(self, rhs: Self) -> Self {
        self.checked_add(rhs).expect("decimal overflow")
    }
}

impl std::ops::Sub for Decimal {
    type Output = Decimal;
    fn sub(self, rhs: Self) -> Self {
        self.checked_sub(rhs).expect("decimal overflow")
    }
}

impl std::ops::Mul for Decimal {
    type Output = Decimal;
    fn mul(self, rhs: Self) -> Self {
        self.checked_mul(rhs).expect("decimal overflow")
    }
}

impl std::iter::Sum for Decimal {
    fn sum<I: Iterator<Item = Decimal>>(iter: I) -> Self {
        iter.fold(Decimal::ZERO, |a, b| a + b)
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        if let Some((a, b, _)) = self.aligned(*other) {
            return a.cmp(&b);
        }
        // One side does not fit at the other's scale (never money; any `new` can make
        // it): compare the printed digits, whole part first.
        let sign = self.units.signum().cmp(&other.units.signum());
        let magnitude = |d: &Decimal| {
            let text = d.to_string();
            let text = text.trim_start_matches('-');
            let (int, frac) = text.split_once('.').unwrap_or((text, ""));
            (
                int.len(),
                int.to_owned(),
                frac.trim_end_matches('0').to_owned(),
            )
        };
        let by_magnitude = magnitude(self).cmp(&magnitude(other));
        match (sign, self.units < 0) {
            (Ordering::Equal, true) => by_magnitude.reverse(),
            (Ordering::Equal, false) => by_magnitude,
            (sign, _) => sign,
        }
    }
}

impl FromStr for Decimal {
    type Err = DecimalError;

    /// Reads the JSON number grammar (`-12.30`, `1e3`, `4.5E-2`), keeping the decimals as
    /// written (`19.90` prints `19.90`); more than [`MAX_SCALE`] are accepted only when the
    /// extra ones are zeros.
    fn from_str(text: &str) -> Result<Self, DecimalError> {
        let number = Number::lex(text).ok_or_else(|| DecimalError::Syntax(text.to_owned()))?;
        let range = || DecimalError::Range(text.to_owned());
        let written = u32::try_from(number.exponent.min(0).unsigned_abs()).unwrap_or(u32::MAX);
        let scale = written.min(MAX_SCALE);
        let scaled = number.scaled(scale);
        if scaled.inexact {
            return Err(range());
        }
        let units = scaled
            .whole
            .and_then(|w| match number.negative {
                false => i128::try_from(w).ok(),
                true => 0i128.checked_sub_unsigned(w),
            })
            .ok_or_else(range)?;
        let d = Decimal::new(units, scale);
        Ok(if written > MAX_SCALE { d.trimmed(0) } else { d })
    }
}

impl fmt::Display for Decimal {
    /// Exactly `scale` decimals: `Decimal::from_cents(1990)` is `19.90`. Width and
    /// alignment flags are honoured.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.width().is_none() {
            return self.write(f);
        }
        let mut text = String::with_capacity(48);
        self.write(&mut text)?;
        f.pad(&text)
    }
}

impl serde::Serialize for Decimal {
    /// A JSON *number* with its exact digits (not a string, not an `f64`).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = serde_json::value::RawValue::from_string(self.to_string())
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Decimal {
    /// Reads a JSON number's source text (needs a `serde_json` deserializer over text). A
    /// JSON string holding such a number is read too, so a backend that prints amounts as
    /// strings can still be scored (and compared) rather than not at all.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw: Box<serde_json::value::RawValue> = serde::Deserialize::deserialize(deserializer)?;
        let text = raw.get();
        let text = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(text);
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(s: &str) -> Result<i64, AmountError> {
        Cents::parse_amount(s, SubCents::Reject).map(Cents::get)
    }

    fn rounded(s: &str) -> Result<i64, AmountError> {
        Cents::parse_amount(s, SubCents::Round).map(Cents::get)
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    // ---- Cents: what both rules share ----

    #[test]
    fn amounts_parse_exactly_in_any_notation() {
        for (text, cents) in [
            ("19.90", 1990),
            ("19.9", 1990),
            ("20", 2000),
            ("19", 1900),
            ("0.01", 1),
            ("0.1", 10),
            ("1234567.89", 123_456_789),
            ("1.99e1", 1990),
            ("1E2", 10_000),
            ("1e+2", 10_000),
            ("1990e-2", 1990),
            ("1990E-2", 1990),
            ("19.900", 1990),
            ("10000000000000", MAX_CENTS),
            ("1e13", MAX_CENTS),
        ] {
            assert_eq!(exact(text), Ok(cents), "{text}");
            assert_eq!(rounded(text), Ok(cents), "{text}");
        }
    }

    #[test]
    fn what_is_not_a_positive_json_number_is_refused_by_both_rules() {
        let not_a_number: &[&str] = &[
            "\"19.90\"",
            "null",
            "true",
            "{}",
            "[]",
            "",
            "-",
            "1.",
            ".5",
            "1e",
            "1x",
            "01",
            "abc",
            "+1",
            "--1",
            "1.2.3",
            "1,5",
            " 5.5",
            "5.5 ",
        ];
        let not_positive: &[&str] = &["0", "0.00", "-1", "-0.0", "-0.001", "-1e14", "0e5"];
        let too_large: &[&str] = &[
            "10000000000000.01",
            "1e14",
            "1e999999",
            "1e99999999999999999999",
            "123456789012345678901234567890",
        ];
        for (error, texts) in [
            (AmountError::NotANumber, not_a_number),
            (AmountError::NotPositive, not_positive),
            (AmountError::TooLarge, too_large),
        ] {
            for text in texts {
                assert_eq!(exact(text), Err(error), "{text:?}");
                assert_eq!(rounded(text), Err(error), "{text:?}");
            }
        }
    }

    // ---- Cents: where the rules differ ----

    #[test]
    fn the_gateway_refuses_sub_cent_digits() {
        for text in [
            "19.999",
            "19.994",
            "0.001",
            "1e-3",
            "0.005",
            "1e-99999999999999999999",
            // Too precise is said before too large.
            "123456789012345678901234567890123456789012345.001",
        ] {
            assert_eq!(exact(text), Err(AmountError::TooPrecise), "{text}");
        }
    }

    #[test]
    fn the_processors_round_half_away_from_zero_on_the_third_decimal() {
        assert_eq!(rounded("19.994"), Ok(1999));
        assert_eq!(rounded("19.995"), Ok(2000));
        assert_eq!(rounded("10.994"), Ok(1099));
        assert_eq!(rounded("19.9949999999999999999999"), Ok(1999));
        assert_eq!(rounded("0.005"), Ok(1));
        assert_eq!(rounded("5e-3"), Ok(1));
        assert_eq!(rounded("10000000000000.004"), Ok(MAX_CENTS));
        assert_eq!(rounded("10000000000000.005"), Err(AmountError::TooLarge));
        for zero in [
            "4e-3",
            "0.0049",
            "0.000000000000000000000000000000000000000000001",
            "1e-99999999999999999999",
        ] {
            assert_eq!(rounded(zero), Err(AmountError::NotPositive), "{zero}");
        }
    }

    #[test]
    fn cents_print_with_two_decimals() {
        assert_eq!(Cents::new(1990).to_string(), "19.90");
        assert_eq!(Cents::new(5).to_string(), "0.05");
        assert_eq!(Cents::new(16752 * 1990).to_string(), "333364.80");
        assert_eq!(Cents::new(-5).to_string(), "-0.05");
        assert_eq!(Cents::ZERO.to_string(), "0.00");
    }

    // ---- Decimal ----

    #[test]
    fn decimals_parse_json_numbers_keeping_the_written_decimals() {
        assert_eq!(d("19.90"), Decimal::from_cents(1990));
        assert_eq!(d("19.90").to_string(), "19.90");
        assert_eq!(d("19.9").to_string(), "19.9");
        assert_eq!(d("0"), Decimal::ZERO);
        assert_eq!(d("-0.05"), Decimal::new(-5, 2));
        assert_eq!(d("1.99e2"), Decimal::from_int(199));
        assert_eq!(d("1.99e2").to_string(), "199");
        assert_eq!(d("1990E-2").to_string(), "19.90");
        assert_eq!(d("1e-2"), Decimal::new(1, 2));
        assert_eq!(d("1.0000000000000000000000").to_string(), "1");
        for bad in [
            "", "-", ".5", "5.", "1.2.3", "abc", "1e", "--1", "1,5", "01", "\"1\"",
        ] {
            assert!(
                matches!(bad.parse::<Decimal>(), Err(DecimalError::Syntax(_))),
                "{bad:?} accepted"
            );
        }
        for huge in ["1e39", "0.0000000000000000001", "1e-99999999999999999999"] {
            assert!(
                matches!(huge.parse::<Decimal>(), Err(DecimalError::Range(_))),
                "{huge:?} accepted"
            );
        }
    }

    #[test]
    fn sums_many_payments_exactly() {
        let total: Decimal = std::iter::repeat_n(d("19.90"), 16752).sum();
        assert_eq!(total.to_string(), "333364.80");
        assert_eq!(total, d("333364.8"));
        assert_eq!(total.to_cents(), Some(Cents::new(33_336_480)));
        assert_eq!(Decimal::from_cents(1_000 * 1_990).to_string(), "19900.00");
        assert_eq!(Decimal::from_cents(5).to_string(), "0.05");
        assert_eq!(Decimal::from_cents(0).to_string(), "0.00");
        assert_eq!(Decimal::from_cents(-150).to_string(), "-1.50");
    }

    #[test]
    fn fees_are_exact_products() {
        let total = Decimal::from_cents(16_752 * 1_990);
        assert_eq!(d("0.05") * total, d("16668.24"));
        assert_eq!((d("0.05") * total).trimmed(2).to_string(), "16668.24");
        assert_eq!((d("0.15") * total).trimmed(2).to_string(), "50004.72");
        assert_eq!(d("0.15") * d("19.90"), d("2.985"));
        // Fees finer than a cent are kept, not rounded away.
        let fee = d("0.15") * Decimal::from_cents(1);
        assert_eq!(fee.trimmed(2).to_string(), "0.0015");
        assert_eq!((d("0.05") * d("19.90")).to_string(), "0.9950");
        // Past MAX_SCALE a product is rounded there.
        let tiny = Decimal::new(1, MAX_SCALE);
        assert_eq!(tiny * d("0.5"), Decimal::new(1, MAX_SCALE));
        assert_eq!(tiny * d("0.4"), Decimal::ZERO);
        assert_eq!(Decimal::new(i128::MAX, 0).checked_mul(d("2")), None);
    }

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(d("2.985").round(2).to_string(), "2.99");
        assert_eq!(d("-2.985").round(2).to_string(), "-2.99");
        assert_eq!(d("2.984").round(2).to_string(), "2.98");
        assert_eq!(d("-2.984").round(2).to_string(), "-2.98");
        assert_eq!(d("0.5").round(0).to_string(), "1");
        assert_eq!(d("1.2").round(3).to_string(), "1.200");
        assert_eq!(Decimal::new(i128::MAX, 38).round(0), Decimal::new(2, 0));
        assert_eq!(Decimal::new(5, 60).round(2), Decimal::ZERO);
    }

    #[test]
    fn trims_and_prints_exact_digits() {
        assert_eq!(Decimal::new(-5, 2).to_string(), "-0.05");
        assert_eq!(Decimal::new(12345, 0).to_string(), "12345");
        assert_eq!(Decimal::new(5, 45).to_string().len(), 47);
        assert_eq!(
            Decimal::new(i128::MIN, 0).to_string(),
            i128::MIN.to_string()
        );
        assert_eq!(d("1.500").trimmed(0).to_string(), "1.5");
        assert_eq!(d("5.00").trimmed(2).to_string(), "5.00");
        assert_eq!(d("5.000").trimmed(2).to_string(), "5.00");
        assert_eq!(d("100").trimmed(0).to_string(), "100");
        assert_eq!(format!("[{:>8}]", d("1.50")), "[    1.50]");
    }

    #[test]
    fn serializes_as_exact_json_numbers() {
        let json = serde_json::to_string(&vec![d("333364.80")]).unwrap();
        assert_eq!(json, "[333364.80]");
        let back: Vec<Decimal> = serde_json::from_str(&json).unwrap();
        assert_eq!(back[0].to_string(), "333364.80");
        // A backend printing amounts as strings can still be read.
        let quoted: Decimal = serde_json::from_str("\"19.90\"").unwrap();
        assert_eq!(quoted, Decimal::from_cents(1990));
        assert!(serde_json::from_str::<Decimal>("\"abc\"").is_err());
    }

    #[test]
    fn orders_by_value_across_scales() {
        assert!(d("0.1") > d("0.09"));
        assert!(d("-1") < d("0.001"));
        assert_eq!(d("2.50"), d("2.5"));
        assert_eq!(d("2.50").max(d("2.5")), d("2.5"));
        // Scales that cannot be aligned inside i128 still compare.
        let big = Decimal::new(i128::MAX / 10, 0);
        let small = Decimal::new(1, 30);
        assert!(big > small);
        assert!(Decimal::new(-(i128::MAX / 10), 0) < small);
        assert!(Decimal::new(10i128.pow(37), 0) > Decimal::new(10i128.pow(37) + 1, 30));
    }

    /// `a × b` over decimal digit strings, schoolbook: the reference the fee arithmetic is
    /// checked against (independent of `i128`).
    fn reference_product(a: u128, b: u128) -> String {
        let (a, b) = (a.to_string().into_bytes(), b.to_string().into_bytes());
        let mut acc = vec![0u32; a.len() + b.len()];
        for (i, x) in a.iter().rev().enumerate() {
            for (j, y) in b.iter().rev().enumerate() {
                acc[i + j] += u32::from(x - b'0') * u32::from(y - b'0');
            }
        }
        for k in 0..acc.len() - 1 {
            acc[k + 1] += acc[k] / 10;
            acc[k] %= 10;
        }
        let text: String = acc
            .iter()
            .rev()
            .map(|d| char::from(b'0' + *d as u8))
            .collect();
        let text = text.trim_start_matches('0');
        if text.is_empty() {
            "0".into()
        } else {
            text.into()
        }
    }

    /// `units` with `scale` decimals as text, independently of `Display`.
    fn reference_text(units: &str, scale: usize) -> String {
        let padded = format!("{units:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        if frac.is_empty() {
            int.into()
        } else {
            format!("{int}.{frac}")
        }
    }

    proptest! {
        #[test]
        fn any_amount_round_trips_through_its_text(c in 1i64..=MAX_CENTS) {
            let text = Cents::new(c).to_string();
            prop_assert_eq!(exact(&text), Ok(c));
            prop_assert_eq!(rounded(&text), Ok(c));
        }

        /// Both rules agree wherever the gateway accepts; beyond the cent, the processors
        /// round on the first extra digit and the gateway refuses unless all are zeros.
        #[test]
        fn the_rules_differ_only_in_sub_cent_digits(c in 1i64..MAX_CENTS, extra in "[0-9]{1,30}") {
            let text = format!("{}{extra}", Cents::new(c));
            let up = i64::from(extra.as_bytes()[0] >= b'5');
            prop_assert_eq!(rounded(&text), Ok(c + up));
            if extra.bytes().all(|b| b == b'0') {
                prop_assert_eq!(exact(&text), Ok(c));
            } else {
                prop_assert_eq!(exact(&text), Err(AmountError::TooPrecise));
            }
        }

        #[test]
        fn any_decimal_round_trips_through_its_text(units in any::<i128>(), scale in 0u32..=MAX_SCALE) {
            let value = Decimal::new(units, scale);
            let text = value.to_string();
            let back: Decimal = text.parse().unwrap();
            prop_assert_eq!(back, value);
            prop_assert_eq!(back.to_string(), text);
        }

        /// fee × amount, as the simulator's summary computes it, against a schoolbook
        /// product over the digits.
        #[test]
        fn fee_times_amount_is_the_exact_product(
            fee_units in 0u128..1_000_000_000_000_000_000,
            fee_scale in 0usize..=12,
            cents in 0u128..1_000_000_000_000_000_000,
        ) {
            let fee: Decimal = reference_text(&fee_units.to_string(), fee_scale).parse().unwrap();
            let amount = Decimal::new(i128::try_from(cents).unwrap(), 2);
            let product = fee.checked_mul(amount).unwrap();
            let expected = reference_text(&reference_product(fee_units, cents), fee_scale + 2);
            prop_assert_eq!(product.to_string(), expected);
        }

        /// Rounding a decimal to cents and rounding its text to cents are the same rule.
        #[test]
        fn rounding_is_one_rule_for_values_and_for_text(units in 1i128..10i128.pow(30), scale in 0u32..=MAX_SCALE) {
            let value = Decimal::new(units, scale);
            let from_text = Cents::parse_amount(&value.to_string(), SubCents::Round).ok();
            let from_value = value.to_cents().filter(|c| (1..=MAX_CENTS).contains(&c.get()));
            prop_assert_eq!(from_text, from_value);
        }

        #[test]
        fn parsing_never_panics_on_numberish_text(s in "[-+0-9.eE]{0,40}") {
            let _ = Cents::parse_amount(&s, SubCents::Reject);
            let _ = Cents::parse_amount(&s, SubCents::Round);
            let _ = s.parse::<Decimal>();
        }
    }
}
