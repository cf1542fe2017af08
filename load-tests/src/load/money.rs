//! Exact decimal arithmetic for the score.
//!
//! Comes before: [`control`](super::control) hands over the text of the JSON numbers the
//! backend and the processors print. Comes after: [`score`](super::score) multiplies and adds
//! them. Nothing here ever goes through `f64`: `19.9 * 100.0` is `1989.9999999999998`, and a
//! score summed over 16 700 payments in floats drifts visibly.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// The most decimal places we keep. Money has 2, fees 2-4, bonus factors 5; products of
/// those stay far below this, and `i128` holds 10^38.
const MAX_SCALE: u32 = 18;

/// A signed decimal number `units / 10^scale`, exact.
#[derive(Clone, Copy, Debug, Default)]
pub struct Decimal {
    /// The digits, sign included.
    units: i128,
    /// How many of those digits are after the decimal point.
    scale: u32,
}

/// Why a text is not a decimal number we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("not a decimal number: {0:?}")]
    Syntax(String),
    #[error("number out of range: {0:?}")]
    Range(String),
}

impl Decimal {
    /// Zero.
    pub const ZERO: Decimal = Decimal { units: 0, scale: 0 };
    /// One.
    pub const ONE: Decimal = Decimal { units: 1, scale: 0 };

    /// `units / 10^scale`.
    pub const fn new(units: i128, scale: u32) -> Self {
        Decimal { units, scale }
    }

    /// A whole number.
    pub const fn from_int(n: i64) -> Self {
        Decimal {
            units: n as i128,
            scale: 0,
        }
    }

    /// Whole cents (2 decimal places).
    pub const fn from_cents(cents: i64) -> Self {
        Decimal {
            units: cents as i128,
            scale: 2,
        }
    }

    /// Decimal places currently carried.
    pub fn scale(self) -> u32 {
        self.scale
    }

    /// True when the value is exactly zero.
    pub fn is_zero(self) -> bool {
        self.units == 0
    }

    /// True when the value is below zero.
    pub fn is_negative(self) -> bool {
        self.units < 0
    }

    fn with_scale(self, scale: u32) -> Self {
        debug_assert!(scale >= self.scale);
        Decimal {
            units: self.units * 10i128.pow(scale - self.scale),
            scale,
        }
    }

    fn aligned(a: Self, b: Self) -> (i128, i128, u32) {
        let scale = a.scale.max(b.scale);
        (a.with_scale(scale).units, b.with_scale(scale).units, scale)
    }

    /// Rounds to `scale` places, half away from zero (how money is usually printed).
    pub fn round(self, scale: u32) -> Self {
        if scale >= self.scale {
            return self.with_scale(scale);
        }
        let div = 10i128.pow(self.scale - scale);
        let q = self.units / div;
        let r = self.units % div;
        let adjust = if r.abs() * 2 >= div {
            self.units.signum()
        } else {
            0
        };
        Decimal {
            units: q + adjust,
            scale,
        }
    }

    /// Drops trailing zero decimals (1.50 -> 1.5), for compact printing of factors.
    pub fn normalized(self) -> Self {
        let mut d = self;
        while d.scale > 0 && d.units % 10 == 0 {
            d.units /= 10;
            d.scale -= 1;
        }
        d
    }

    /// The larger of two values.
    pub fn max(self, other: Self) -> Self {
        if self >= other {
            self
        } else {
            other
        }
    }

    /// Whole cents, rounding half away from zero; `None` if it does not fit an `i64`.
    pub fn to_cents(self) -> Option<i64> {
        i64::try_from(self.round(2).units).ok()
    }

    /// An approximation for plotting and for humans only; never for arithmetic.
    pub fn to_f64(self) -> f64 {
        self.units as f64 / 10f64.powi(self.scale as i32)
    }

    fn rescale_down(mut self) -> Self {
        // Products can exceed MAX_SCALE; trailing zeros go first, then we round.
        self = self.normalized();
        if self.scale > MAX_SCALE {
            self = self.round(MAX_SCALE);
        }
        self
    }
}

impl std::ops::Add for Decimal {
    type Output = Decimal;
    fn add(self, rhs: Self) -> Self {
        let (a, b, scale) = Decimal::aligned(self, rhs);
        Decimal {
            units: a + b,
            scale,
        }
    }
}

impl std::ops::Sub for Decimal {
    type Output = Decimal;
    fn sub(self, rhs: Self) -> Self {
        let (a, b, scale) = Decimal::aligned(self, rhs);
        Decimal {
            units: a - b,
            scale,
        }
    }
}

impl std::ops::Mul for Decimal {
    type Output = Decimal;
    fn mul(self, rhs: Self) -> Self {
        Decimal {
            units: self.units * rhs.units,
            scale: self.scale + rhs.scale,
        }
        .rescale_down()
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
        let (a, b, _) = Decimal::aligned(*self, *other);
        a.cmp(&b)
    }
}

impl FromStr for Decimal {
    type Err = MoneyError;

    /// Parses the JSON number grammar (`-12.30`, `1e3`, `4.5E-2`); surrounding quotes are
    /// tolerated so a backend printing amounts as strings can still be scored.
    fn from_str(text: &str) -> Result<Self, MoneyError> {
        let syntax = || MoneyError::Syntax(text.to_owned());
        let range = || MoneyError::Range(text.to_owned());
        let s = text.trim();
        let s = s
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or(s);
        let (negative, s) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (mantissa, exponent) = match s.find(['e', 'E']) {
            Some(i) => {
                let exp: i32 = s[i + 1..].parse().map_err(|_| syntax())?;
                (&s[..i], exp)
            }
            None => (s, 0),
        };
        let (int_part, frac_part) = match mantissa.split_once('.') {
            Some((i, f)) => (i, f),
            None => (mantissa, ""),
        };
        if int_part.is_empty()
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
            || (mantissa.contains('.') && frac_part.is_empty())
        {
            return Err(syntax());
        }
        let mut units: i128 = 0;
        for b in int_part.bytes().chain(frac_part.bytes()) {
            units = units
                .checked_mul(10)
                .and_then(|u| u.checked_add(i128::from(b - b'0')))
                .ok_or_else(range)?;
        }
        let mut scale = i64::try_from(frac_part.len()).map_err(|_| range())? - i64::from(exponent);
        while scale < 0 {
            units = units.checked_mul(10).ok_or_else(range)?;
            scale += 1;
        }
        let scale = u32::try_from(scale).map_err(|_| range())?;
        let mut d = Decimal {
            units: if negative { -units } else { units },
            scale,
        };
        if d.scale > MAX_SCALE {
            d = d.normalized();
            if d.scale > MAX_SCALE {
                return Err(range());
            }
        }
        Ok(d)
    }
}

impl fmt::Display for Decimal {
    /// Prints exactly `scale` decimals: `Decimal::from_cents(1990)` is `19.90`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.units < 0 { "-" } else { "" };
        let abs = self.units.unsigned_abs();
        if self.scale == 0 {
            return write!(f, "{sign}{abs}");
        }
        let div = 10u128.pow(self.scale);
        write!(
            f,
            "{sign}{}.{:0width$}",
            abs / div,
            abs % div,
            width = self.scale as usize
        )
    }
}

impl serde::Serialize for Decimal {
    /// Emitted as a JSON *number* with its exact digits (not a string, not an `f64`).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = serde_json::value::RawValue::from_string(self.to_string())
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Decimal {
    /// Reads the number's source text (needs a `serde_json` deserializer over text).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw: Box<serde_json::value::RawValue> = serde::Deserialize::deserialize(deserializer)?;
        raw.get().parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn parses_json_number_forms() {
        assert_eq!(d("19.90"), Decimal::from_cents(1990));
        assert_eq!(d("19.9"), Decimal::from_cents(1990));
        assert_eq!(d("0"), Decimal::ZERO);
        assert_eq!(d("-0.05"), Decimal::new(-5, 2));
        assert_eq!(d("1.99e2"), Decimal::from_int(199));
        assert_eq!(d("1990E-2"), Decimal::from_cents(1990));
        assert_eq!(d("\"19.90\""), Decimal::from_cents(1990));
        for bad in ["", "-", ".5", "5.", "1.2.3", "abc", "1e", "--1", "1,5"] {
            assert!(bad.parse::<Decimal>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn sums_many_payments_exactly() {
        let one = d("19.90");
        let total: Decimal = std::iter::repeat_n(one, 16752).sum();
        assert_eq!(total.to_string(), "333364.80");
        assert_eq!(total, d("333364.8"));
        assert_eq!(total.to_cents(), Some(33_336_480));
    }

    #[test]
    fn multiplies_and_rounds() {
        let fee = d("0.05") * d("333364.80");
        assert_eq!(fee, d("16668.24"));
        assert_eq!(d("0.15") * d("19.90"), d("2.985"));
        assert_eq!((d("0.15") * d("19.90")).round(2).to_string(), "2.99");
        assert_eq!(d("-2.985").round(2).to_string(), "-2.99");
        assert_eq!(d("2.984").round(2).to_string(), "2.98");
        assert_eq!(d("1.2").round(3).to_string(), "1.200");
    }

    #[test]
    fn prints_and_serializes_exact_digits() {
        assert_eq!(Decimal::new(-5, 2).to_string(), "-0.05");
        assert_eq!(Decimal::new(12345, 0).to_string(), "12345");
        assert_eq!(d("1.500").normalized().to_string(), "1.5");
        let json = serde_json::to_string(&vec![d("333364.80")]).unwrap();
        assert_eq!(json, "[333364.80]");
        let back: Vec<Decimal> = serde_json::from_str(&json).unwrap();
        assert_eq!(back[0], d("333364.8"));
    }

    #[test]
    fn orders_across_scales() {
        assert!(d("0.1") > d("0.09"));
        assert!(d("-1") < d("0.001"));
        assert_eq!(d("2.50").max(d("2.5")), d("2.5"));
    }
}
