//! The Redis key layout. This is the only module that formats a key.
//!
//! Every key carries the same hash tag `{<prefix>}`, so every script touches keys of one
//! slot and the layout runs unchanged on Redis Cluster (one prefix per partition).
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{p}:stream` | stream | one entry per accepted payment: `id`, `amt` (cents) |
//! | `{p}:pay:<uuid>` | hash | status, amount, entry id, pinned processor and whether an attempt there is unresolved, the Redis time from which a 404 proves absence, requestedAt, attempts |
//! | `{p}:sum:<proc>:n` / `:c` | hash | count / cents recorded for `proc` per bucket of requestedAt: field `<s>` a UTC second, `m<minute>`, `h<hour>`, `d<day>` (numbers since the epoch), `t<tenth of a second>` (until its second's detail is dropped; a payment recorded later than that leaves its pair); a roll-up bucket's cents `sat` when it would overflow (read its parts instead) |
//! | `{p}:sum:<proc>:days` | zset | the days present in the two hashes (score = day) |
//! | `{p}:sum:<proc>:ev` | zset | one member `<uuid>:<cents>` per payment, score = requestedAt ms |
//! | `{p}:sum:<proc>:ms` | hash | compacted `ev` (`retention`): UTC second → `<ms offset>:<count>:<cents> ...` |
//! | `{p}:sum:<proc>:ms_from` | string | the first UTC second whose millisecond detail is kept (`drop_detail.lua`; absent until its first run: all of it) |
//! | `{p}:sum:<proc>:secs` | zset | written by versions before the roll-ups (the first release): seconds whose minutes, hours and day are not rolled up yet (`rebuild.lua` drains it) |
//! | `{p}:dead` | stream | dead letters: `id`, `amt`, `reason` (or `entry`, `reason` for an entry naming no payment) |

use crate::payment::{PaymentId, Processor};

/// Consumer group of the worker pool on the payment stream.
pub const GROUP: &str = "workers";

/// Field names of the status hash.
pub mod field {
    pub const AMOUNT: &str = "amt";
    pub const STATUS: &str = "st";
    pub const PROCESSOR: &str = "proc";
    pub const REQUESTED_AT: &str = "req";
    /// The earliest `requestedAt` any attempt of this payment sent (written by `begin.lua`
    /// before the send): a processor showing an older one holds an earlier payment.
    pub const FIRST_REQUESTED_AT: &str = "rq0";
    pub const ATTEMPTS: &str = "att";
    pub const ACCEPTED_AT: &str = "at";
    pub const UPDATED_AT: &str = "upd";
    pub const AMBIGUOUS: &str = "amb";
    pub const AMBIGUOUS_AT: &str = "ambat";
    /// Redis time (ms) from which a lookup answering 404 proves no attempt can be stored.
    pub const SAFE_AT: &str = "safe";
    /// The same bound for the attempts before the current one (0 = none unresolved).
    pub const PRIOR_SAFE_AT: &str = "safe0";
    /// The processor that answered 422: the payment never leaves it on a 404.
    pub const HELD_BY: &str = "held";
    /// The payment's stream entry id.
    pub const ENTRY_ID: &str = "sid";
    pub const REASON: &str = "err";
}

/// The summary's keys of one processor (see the table above).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryKeys {
    /// Count per bucket (second, minute, hour, day, tenth of a second).
    pub counts: String,
    /// Cents per bucket, or `sat` for a roll-up bucket that would overflow.
    pub cents: String,
    /// Index of the days present: what an open or long window enumerates.
    pub days: String,
    /// One member per payment, by requestedAt ms: the partial seconds at a window's edges.
    pub events: String,
    /// `events` older than the detail horizon, compacted per second (`compact.lua`).
    pub detail: String,
    /// The seconds index of versions before the roll-ups: seconds not rolled up yet.
    pub legacy_seconds: String,
    /// The first second whose millisecond detail is kept (`SUMMARY_DETAIL_RETENTION`).
    pub detail_kept_from: String,
}

impl SummaryKeys {
    /// Every key, for purge and cleanup.
    pub fn all(&self) -> [&str; 7] {
        [
            &self.counts,
            &self.cents,
            &self.days,
            &self.events,
            &self.detail,
            &self.legacy_seconds,
            &self.detail_kept_from,
        ]
    }
}

/// A summary bucket of requestedAt: its field in the counts and cents hashes. Seconds keep
/// the bare number (the layout before the roll-ups), the roll-ups a one-letter prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bucket {
    Second(i64),
    Minute(i64),
    Hour(i64),
    Day(i64),
    /// A tenth of a second (`ms div 100`), for the partial seconds at a window's edges:
    /// kept only as long as its second's millisecond detail (`drop_detail.lua`).
    Tenth(i64),
}

impl Bucket {
    /// The field name (`scripts/record.lua` and `summary.lua` build the same).
    pub fn field(self) -> String {
        match self {
            Bucket::Second(s) => s.to_string(),
            Bucket::Minute(m) => format!("m{m}"),
            Bucket::Hour(h) => format!("h{h}"),
            Bucket::Day(d) => format!("d{d}"),
            Bucket::Tenth(t) => format!("t{t}"),
        }
    }

    /// The four buckets a payment of UTC second `second` is counted in.
    pub fn all_of(second: i64) -> [Bucket; 4] {
        [
            Bucket::Second(second),
            Bucket::Minute(second.div_euclid(60)),
            Bucket::Hour(second.div_euclid(3600)),
            Bucket::Day(second.div_euclid(86_400)),
        ]
    }
}

/// Builds every key for one prefix. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Keys {
    tag: String,
    stream: String,
    dead: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        let tag = format!("{{{prefix}}}");
        Self {
            stream: format!("{tag}:stream"),
            dead: format!("{tag}:dead"),
            tag,
        }
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    pub fn dead_letters(&self) -> &str {
        &self.dead
    }

    pub fn payment(&self, id: &PaymentId) -> String {
        let mut buf = [0u8; 36];
        let mut key = String::with_capacity(self.tag.len() + 5 + 36);
        key.push_str(&self.tag);
        key.push_str(":pay:");
        key.push_str(id.encode(&mut buf));
        key
    }

    /// The part of a payment key before the id (`{p}:pay:`), for scripts that build
    /// payment keys from ids they read.
    pub fn payment_prefix(&self) -> String {
        format!("{}:pay:", self.tag)
    }

    /// Pattern matching every payment hash (for purge).
    pub fn payment_pattern(&self) -> String {
        format!("{}:pay:*", self.tag)
    }

    /// Set while a purge runs (`purge.lua`): `record.lua` refuses meanwhile, so no payment's
    /// summary share lands between the purge's start and its final wipe of the summary.
    pub fn purging(&self) -> String {
        format!("{}:purging", self.tag)
    }

    /// The summary keys of one processor.
    pub fn summary(&self, processor: Processor) -> SummaryKeys {
        let base = format!("{}:sum:{}", self.tag, processor.as_str());
        SummaryKeys {
            counts: format!("{base}:n"),
            cents: format!("{base}:c"),
            days: format!("{base}:days"),
            events: format!("{base}:ev"),
            detail: format!("{base}:ms"),
            legacy_seconds: format!("{base}:secs"),
            detail_kept_from: format!("{base}:ms_from"),
        }
    }

    /// Key of the health report of a processor (written by the health leader).
    pub fn health(&self, processor: Processor) -> String {
        format!("{}:health:{}", self.tag, processor.as_str())
    }

    /// Key of the health-poller lease of a processor.
    pub fn health_lease(&self, processor: Processor) -> String {
        format!("{}:health-lease:{}", self.tag, processor.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_key_carries_the_hash_tag() {
        let keys = Keys::new("ps");
        let id: PaymentId = "4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3".parse().unwrap();
        let mut all = vec![
            keys.stream().to_string(),
            keys.dead_letters().to_string(),
            keys.payment(&id),
            keys.payment_pattern(),
            keys.health(Processor::Default),
            keys.health_lease(Processor::Fallback),
        ];
        for p in Processor::ALL {
            all.extend(keys.summary(p).all().map(str::to_owned));
        }
        for key in all {
            assert!(key.starts_with("{ps}:"), "{key}");
        }
        assert_eq!(
            keys.payment(&id),
            "{ps}:pay:4a7901b8-7d26-4d9d-aa19-4dc1c7cf60b3"
        );
    }

    #[test]
    fn a_payment_counts_in_its_second_minute_hour_and_day() {
        // 2025-07-15T12:34:56Z, and one second before the epoch.
        let fields = Bucket::all_of(1_752_582_896).map(Bucket::field);
        assert_eq!(fields, ["1752582896", "m29209714", "h486828", "d20284"]);
        let fields = Bucket::all_of(-1).map(Bucket::field);
        assert_eq!(fields, ["-1", "m-1", "h-1", "d-1"]);
    }
}
