//! The model's values as the setup writes them into Redis and the read-back finds them
//! again: times (see [`Clock`]), payments, entry ids, consumers and processors.

use paystream_common::keys::Bucket;
use paystream_common::payment::{PaymentId, Processor, Status as PayStatus};
use uuid::Uuid;

use crate::protocol::{Gen, Proc, Time};
use crate::scripts::{Redis, St, NP};

use super::cases::{Input, NOW};

/// Real milliseconds per model tick: far more than a case takes.
pub const TICK_MS: i64 = 10_000;
/// Every payment's amount (the model has none).
pub const CENTS: i64 = 1990;

/// The real Redis time of each model time in one case.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Real ms of model time 0.
    pub base: i64,
}

impl Clock {
    pub fn ms(self, t: Time) -> i64 {
        self.base + i64::from(t) * TICK_MS
    }

    /// The model time of a Redis time the case wrote or a script computed (`0`: none).
    pub fn time(self, ms: i64) -> Result<Option<Time>, String> {
        if ms == 0 {
            return Ok(None);
        }
        let offset = ms - self.base;
        let t = (offset + TICK_MS / 2).div_euclid(TICK_MS);
        let off = offset - t * TICK_MS;
        match Time::try_from(t) {
            Ok(t) if off.abs() <= TICK_MS / 5 => Ok(Some(t)),
            _ => Err(format!("{ms} ms is no model time ({off} ms from tick {t})")),
        }
    }

    /// The `now` a script returned must be the case's.
    pub fn check_now(self, ms: i64) -> Result<(), String> {
        match self.time(ms)? {
            Some(NOW) => Ok(()),
            t => Err(format!("the script's now {ms} is tick {t:?}, not {NOW}")),
        }
    }
}

pub fn payment_id(p: usize) -> PaymentId {
    PaymentId::new(Uuid::from_u128(0x5eed_0000_0000_0000 + p as u128))
}

pub fn uuid_text(p: usize) -> String {
    payment_id(p).as_uuid().hyphenated().to_string()
}

/// The payment of a correlation id written by the setup.
pub fn payment_of(text: &str) -> Result<usize, String> {
    (0..NP)
        .find(|&p| uuid_text(p) == text)
        .ok_or_else(|| format!("unknown payment {text:?}"))
}

/// Where the ids of entries written after a purge started begin: past every other.
const LATE: usize = 1_000_000;

/// Entry `g` of payment `p`, as written before a purge started (and outside a purge).
pub fn entry_id(p: usize, g: Gen) -> String {
    format!("{}-0", 1 + 1000 * p + usize::from(g))
}

/// Entry `g` of payment `p` as the case writes it: after every other if it is written after
/// the purge started (the stream's ids are the order of writing, across payments).
pub fn real_id(input: &Input, p: usize, g: Gen) -> String {
    if input.late(p, g) {
        format!("{}-0", LATE + 1 + 1000 * p + usize::from(g))
    } else {
        entry_id(p, g)
    }
}

/// Where the stream ended when the purge started: its newest entry of each payment then
/// (`None`: no entry yet).
pub fn purge_start_id(last: &[Gen; NP]) -> Option<String> {
    (0..NP)
        .filter(|&p| last[p] > 0)
        .map(|p| entry_id(p, last[p]))
        .next_back()
}

/// `(payment, entry)` of an id written by the setup; `None` for an id `XADD *` made.
pub fn preset_entry(id: &str) -> Option<(usize, Gen)> {
    let (ms, seq) = id.split_once('-')?;
    let ms: usize = ms.parse().ok()?;
    let ms = if ms > LATE { ms - LATE } else { ms };
    if seq != "0" || !(1..1000 * NP + 1).contains(&ms) {
        return None;
    }
    Some(((ms - 1) / 1000, Gen::try_from((ms - 1) % 1000).ok()?))
}

/// A stream entry id as a pair that orders as the ids do.
pub fn id_order(id: &str) -> Result<(u64, u64), String> {
    id.split_once('-')
        .and_then(|(ms, seq)| Some((ms.parse().ok()?, seq.parse().ok()?)))
        .ok_or_else(|| format!("entry id {id:?}"))
}

pub fn consumer(c: u8) -> String {
    format!("c{c}")
}

/// The consumer a name written by the setup (or a script given one) stands for.
pub fn consumer_of(name: &str) -> Result<u8, String> {
    name.strip_prefix('c')
        .and_then(|c| c.parse::<u8>().ok())
        .filter(|&c| usize::from(c) <= NP)
        .ok_or(format!("unknown consumer {name:?}"))
}

pub fn processor(p: Proc) -> Processor {
    match p {
        Proc::Default => Processor::Default,
        Proc::Fallback => Processor::Fallback,
    }
}

pub fn proc_of(name: &str) -> Result<Proc, String> {
    Proc::ALL
        .into_iter()
        .find(|p| p.name() == name)
        .ok_or_else(|| format!("unknown processor {name:?}"))
}

pub fn st_of(status: PayStatus) -> St {
    match status {
        PayStatus::Queued => St::Queued,
        PayStatus::Processing => St::Processing,
        PayStatus::Processed => St::Processed,
        PayStatus::Failed => St::Failed,
    }
}

/// The entry the model gives a payment next (one past any it names).
pub fn fresh(r: &Redis, p: usize) -> Gen {
    let in_stream = r
        .stream
        .iter()
        .chain(&r.orphans)
        .filter(|e| usize::from(e.payment) == p);
    let sid = r.status[p].map(|h| h.sid);
    in_stream.map(|e| e.id).chain(sid).max().unwrap_or(0) + 1
}

/// The summary fields (second, minute, hour, day, tenth) of a requestedAt.
pub fn bucket_fields(ms: i64) -> Vec<String> {
    let mut fields: Vec<String> = Bucket::all_of(ms.div_euclid(1000))
        .iter()
        .map(|b| b.field())
        .collect();
    fields.push(Bucket::Tenth(ms.div_euclid(100)).field());
    fields
}
