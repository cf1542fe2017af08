//! The payment's domain types. Everything that enters from the outside is parsed into
//! these types first ("parse, don't validate"); nothing downstream sees raw input.
//!
//! Comes before: the gateway's handlers. Comes after: [`crate::store`] and the worker.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::money::{AmountError, SubCents};
pub use crate::money::{Cents, MAX_CENTS};

/// A payment's correlation id, always a valid UUID, printed in canonical lowercase
/// hyphenated form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PaymentId(Uuid);

impl PaymentId {
    pub fn new(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// Canonical text without allocating: 36 ASCII bytes.
    pub fn encode<'b>(&self, buf: &'b mut [u8; 36]) -> &'b str {
        self.0.hyphenated().encode_lower(buf)
    }
}

impl FromStr for PaymentId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim()).map(Self)
    }
}

impl fmt::Display for PaymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// The two processors. Default is always the cheaper one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Processor {
    Default,
    Fallback,
}

impl Processor {
    pub const ALL: [Processor; 2] = [Processor::Default, Processor::Fallback];

    pub fn as_str(self) -> &'static str {
        match self {
            Processor::Default => "default",
            Processor::Fallback => "fallback",
        }
    }

    pub fn index(self) -> usize {
        match self {
            Processor::Default => 0,
            Processor::Fallback => 1,
        }
    }
}

impl FromStr for Processor {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "default" => Ok(Processor::Default),
            "fallback" => Ok(Processor::Fallback),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Processor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A payment's lifecycle as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Queued,
    Processing,
    Processed,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Processing => "processing",
            Status::Processed => "processed",
            Status::Failed => "failed",
        }
    }
}

impl FromStr for Status {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "queued" => Ok(Status::Queued),
            "processing" => Ok(Status::Processing),
            "processed" => Ok(Status::Processed),
            "failed" => Ok(Status::Failed),
            _ => Err(()),
        }
    }
}

/// A payment request that passed every rule of docs/protocol.md §2. Only [`ValidPayment::parse`]
/// builds one, so holding one is proof of validity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidPayment {
    pub id: PaymentId,
    pub amount: Cents,
}

/// Why a request body is not a valid payment. The split decides the HTTP status:
/// [`RequestError::Malformed`] is 400, [`RequestError::Invalid`] is 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not JSON, not an object, a field missing or of the wrong JSON type.
    #[error("{0}")]
    Malformed(String),
    /// Well-formed JSON whose values break a rule.
    #[error("{0}")]
    Invalid(String),
}

/// The two fields of a `POST /payments` body, borrowed from it. Every other field is
/// parsed strictly too ([`Strict`]): a body is accepted only if it is RFC 8259 JSON as a
/// whole, exactly what `serde_json::Value` accepts (serde's derived `IgnoredAny` skips
/// unknown fields without decoding their strings' escapes or ranging their numbers).
struct WireRequest<'a> {
    correlation_id: Option<&'a RawValue>,
    amount: Option<&'a RawValue>,
}

impl<'de> Deserialize<'de> for WireRequest<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = WireRequest<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                use serde::de::Error;
                let mut wire = WireRequest {
                    correlation_id: None,
                    amount: None,
                };
                while let Some(key) = map.next_key::<Key>()? {
                    let (slot, name) = match key {
                        Key::CorrelationId => (&mut wire.correlation_id, "correlationId"),
                        Key::Amount => (&mut wire.amount, "amount"),
                        Key::Other => {
                            map.next_value::<Strict>()?;
                            continue;
                        }
                    };
                    if slot.is_some() {
                        return Err(A::Error::custom(format_args!("duplicate field `{name}`")));
                    }
                    *slot = Some(map.next_value()?);
                }
                Ok(wire)
            }
        }
        de.deserialize_map(Fields)
    }
}

/// A key of the request object, recognised without allocating.
enum Key {
    CorrelationId,
    Amount,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "correlationId" => Key::CorrelationId,
                    "amount" => Key::Amount,
                    _ => Key::Other,
                })
            }
        }
        de.deserialize_str(KeyVisitor)
    }
}

/// Any JSON value, decoded the way `serde_json::Value` decodes it (strings unescaped,
/// surrogates paired, numbers in range) but kept nowhere.
struct Strict;

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_any(Strict)
    }
}

impl<'de> serde::de::Visitor<'de> for Strict {
    type Value = Strict;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        while seq.next_element::<Strict>()?.is_some() {}
        Ok(Strict)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        while map.next_entry::<Strict, Strict>()?.is_some() {}
        Ok(Strict)
    }
}

impl ValidPayment {
    /// Parses a `POST /payments` body: RFC 8259 JSON as a whole (UTF-8 everywhere, also
    /// in fields we ignore), an object with both fields.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        let body = std::str::from_utf8(body).map_err(|e| {
            RequestError::Malformed(format!("body is not valid UTF-8 (RFC 8259): {e}"))
        })?;
        let wire: WireRequest<'_> = serde_json::from_str(body).map_err(|e| {
            RequestError::Malformed(format!("body is not a valid JSON object: {e}"))
        })?;
        let id_raw = wire
            .correlation_id
            .ok_or_else(|| RequestError::Malformed("missing field `correlationId`".into()))?;
        let amount_raw = wire
            .amount
            .ok_or_else(|| RequestError::Malformed("missing field `amount`".into()))?;

        let id_text: std::borrow::Cow<'_, str> = serde_json::from_str(id_raw.get())
            .map_err(|_| RequestError::Malformed("`correlationId` must be a string".into()))?;
        let amount_text = amount_raw.get();
        if !amount_text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            return Err(RequestError::Malformed("`amount` must be a number".into()));
        }
        let id: PaymentId = id_text
            .parse()
            .map_err(|_| RequestError::Invalid("`correlationId` must be a UUID".into()))?;
        let amount = Cents::parse_amount(amount_text, SubCents::Reject).map_err(|e| match e {
            AmountError::NotANumber => RequestError::Malformed("`amount` must be a number".into()),
            other => RequestError::Invalid(format!("`{}`: {other}", "amount")),
        })?;
        Ok(Self { id, amount })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn request_parse_splits_malformed_from_invalid() {
        let ok = ValidPayment::parse(
            br#"{"correlationId":"4A7901B8-7D26-4D9D-AA19-4DC1C7CF60B3","amount":19.90}"#,
        )
        .unwrap();
        assert_eq!(ok.id.to_string(), "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3");
        assert_eq!(ok.amount, Cents::new(1990));

        let malformed = [
            &b"not json"[..],
            br#"[1,2]"#,
            br#"{"amount":19.90}"#,
            br#"{"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"}"#,
            br#"{"correlationId":12,"amount":19.90}"#,
            br#"{"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3","amount":"19.90"}"#,
            br#"{"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3","amount":null}"#,
            br#"{"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3","amount":19.90"#,
        ];
        for body in malformed {
            assert!(
                matches!(ValidPayment::parse(body), Err(RequestError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let invalid = [
            &br#"{"correlationId":"nope","amount":19.90}"#[..],
            br#"{"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3","amount":0}"#,
            br#"{"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3","amount":-3}"#,
            br#"{"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3","amount":1.001}"#,
            br#"{"correlationId":"4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3","amount":1e14}"#,
        ];
        for body in invalid {
            assert!(
                matches!(ValidPayment::parse(body), Err(RequestError::Invalid(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    /// What a strict RFC 8259 parser says about a body.
    fn strict_json(body: &[u8]) -> bool {
        std::str::from_utf8(body)
            .is_ok_and(|s| serde_json::from_str::<serde_json::Value>(s).is_ok())
    }

    #[test]
    fn a_body_must_be_strict_json_also_in_the_fields_we_ignore() {
        let id = "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3";
        let with = |extra: &[u8]| {
            let mut body = format!(r#"{{"correlationId":"{id}","amount":19.90,"x":"#).into_bytes();
            body.extend_from_slice(extra);
            body.push(b'}');
            body
        };
        let bad: [&[u8]; 9] = [
            b"\"\xff\"",            // not UTF-8
            b"\"\xed\xa0\x80\"",    // a UTF-8-encoded surrogate
            b"\"\xc0\xaf\"",        // an overlong encoding
            br#""\ud800""#,         // a lone surrogate escape
            br#"[{"y":"\udc00"}]"#, // nested, deep in a value we ignore
            br#"{"\ud800":1}"#,     // in a key we ignore
            b"1e400",               // a number no parser can represent
            b"\"\x01\"",            // a raw control character
            br#""\q""#,             // an unknown escape
        ];
        for extra in bad {
            let body = with(extra);
            assert!(!strict_json(&body), "{}", String::from_utf8_lossy(&body));
            assert!(
                matches!(ValidPayment::parse(&body), Err(RequestError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
        let good: [&[u8]; 4] = [
            b"\"\\ud83d\\ude00 \\u00e9 \xc3\xa9\"",
            br#"{"a":[1,-2.5e300,null,true,{"b":"c"}]}"#,
            b"18446744073709551616",
            br#""""#,
        ];
        for extra in good {
            let body = with(extra);
            assert!(strict_json(&body), "{}", String::from_utf8_lossy(&body));
            assert!(
                ValidPayment::parse(&body).is_ok(),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
        let duplicate = format!(r#"{{"correlationId":"{id}","amount":1,"amount":2}}"#);
        assert!(matches!(
            ValidPayment::parse(duplicate.as_bytes()),
            Err(RequestError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_bodies(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ValidPayment::parse(&body);
        }
    }
}
