//! What a processor's answer means for a payment. The distinction that matters is
//! *definite* (the processor certainly did not store it) versus *ambiguous* (it may have,
//! now or later): docs/protocol.md §3 — a timed-out request can still be stored, and a
//! proxy in front of a processor may answer an error of its own after forwarding.
//!
//! Only the processor's own documented answers are definite: `200`, `422`, and its failures
//! `500` / `429` (and a refusal `4xx`) with its JSON error body. Any other answer — a
//! `502`/`503`/`504`, an HTML `500`, Cloudflare's `520`–`524`, a `408` — may come from
//! something between us and the processor that had already forwarded the request: the
//! outcome is unknown and is resolved by looking the payment up.

use common::time::Millis;

/// Result of `POST /payments` on one processor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// `2xx`: stored with the requestedAt we sent.
    Stored,
    /// `422`: this correlationId is already stored there (by an earlier attempt).
    AlreadyStored,
    /// The processor did not store it: its own `500` (failure mode) or `429` (full), or no
    /// connection could be made (`status: None`). Safe to try elsewhere if nothing else is
    /// unresolved.
    Failed { status: Option<u16> },
    /// The processor's own `4xx` (other than 408/422/429): it refuses this payment for good.
    Rejected { status: u16 },
    /// The request may have reached it and no answer of its own came back: a timeout, a
    /// reset mid-response, or an error answer the processor does not give (a proxy's).
    Ambiguous,
}

impl SendOutcome {
    /// Bounded label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            SendOutcome::Stored => "stored",
            SendOutcome::AlreadyStored => "already_stored",
            SendOutcome::Failed { status: Some(429) } => "busy",
            SendOutcome::Failed { status: Some(_) } => "failed",
            SendOutcome::Failed { status: None } => "unreachable",
            SendOutcome::Rejected { .. } => "rejected",
            SendOutcome::Ambiguous => "ambiguous",
        }
    }

    /// Classifies an answer by its status and body: an error is definite only in the
    /// processor's own form, a JSON object body.
    pub fn from_answer(status: u16, body: &[u8]) -> Self {
        match status {
            200..=299 => SendOutcome::Stored,
            422 => SendOutcome::AlreadyStored,
            408 => SendOutcome::Ambiguous,
            429 | 500 if is_json_object(body) => SendOutcome::Failed {
                status: Some(status),
            },
            400..=499 if status != 429 && is_json_object(body) => SendOutcome::Rejected { status },
            _ => SendOutcome::Ambiguous,
        }
    }
}

/// Whether `body` is a JSON object, the form of every answer the processors give.
pub fn is_json_object(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct AnyObject {}
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        && serde_json::from_slice::<AnyObject>(body).is_ok()
}

/// Result of `GET /payments/{id}` on one processor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Stored, with the requestedAt the processor holds (what its summary filters on).
    Found { requested_at: Millis },
    /// `404`: not stored (yet).
    Absent,
    /// No usable answer.
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_processors_own_answers_are_definite() {
        let own = br#"{"error":"payment processor is failing"}"#;
        assert_eq!(SendOutcome::from_answer(200, b"{}"), SendOutcome::Stored);
        assert_eq!(
            SendOutcome::from_answer(422, own),
            SendOutcome::AlreadyStored
        );
        assert_eq!(
            SendOutcome::from_answer(500, own),
            SendOutcome::Failed { status: Some(500) }
        );
        assert_eq!(
            SendOutcome::from_answer(429, own),
            SendOutcome::Failed { status: Some(429) }
        );
        assert_eq!(
            SendOutcome::from_answer(400, own),
            SendOutcome::Rejected { status: 400 }
        );
        // A proxy's answers: after forwarding, the processor may hold the payment.
        let html = b"<html><body><h1>503 Service Unavailable</h1></body></html>";
        for (status, body) in [
            (500, &html[..]),
            (500, b""),
            (500, b"[]"),
            (500, b"{not json"),
            (429, b"Too Many Requests"),
            (400, b"<html>Bad Request</html>"),
            (408, own),
            (502, own),
            (503, own),
            (
                503,
                b"upstream connect error or disconnect/reset before headers",
            ),
            (504, b""),
            (520, html),
            (524, html),
        ] {
            assert_eq!(
                SendOutcome::from_answer(status, body),
                SendOutcome::Ambiguous,
                "{status} {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
