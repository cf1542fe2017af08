//! `GET /payments-summary?from=&to=`: both processors' counts and exact sums over an
//! inclusive millisecond window, read atomically from the per-second aggregate.

use std::fmt::Write;

use common::money::Decimal;
use common::store::{Totals, Window};
use common::time::parse_ms;
use hyper::{Response, StatusCode};

use crate::error::ApiError;
use crate::responses::{self, Body};
use crate::AppState;

pub async fn get(state: &AppState, query: Option<&str>) -> Result<Response<Body>, ApiError> {
    let window = parse_window(query.unwrap_or_default())?;
    let summary = state.store.summary(window).await?;
    let mut body = String::with_capacity(128);
    body.push_str(r#"{"default":"#);
    write_totals(&mut body, summary.default);
    body.push_str(r#","fallback":"#);
    write_totals(&mut body, summary.fallback);
    body.push('}');
    Ok(responses::json(StatusCode::OK, body))
}

/// `from`/`to` from the query string; absent or empty bounds are open.
pub fn parse_window(query: &str) -> Result<Window, ApiError> {
    let mut window = Window::default();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match name.as_ref() {
            "from" => &mut window.from,
            "to" => &mut window.to,
            _ => continue,
        };
        if value.trim().is_empty() {
            continue;
        }
        // An unencoded `+` of a UTC offset arrives as a space after form decoding.
        let text = value.replace(' ', "+");
        *slot = Some(parse_ms(&text).map_err(|e| ApiError::BadRequest(format!("`{name}`: {e}")))?);
    }
    if let (Some(from), Some(to)) = (window.from, window.to) {
        if from > to {
            return Err(ApiError::BadRequest("`from` is after `to`".into()));
        }
    }
    Ok(window)
}

fn write_totals(out: &mut String, totals: Totals) {
    let _ = write!(
        out,
        r#"{{"totalRequests":{},"totalAmount":{}}}"#,
        totals.requests,
        Decimal::new(totals.cents, 2)
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn window_bounds_parse_and_validate() {
        let w = parse_window("from=2025-07-15T12:34:56.000Z&to=2025-07-15T12:35:56.999Z").unwrap();
        assert_eq!(w.to.unwrap() - w.from.unwrap(), 60_999);
        let w = parse_window("from=2025-07-15T12%3A34%3A56.000Z").unwrap();
        assert!(w.from.is_some() && w.to.is_none());
        let w =
            parse_window("from=2025-07-15T14:34:56.000+02:00&to=2025-07-15T12:34:56.000Z").unwrap();
        assert_eq!(w.from, w.to);
        assert_eq!(parse_window("").unwrap(), Window::default());
        assert!(parse_window("from=yesterday").is_err());
        assert!(parse_window("from=2025-07-15T12:34:57Z&to=2025-07-15T12:34:56Z").is_err());
    }

    #[test]
    fn totals_print_exact_decimals() {
        let mut s = String::new();
        write_totals(
            &mut s,
            Totals {
                requests: 16752,
                cents: 16752 * 1990,
            },
        );
        assert_eq!(s, r#"{"totalRequests":16752,"totalAmount":333364.80}"#);
    }
}
