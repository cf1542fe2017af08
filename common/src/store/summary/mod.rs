//! `GET /payments-summary`: both processors' totals over a window, exact to the millisecond
//! and the cent, read in one atomic step: `summary.lua` adds the whole buckets the
//! [`plan`] lists and returns, raw, the reads of the partial seconds at the window's edges,
//! which are parsed here, through their tenths of a second and per payment (`ev` and the
//! compacted detail).
//!
//! Before it: the summary buckets written by [`super::record`] (`record.lua`), compacted and
//! dropped by [`crate::retention`]. After it: the gateway's summary handler, which renders
//! the [`Summary`].

use std::sync::LazyLock;

use redis::{Script, Value};

use super::{observe, Store};
use crate::entry::as_str;
use crate::error::StoreError;
use crate::keys::Bucket;
use crate::payment::Processor;
use crate::store::types::{Summary, Totals, Window};

mod plan;

use plan::{EdgeRange, Edges, SummaryPlan};

static SUMMARY: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../scripts/summary.lua")));

impl Store {
    /// Both processors' totals over `window`, read in one atomic step (one `summary.lua`
    /// call, which also runs while Redis memory is full): it adds the whole buckets — at most ~300 plus the days of the window,
    /// whatever its length — and the partial seconds at its edges are read here to the
    /// millisecond: their whole tenths of a second from their buckets, and the rest (at most
    /// half a tenth at each end) per payment from `ev` and the compacted detail (Redis sends
    /// them; parsing them costs this process, not Redis' single thread). When an edge
    /// second's tenths do not add up to it (payments recorded by a version before the
    /// tenths), the whole window is read again, in a second atomic step, without tenths.
    pub async fn summary(&self, window: Window) -> Result<Summary, StoreError> {
        let plan = SummaryPlan::of(window, Edges::Tenths);
        if let Some(summary) = self.read_summary(&plan).await? {
            return Ok(summary);
        }
        self.rereads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        metrics::counter!(crate::metrics::SUMMARY_REREADS_TOTAL).increment(1);
        self.read_summary(&SummaryPlan::of(window, Edges::Payments))
            .await?
            .ok_or_else(|| StoreError::Unexpected("summary: no tenths read, yet refused".into()))
    }

    /// How many summaries this store (and its clones) read a second time without tenths.
    pub fn summary_rereads(&self) -> u64 {
        self.rereads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One atomic read of `plan`; `None` when an edge second's tenths do not add up to it.
    async fn read_summary(&self, plan: &SummaryPlan) -> Result<Option<Summary>, StoreError> {
        if !plan.reads_edges() && !plan.reads_buckets() {
            // An empty window (`from` after `to`): nothing to read.
            return Ok(Some(Summary::default()));
        }
        let keys = Processor::ALL.map(|p| self.keys.summary(p));
        let mut invocation = SUMMARY.prepare_invoke();
        for k in &keys {
            invocation
                .key(&k.counts)
                .key(&k.cents)
                .key(&k.days)
                .key(&k.legacy_seconds);
        }
        for arg in plan.args() {
            invocation.arg(arg);
        }
        // The edge reads run inside the script, after its bucket reads: one atomic step
        // that also works while Redis memory is full (a MULTI would be refused then).
        let mut reads = EdgeReads::default();
        for k in &keys {
            if plan.reads_edges() {
                // From which second the detail is kept (`drop_detail.lua`).
                reads.push(&["GET", &k.detail_kept_from]);
            }
            for e in &plan.edges {
                let second = e.from.div_euclid(1000).to_string();
                reads.push(&[
                    "ZRANGEBYSCORE",
                    &k.events,
                    &e.from.to_string(),
                    &e.to.to_string(),
                ]);
                reads.push(&["HGET", &k.detail, &second]);
                // Whether the second has payments: one without needs no detail.
                reads.push(&["HGET", &k.counts, &second]);
            }
            for e in &plan.fine {
                let second = e.second();
                reads.push(&["HGET", &k.detail, &second.to_string()]);
                // The second's count and cents, then its ten tenths'.
                let tenths: Vec<String> = (second * 10..second * 10 + 10)
                    .map(|t| Bucket::Tenth(t).field())
                    .collect();
                for hash in [&k.counts, &k.cents] {
                    let mut hmget = vec!["HMGET", hash.as_str()];
                    let second = second.to_string();
                    hmget.push(&second);
                    hmget.extend(tenths.iter().map(String::as_str));
                    reads.push(&hmget);
                }
                for piece in &e.pieces {
                    reads.push(&[
                        "ZRANGEBYSCORE",
                        &k.events,
                        &piece.from.to_string(),
                        &piece.to.to_string(),
                    ]);
                }
            }
        }
        for arg in reads.args {
            invocation.arg(arg);
        }
        let mut conn = self.conn.clone();
        let started = std::time::Instant::now();
        let reply: Value = invocation.invoke_async(&mut conn).await?;
        observe("summary", started);
        let (sides, reads) = match reply {
            Value::Array(parts) if parts.len() == 2 => {
                let mut parts = parts.into_iter();
                match (parts.next(), parts.next()) {
                    (Some(Value::Array(sides)), Some(Value::Array(reads))) if sides.len() == 2 => {
                        (sides, reads)
                    }
                    other => return Err(StoreError::Unexpected(format!("summary: {other:?}"))),
                }
            }
            other => return Err(StoreError::Unexpected(format!("summary: {other:?}"))),
        };
        let mut reply = reads.into_iter();
        let mut sums = [Sum::default(); 2];
        if plan.reads_buckets() {
            for (sum, side) in sums.iter_mut().zip(sides) {
                add_buckets(sum, side)?;
            }
        }
        let missing = || StoreError::Unexpected("summary: edges missing".into());
        for sum in &mut sums {
            let kept_from = if plan.reads_edges() {
                let reply = reply.next();
                let text = reply.as_ref().and_then(as_str);
                text.map(|s| {
                    s.parse::<i64>()
                        .map_err(|_| StoreError::Unexpected(format!("summary ms_from {s:?}")))
                })
                .transpose()?
            } else {
                None
            };
            // An edge in a second with payments whose detail was dropped cannot be read
            // exactly.
            let refuse = |second: i64, paid: bool| match kept_from {
                Some(kept) if paid && second < kept => Err(StoreError::DetailDropped {
                    kept_from: kept * 1000,
                }),
                _ => Ok(()),
            };
            for e in &plan.edges {
                let (Some(events), Some(detail), Some(count)) =
                    (reply.next(), reply.next(), reply.next())
                else {
                    return Err(missing());
                };
                let second = e.from.div_euclid(1000);
                refuse(second, as_str(&count).is_some_and(|n| n != "0"))?;
                sum.add(per_payment(&events, &detail, e)?, e.subtract);
            }
            for e in &plan.fine {
                let (Some(detail), Some(counts), Some(cents)) =
                    (reply.next(), reply.next(), reply.next())
                else {
                    return Err(missing());
                };
                let second = e.second();
                let counts = integers(&counts)?;
                let cents = integers(&cents)?;
                let (Some((&count, tenths)), Some((&second_cents, cents))) =
                    (counts.split_first(), cents.split_first())
                else {
                    return Err(StoreError::Unexpected(format!("summary tenths {counts:?}")));
                };
                if tenths.len() != 10 || cents.len() != 10 {
                    return Err(StoreError::Unexpected(format!("summary tenths {counts:?}")));
                }
                refuse(second, count != 0)?;
                let uses_tenths = !e.tenths.is_empty() || e.pieces.iter().any(|p| p.subtract);
                let add_up = |v: &[i64]| v.iter().map(|&n| i128::from(n)).sum::<i128>();
                if uses_tenths
                    && (add_up(tenths) != i128::from(count)
                        || add_up(cents) != i128::from(second_cents))
                {
                    return Ok(None);
                }
                let mut part = Sum::default();
                for &t in &e.tenths {
                    // A tenth of this second: 0..10.
                    let k = (t - second * 10) as usize;
                    part.requests += i128::from(tenths[k]);
                    part.cents += i128::from(cents[k]);
                }
                for piece in &e.pieces {
                    let events = reply.next().ok_or_else(missing)?;
                    part.add(per_payment(&events, &detail, piece)?, piece.subtract);
                }
                sum.add(part, false);
            }
        }
        let [default, fallback] = sums.map(Sum::totals);
        Ok(Some(Summary {
            default: default?,
            fallback: fallback?,
        }))
    }
}

/// A processor's running total while a summary reply is read: signed, since the rest of an
/// edge second read whole is subtracted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sum {
    requests: i128,
    cents: i128,
}

impl Sum {
    fn add(&mut self, part: Sum, subtract: bool) {
        let sign = if subtract { -1 } else { 1 };
        self.requests += sign * part.requests;
        self.cents += sign * part.cents;
    }

    fn totals(self) -> Result<Totals, StoreError> {
        let requests = u64::try_from(self.requests)
            .map_err(|_| StoreError::Unexpected(format!("summary count {}", self.requests)))?;
        Ok(Totals {
            requests,
            cents: self.cents,
        })
    }
}

/// One processor's part of `summary.lua`'s reply: `{count, {cents of each bucket}}`.
fn add_buckets(sum: &mut Sum, side: Value) -> Result<(), StoreError> {
    let Value::Array(parts) = side else {
        return Err(StoreError::Unexpected(format!("summary side: {side:?}")));
    };
    let mut parts = parts.into_iter();
    if let Some(Value::Int(n)) = parts.next() {
        sum.requests += i128::from(n);
    }
    if let Some(Value::Array(cents)) = parts.next() {
        for c in &cents {
            sum.cents += as_str(c)
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| StoreError::Unexpected(format!("summary cents {c:?}")))?
                as i128;
        }
    }
    Ok(())
}

/// Adds the payments of an edge range read from the per-payment index (`<id>:<cents>`).
fn add_events(sum: &mut Sum, events: &Value) -> Result<(), StoreError> {
    let members = match events {
        Value::Array(members) => members.as_slice(),
        Value::Nil => &[],
        other => return Err(StoreError::Unexpected(format!("summary events: {other:?}"))),
    };
    for member in members {
        let cents = as_str(member)
            .and_then(|m| m.rsplit_once(':'))
            .and_then(|(_, c)| c.parse::<i64>().ok())
            .ok_or_else(|| StoreError::Unexpected(format!("summary member {member:?}")))?;
        sum.requests += 1;
        sum.cents += i128::from(cents);
    }
    Ok(())
}

/// The payments of `range` (within one second) read one by one: its `ev` members
/// (`events`, a `ZRANGEBYSCORE` reply) and its offsets in the second's compacted `detail`.
fn per_payment(events: &Value, detail: &Value, range: &EdgeRange) -> Result<Sum, StoreError> {
    let mut sum = Sum::default();
    add_events(&mut sum, events)?;
    if let Some(packed) = as_str(detail) {
        let start = range.from.div_euclid(1000) * 1000;
        add_compacted(&mut sum, packed, range.from - start, range.to - start)?;
    }
    Ok(sum)
}

/// The integers of an `HMGET` reply, 0 for an absent field.
fn integers(reply: &Value) -> Result<Vec<i64>, StoreError> {
    let Value::Array(fields) = reply else {
        return Err(StoreError::Unexpected(format!("summary HMGET {reply:?}")));
    };
    fields
        .iter()
        .map(|f| match f {
            Value::Nil => Ok(0),
            f => as_str(f)
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| StoreError::Unexpected(format!("summary field {f:?}"))),
        })
        .collect()
}

/// Adds the millisecond offsets `lo..=hi` of one second's compacted detail
/// (`"<offset>:<count>:<cents> ..."`, `compact.lua`).
fn add_compacted(sum: &mut Sum, packed: &str, lo: i64, hi: i64) -> Result<(), StoreError> {
    let bad = |entry: &str| StoreError::Unexpected(format!("summary detail {entry:?}"));
    // compact.lua writes the offsets in order: only those up to `hi` are looked at, and
    // only those from `lo` on are parsed whole.
    for entry in packed.split(' ').filter(|e| !e.is_empty()) {
        let (offset, rest) = entry.split_once(':').ok_or_else(|| bad(entry))?;
        let offset = offset.parse::<i64>().map_err(|_| bad(entry))?;
        if offset > hi {
            break;
        }
        if offset < lo {
            continue;
        }
        let (count, cents) = rest.split_once(':').ok_or_else(|| bad(entry))?;
        let (Ok(count), Ok(cents)) = (count.parse::<u64>(), cents.parse::<i128>()) else {
            return Err(bad(entry));
        };
        sum.requests += i128::from(count);
        sum.cents += cents;
    }
    Ok(())
}

/// The edge reads `summary.lua` runs after its bucket reads, as its trailing arguments:
/// each command as `<argument count> <command> <arguments>`.
#[derive(Default)]
struct EdgeReads {
    args: Vec<String>,
}

impl EdgeReads {
    fn push(&mut self, command: &[&str]) {
        self.args.push(command.len().to_string());
        self.args.extend(command.iter().map(|a| a.to_string()));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn compacted_detail_adds_only_the_offsets_asked_for() {
        let packed = "0:1:1990 7:2:4000 999:12:12000000000000000";
        let mut t = Sum::default();
        add_compacted(&mut t, packed, 0, 999).unwrap();
        assert_eq!((t.requests, t.cents), (15, 12_000_000_000_005_990));
        let mut t = Sum::default();
        add_compacted(&mut t, packed, 1, 7).unwrap();
        assert_eq!((t.requests, t.cents), (2, 4000));
        let mut t = Sum::default();
        add_compacted(&mut t, packed, 8, 998).unwrap();
        assert_eq!(t, Sum::default());
        assert!(add_compacted(&mut t, "0:1", 0, 999).is_err());
        assert!(add_compacted(&mut t, "x:1:2", 0, 999).is_err());
        assert!(add_compacted(&mut t, "0:1:1 3:1", 0, 999).is_err());
    }

    #[test]
    fn a_sum_subtracts_the_rest_of_a_second_and_refuses_a_negative_count() {
        let mut sum = Sum::default();
        sum.add(
            Sum {
                requests: 3,
                cents: 30,
            },
            false,
        );
        sum.add(
            Sum {
                requests: 1,
                cents: 10,
            },
            true,
        );
        assert_eq!(
            sum.totals().unwrap(),
            Totals {
                requests: 2,
                cents: 20
            }
        );
        sum.add(
            Sum {
                requests: 3,
                cents: 0,
            },
            true,
        );
        assert!(sum.totals().is_err());
    }
}
