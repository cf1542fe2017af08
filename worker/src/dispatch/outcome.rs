//! What a processor's answer means for a payment. The distinction that matters is
//! *definite* (the processor certainly did not store it) versus *ambiguous* (it may have,
//! now or later): SPEC §3 — a timed-out request can still be stored.

use common::time::Millis;

/// Result of `POST /payments` on one processor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// `200`: stored with the requestedAt we sent.
    Stored,
    /// `422`: this correlationId is already stored there (by an earlier attempt).
    AlreadyStored,
    /// The processor did not store it: `500`/`503`/other `5xx` of its own failure mode,
    /// `429` (full), or the connection could not be made. Safe to try elsewhere if nothing
    /// else is unresolved.
    Failed { status: Option<u16> },
    /// A `4xx` other than 408/422/429: the processor refuses this payment for good.
    Rejected { status: u16 },
    /// No answer after the request may have reached it: a timeout, a reset mid-response,
    /// or a `502`/`504`/`408` — what a proxy in front of the processor answers when the
    /// request may have been forwarded and its answer was lost.
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

    /// Classifies an HTTP status.
    pub fn from_status(status: u16) -> Self {
        match status {
            200..=299 => SendOutcome::Stored,
            422 => SendOutcome::AlreadyStored,
            408 | 502 | 504 => SendOutcome::Ambiguous,
            429 | 500..=599 => SendOutcome::Failed {
                status: Some(status),
            },
            other => SendOutcome::Rejected { status: other },
        }
    }
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
    fn statuses_classify() {
        assert_eq!(SendOutcome::from_status(200), SendOutcome::Stored);
        assert_eq!(SendOutcome::from_status(422), SendOutcome::AlreadyStored);
        assert_eq!(
            SendOutcome::from_status(500),
            SendOutcome::Failed { status: Some(500) }
        );
        assert_eq!(
            SendOutcome::from_status(429),
            SendOutcome::Failed { status: Some(429) }
        );
        assert_eq!(
            SendOutcome::from_status(400),
            SendOutcome::Rejected { status: 400 }
        );
        // A proxy's "upstream timed out / answered garbage": it may have been forwarded.
        for status in [408, 502, 504] {
            assert_eq!(SendOutcome::from_status(status), SendOutcome::Ambiguous);
        }
        assert_eq!(
            SendOutcome::from_status(503),
            SendOutcome::Failed { status: Some(503) }
        );
    }
}
