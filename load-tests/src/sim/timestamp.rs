//! Timestamps: ISO-8601 / RFC 3339 text to UTC milliseconds since the Unix epoch.
//!
//! Before: [`handlers`](super::handlers) passes a payment's `requestedAt` or a summary's
//! `from`/`to` bound. After: the [`store`](super::store) compares plain `i64`
//! milliseconds, so a window is inclusive at millisecond precision whatever offset or
//! number of fractional digits each side was written with.

use thiserror::Error;
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{OffsetDateTime, PrimitiveDateTime};

/// The text was not an ISO-8601 date-time.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0:?} is not an ISO-8601 date-time such as 2025-07-15T12:34:56.000Z")]
pub struct TimestampError(pub String);

/// Parses `2025-07-15T12:34:56.000Z`, `2025-07-15T14:34:56+02:00`,
/// `2025-07-15T12:34:56Z`... into UTC milliseconds since the epoch. Digits below the
/// millisecond are truncated (towards the past). A date-time without an offset is taken
/// as UTC, the processors' convention.
pub fn parse_timestamp_ms(text: &str) -> Result<i64, TimestampError> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(text, &Iso8601::DEFAULT))
        .or_else(|_| PrimitiveDateTime::parse(text, &Iso8601::DEFAULT).map(|t| t.assume_utc()))
        .map_err(|_| TimestampError(text.to_owned()))?;
    let ms = parsed.unix_timestamp_nanos().div_euclid(1_000_000);
    i64::try_from(ms).map_err(|_| TimestampError(text.to_owned()))
}

/// Renders UTC milliseconds as `2025-07-15T12:34:56.000Z` (what clients of the
/// processors send).
pub fn format_timestamp_ms(ms: i64) -> Option<String> {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    let millis = at.millisecond();
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// 2025-07-15T12:34:56Z
    const BASE: i64 = 1_752_582_896_000;

    #[test]
    fn utc_with_and_without_fraction() {
        assert_eq!(parse_timestamp_ms("2025-07-15T12:34:56.000Z"), Ok(BASE));
        assert_eq!(parse_timestamp_ms("2025-07-15T12:34:56Z"), Ok(BASE));
        assert_eq!(
            parse_timestamp_ms("2025-07-15T12:34:56.123Z"),
            Ok(BASE + 123)
        );
        assert_eq!(parse_timestamp_ms("2025-07-15T12:34:56.1Z"), Ok(BASE + 100));
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        assert_eq!(
            parse_timestamp_ms("2025-07-15T14:34:56.001+02:00"),
            Ok(BASE + 1)
        );
        assert_eq!(parse_timestamp_ms("2025-07-15T09:34:56-03:00"), Ok(BASE));
        assert_eq!(parse_timestamp_ms("2025-07-15T12:34:56+00:00"), Ok(BASE));
    }

    #[test]
    fn sub_millisecond_digits_are_truncated() {
        assert_eq!(
            parse_timestamp_ms("2025-07-15T12:34:56.123999Z"),
            Ok(BASE + 123)
        );
        assert_eq!(
            parse_timestamp_ms("1969-12-31T23:59:59.9995Z"),
            Ok(-1),
            "truncation goes towards the past, also before 1970"
        );
    }

    #[test]
    fn missing_offset_means_utc() {
        assert_eq!(parse_timestamp_ms("2025-07-15T12:34:56.000"), Ok(BASE));
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "",
            "now",
            "2025-07-15",
            "12:34:56",
            "2025-13-15T12:34:56Z",
            "1752582896000",
        ] {
            assert!(parse_timestamp_ms(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn formats_what_it_parses() {
        let text = format_timestamp_ms(BASE + 7).unwrap();
        assert_eq!(text, "2025-07-15T12:34:56.007Z");
        assert_eq!(parse_timestamp_ms(&text), Ok(BASE + 7));
    }
}
