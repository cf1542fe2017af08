//! The payment stream's entry: what the gateway appends and the worker reads.
//! `id` (canonical UUID) and `amt` (integer cents), and, when the accept pinned the first
//! attempt (`accept.lua`), `at` (the acceptance, Redis' clock) and `safe` (the bound that
//! attempt must keep). The status hash holds everything that changes.

use redis::Value;

use crate::payment::{Cents, PaymentId};
use crate::time::Millis;

pub const FIELD_ID: &str = "id";
pub const FIELD_AMOUNT: &str = "amt";
pub const FIELD_ACCEPTED_AT: &str = "at";
pub const FIELD_SAFE: &str = "safe";

/// The first attempt the accept pinned to default: sent with requestedAt `at`, and only if
/// it can be stored by `safe` (both Redis-clock ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstAttempt {
    pub at: Millis,
    pub safe: Millis,
}

/// One entry read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// The stream's own entry id (`1700000000000-0`), needed to XACK.
    pub entry_id: String,
    pub payment: PaymentId,
    pub amount: Cents,
    /// The pinned first attempt, when the entry carries one.
    pub first: Option<FirstAttempt>,
}

/// Why an entry could not be decoded (a foreign or corrupted entry).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream entry {entry_id} is malformed: {reason}")]
pub struct EntryError {
    pub entry_id: String,
    /// The payment the entry names, when its id field parses: its status can then say
    /// why it was dead-lettered.
    pub payment: Option<PaymentId>,
    pub reason: &'static str,
}

/// Field/value pairs for `XADD`.
pub fn encode(id: &PaymentId, amount: Cents) -> [(&'static str, String); 2] {
    [
        (FIELD_ID, id.to_string()),
        (FIELD_AMOUNT, amount.get().to_string()),
    ]
}

/// Decodes one entry from its field list (as returned by XREADGROUP / XAUTOCLAIM).
pub fn decode(entry_id: String, fields: &[Value]) -> Result<StreamEntry, EntryError> {
    let mut id = None;
    let mut amount = None;
    let (mut at, mut safe) = (None, None);
    for pair in fields.chunks(2) {
        let [name, value] = pair else {
            return Err(EntryError {
                entry_id,
                payment: None,
                reason: "odd field list",
            });
        };
        match (as_str(name), as_str(value)) {
            (Some(FIELD_ID), Some(v)) => id = v.parse::<PaymentId>().ok(),
            (Some(FIELD_AMOUNT), Some(v)) => amount = v.parse::<i64>().ok().map(Cents::new),
            (Some(FIELD_ACCEPTED_AT), Some(v)) => at = v.parse::<Millis>().ok(),
            (Some(FIELD_SAFE), Some(v)) => safe = v.parse::<Millis>().ok(),
            _ => {}
        }
    }
    match (id, amount) {
        (Some(payment), Some(amount)) if amount.get() > 0 => Ok(StreamEntry {
            entry_id,
            payment,
            amount,
            first: at.zip(safe).map(|(at, safe)| FirstAttempt { at, safe }),
        }),
        (None, _) => Err(EntryError {
            entry_id,
            payment: None,
            reason: "missing or invalid id",
        }),
        (payment, _) => Err(EntryError {
            entry_id,
            payment,
            reason: "missing or invalid amount",
        }),
    }
}

pub(crate) fn as_str(v: &Value) -> Option<&str> {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn to_values(pairs: &[(&str, String)]) -> Vec<Value> {
        pairs
            .iter()
            .flat_map(|(k, v)| {
                [
                    Value::BulkString(k.as_bytes().to_vec()),
                    Value::BulkString(v.as_bytes().to_vec()),
                ]
            })
            .collect()
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(bytes in any::<[u8; 16]>(), cents in 1i64..=crate::payment::MAX_CENTS) {
            let id = PaymentId::new(uuid::Uuid::from_bytes(bytes));
            let fields = to_values(&encode(&id, Cents::new(cents)));
            let entry = decode("1-0".into(), &fields).unwrap();
            prop_assert_eq!(entry.payment, id);
            prop_assert_eq!(entry.amount, Cents::new(cents));
        }
    }

    #[test]
    fn malformed_entries_are_reported() {
        let bad = to_values(&[("id", "x".into()), ("amt", "5".into())]);
        assert!(decode("1-0".into(), &bad).is_err());
        let no_amount = to_values(&[("id", uuid::Uuid::nil().to_string())]);
        assert!(decode("1-0".into(), &no_amount).is_err());
        let zero = to_values(&[("id", uuid::Uuid::nil().to_string()), ("amt", "0".into())]);
        assert!(decode("1-0".into(), &zero).is_err());
    }

    #[test]
    fn a_pinned_first_attempt_needs_both_its_time_and_its_bound() {
        let id = uuid::Uuid::nil().to_string();
        let both = to_values(&[
            ("id", id.clone()),
            ("amt", "5".into()),
            ("at", "1000".into()),
            ("safe", "48000".into()),
        ]);
        let entry = decode("1-0".into(), &both).unwrap();
        assert_eq!(
            entry.first,
            Some(FirstAttempt {
                at: 1000,
                safe: 48_000
            })
        );
        let only_at = to_values(&[("id", id), ("amt", "5".into()), ("at", "1000".into())]);
        assert_eq!(decode("1-0".into(), &only_at).unwrap().first, None);
    }
}
