//! Timestamps: UTC, millisecond precision, as `i64` milliseconds since the Unix epoch
//! internally and ISO-8601 (`2025-07-15T12:34:56.000Z`) on the wire.

use ::time::format_description::well_known::Rfc3339;
use ::time::macros::format_description;
use ::time::{OffsetDateTime, UtcOffset};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// The current wall-clock time in UTC milliseconds.
pub fn now_ms() -> Millis {
    let now = OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as Millis
}

/// Formats as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_ms(ms: Millis) -> String {
    let dt = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    dt.to_offset(UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00.000Z"))
}

/// Why a timestamp was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an ISO-8601 / RFC 3339 timestamp: {0:?}")]
pub struct TimestampError(pub String);

/// Parses an RFC 3339 timestamp (`Z` or an offset, any fraction) to UTC milliseconds.
/// Sub-millisecond digits are truncated toward the past, so a bound never widens.
/// A timestamp without offset (`2025-07-15T12:34:56.000`) is read as UTC.
pub fn parse_ms(text: &str) -> Result<Millis, TimestampError> {
    let text = text.trim();
    let parsed = OffsetDateTime::parse(text, &Rfc3339).or_else(|_| {
        let with_z = format!("{text}Z");
        OffsetDateTime::parse(&with_z, &Rfc3339)
    });
    let dt = parsed.map_err(|_| TimestampError(text.to_string()))?;
    Ok(dt.unix_timestamp_nanos().div_euclid(1_000_000) as Millis)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_milliseconds() {
        let ms = 1_752_582_896_007;
        let text = format_ms(ms);
        assert_eq!(text, "2025-07-15T12:34:56.007Z");
        assert_eq!(parse_ms(&text).unwrap(), ms);
    }

    #[test]
    fn parse_accepts_offsets_fractions_and_missing_zone() {
        assert_eq!(
            parse_ms("2025-07-15T14:34:56.007+02:00").unwrap(),
            parse_ms("2025-07-15T12:34:56.007Z").unwrap()
        );
        assert_eq!(
            parse_ms("2025-07-15T12:34:56Z").unwrap(),
            parse_ms("2025-07-15T12:34:56.000Z").unwrap()
        );
        assert_eq!(
            parse_ms("2025-07-15T12:34:56.0079999Z").unwrap(),
            parse_ms("2025-07-15T12:34:56.007Z").unwrap()
        );
        assert_eq!(
            parse_ms("2025-07-15T12:34:56.007").unwrap(),
            parse_ms("2025-07-15T12:34:56.007Z").unwrap()
        );
        assert!(parse_ms("yesterday").is_err());
        assert!(parse_ms("2025-13-15T12:34:56Z").is_err());
    }

    #[test]
    fn now_is_after_2025() {
        assert!(now_ms() > 1_735_689_600_000);
    }
}
