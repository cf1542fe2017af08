//! The Redis side of the model: the data the scripts keep (status hash, payment stream with
//! its pending entries list, dead-letter stream, summary) and one function per script of
//! `common/src/scripts/`, named after it, doing what the Lua does in the same order.
//!
//! [`CONTRACTS`] copies each script's header (its `KEYS`, `ARGV` and `Returns` lines) and its
//! memory flag; `contract::script_headers_match_the_model` fails when a script's contract
//! changes and this file was not updated with it.
//!
//! `accept.lua`, `begin.lua` and `record.lua` take a batch of payments per call and run the
//! one-payment step for each, in order, atomically: a batch is one of the interleavings the
//! model already explores (its payments' steps back to back), so the functions here model
//! one payment each. Not modelled: the status hash's expiry after `PAYMENT_RETENTION` (the
//! idempotency window, beyond any run here; an id accepted again after it is a processor
//! holding an earlier payment from the start, `Config::earlier_use`), `fail.lua`'s `entry` mode (undecodable stream
//! entries), begin's longest bound for pins written by older versions, and `record.lua`'s
//! `overflow` (its second's summary bucket at 2^63 cents: the payment stays pending, nothing
//! changes), two purges whose runs overlap (a second purge is refused while the flag is held,
//! so it only starts once the flag expired, which to the first is the same as the flag gone:
//! the model's flag expiry, after which the operator starts the purge again), and `drop_consumers.lua`'s idle threshold (every consumer without a pending
//! entry may be idle long enough, which only adds schedules).

use crate::protocol::{Att, Gen, Proc, Time};

/// Most payments and workers a model can have (arrays keep states small and hashable).
pub const NP: usize = 2;

/// `st` of the status hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum St {
    Queued,
    Processing,
    Processed,
    Failed,
}

impl St {
    pub fn name(self) -> &'static str {
        match self {
            St::Queued => "queued",
            St::Processing => "processing",
            St::Processed => "processed",
            St::Failed => "failed",
        }
    }
}

/// The status hash of one payment (`{p}:pay:<id>`), the fields the protocol reads. Times are
/// Redis-clock ms; `None` stands for a missing field or `'0'`, which the scripts read as 0,
/// earlier than any real time (so `Option`'s order, `None` first, is the scripts' order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Status {
    pub st: St,
    /// `proc`: the pinned (or recording) processor.
    pub proc: Option<Proc>,
    /// `amb = '1'`: an attempt's outcome is unknown.
    pub amb: bool,
    /// `safe`: from this time a 404 proves no attempt so far can still be stored.
    pub safe: Option<Time>,
    /// `safe0`: the same bound for the attempts before the current one.
    pub safe0: Option<Time>,
    /// `held`: the processor that answered 422.
    pub held: Option<Proc>,
    /// `att`: the attempt counter.
    pub att: Att,
    /// `sid`: the payment's current stream entry.
    pub sid: Gen,
    /// `rq0`: the earliest requestedAt any attempt sent (a worker's clock, not Redis').
    /// Kept only where the model has requestedAt apart from the send time (`Config::clocks`).
    pub rq0: Option<Time>,
    /// `at`: when accept.lua accepted the payment. Read only by seeded fault (o); [`accept`]
    /// leaves it out and the configurations that have it set it at their start.
    pub at: Option<Time>,
}

/// One entry of the payment stream, with its place in the consumer group's pending list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entry {
    pub payment: u8,
    pub id: Gen,
    /// `None`: not delivered yet (XREADGROUP `>` hands it out). `Some`: pending on that
    /// consumer since that time (what XPENDING's idle is measured from).
    pub pending: Option<(u8, Time)>,
    /// The acceptance time the entry carries (`at`), when accept.lua pinned its first attempt
    /// (a re-driven entry carries none): a consumer that reads it within the send window of
    /// that time sends the first attempt without begin.lua.
    pub at: Option<Time>,
}

/// Everything Redis holds for the model, as one value so that a crash under `everysec` can
/// roll it back to the last synced copy.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Redis {
    pub status: [Option<Status>; NP],
    /// The payment stream, sorted.
    pub stream: Vec<Entry>,
    /// Entries of the dead-letter stream, per payment.
    pub dead: [u8; NP],
    /// What `record` added to the summary: (payment, processor, requestedAt), sorted.
    pub summary: Vec<(u8, Proc, Time)>,
    /// The purge flag (`{p}:purging`) and the token of the purge that holds it:
    /// `record.lua` refuses while it is set.
    pub purging: Option<u8>,
    /// Entries of the payment stream that left the pending list with their consumer (XGROUP
    /// DELCONSUMER): delivered already, so XREADGROUP `>` never hands them out again, and
    /// pending on nobody, so XAUTOCLAIM never finds them. Only XDEL or XTRIM removes them.
    pub orphans: Vec<Entry>,
    /// Per consumer (one per worker): deleted from the group and not created again since
    /// (XREADGROUP and XAUTOCLAIM create the consumer they name).
    pub deleted: [bool; NP],
}

impl Redis {
    fn entry_at(&self, payment: usize, id: Gen) -> Option<usize> {
        self.stream
            .iter()
            .position(|e| e.payment as usize == payment && e.id == id)
    }

    /// XACK + XDEL of one entry (the `ack()` of record.lua and fail.lua, and `Store::ack`).
    pub fn ack(&mut self, payment: usize, id: Gen) {
        if let Some(i) = self.entry_at(payment, id) {
            self.stream.remove(i);
        }
        self.orphans
            .retain(|e| !(e.payment as usize == payment && e.id == id));
    }

    /// How many stream entries and payments Redis holds (what deleting frees memory of).
    pub fn held(&self) -> usize {
        self.stream.len() + self.orphans.len() + self.status.iter().flatten().count()
    }

    /// Whether a consumer has entries pending (XINFO CONSUMERS `pending`).
    pub fn has_pending(&self, consumer: u8) -> bool {
        self.stream
            .iter()
            .any(|e| e.pending.is_some_and(|(c, _)| c == consumer))
    }

    /// XADD to the payment stream.
    fn xadd(&mut self, payment: usize, id: Gen, at: Option<Time>) {
        self.stream.push(Entry {
            payment: payment as u8,
            id,
            pending: None,
            at,
        });
        self.stream.sort();
    }

    /// XPENDING of one entry: its consumer, if it is pending.
    pub fn owner(&self, payment: usize, id: Gen) -> Option<u8> {
        self.entry_at(payment, id)
            .and_then(|i| self.stream[i].pending)
            .map(|(c, _)| c)
    }

    /// XCLAIM <consumer> 0 <id> JUSTID: pending entries only; resets the idle time.
    pub fn xclaim(&mut self, payment: usize, id: Gen, consumer: u8, now: Time) {
        if let Some(i) = self.entry_at(payment, id) {
            if self.stream[i].pending.is_some() {
                self.stream[i].pending = Some((consumer, now));
            }
        }
    }
}

/// Reply of accept.lua.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptReply {
    Ok(Gen),
    Dup(St),
}

/// The first attempt accept.lua pins: to default, sent by the consumer that reads the entry
/// by `now + bound - (timeout + late + grace)`, so stored by `now + bound` or never.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirstAttempt {
    pub now: Time,
    pub bound: Time,
}

/// scripts/accept.lua — `common/src/scripts/accept.lua`: status hash + XADD, together; with
/// `first`, the first attempt pinned to default as begin.lua would pin it.
pub fn accept(r: &mut Redis, payment: usize, sid: Gen, first: Option<FirstAttempt>) -> AcceptReply {
    if let Some(h) = r.status[payment] {
        // One amount per payment in the model: never 'conflict'; no backlog limit: never 'busy'.
        return AcceptReply::Dup(h.st);
    }
    r.xadd(payment, sid, first.map(|f| f.now));
    r.status[payment] = Some(Status {
        st: St::Queued,
        proc: first.map(|_| Proc::Default),
        amb: first.is_some(),
        safe: first.map(|f| f.now + f.bound),
        safe0: None,
        held: None,
        att: Att::from(first.is_some()),
        sid,
        rq0: first.map(|f| f.now),
        at: None,
    });
    AcceptReply::Ok(sid)
}

/// Reply of begin.lua.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeginReply {
    Go {
        proc: Proc,
        att: Att,
        earlier_unresolved: bool,
    },
    Pinned {
        proc: Proc,
        safe: Option<Time>,
        att: Att,
    },
    Done(St),
    Missing,
    Lost,
}

/// scripts/begin.lua — `common/src/scripts/begin.lua`: the ownership fence, then the pin,
/// and `rq0` lowered to the `requested` the attempt will send (`None`: not kept).
/// `fence = false` is seeded fault (a): the XPENDING check is gone (XCLAIM still runs).
#[allow(clippy::too_many_arguments)]
pub fn begin(
    r: &mut Redis,
    payment: usize,
    wanted: Proc,
    consumer: u8,
    entry: Gen,
    bound: Time,
    now: Time,
    requested: Option<Time>,
    fence: bool,
    keep_earlier: bool,
) -> BeginReply {
    let Some(mut h) = r.status[payment] else {
        return BeginReply::Missing;
    };
    if matches!(h.st, St::Processed | St::Failed) {
        return BeginReply::Done(h.st);
    }
    if fence && r.owner(payment, entry) != Some(consumer) {
        return BeginReply::Lost;
    }
    r.xclaim(payment, entry, consumer, now);
    let mut prior = None;
    let mut prev_amb = false;
    if let (Some(pinned), true) = (h.proc, h.amb) {
        if pinned != wanted {
            return BeginReply::Pinned {
                proc: pinned,
                safe: h.safe,
                att: h.att,
            };
        }
        if keep_earlier {
            prior = h.safe;
        }
        prev_amb = true;
    }
    let att = h.att + 1;
    let safe = prior.max(Some(now + bound));
    h.st = St::Processing;
    h.proc = Some(wanted);
    h.amb = true;
    h.safe = safe;
    h.safe0 = prior;
    h.att = att;
    if let Some(requested) = requested {
        h.rq0 = Some(h.rq0.map_or(requested, |rq0| rq0.min(requested)));
    }
    r.status[payment] = Some(h);
    BeginReply::Go {
        proc: wanted,
        att,
        earlier_unresolved: prev_amb,
    }
}

/// Reply of unanswered.lua: (`ok` or `stale`, safe).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnansweredReply {
    pub ok: bool,
    pub safe: Option<Time>,
}

/// scripts/unanswered.lua — `common/src/scripts/unanswered.lua`: an attempt ended without a
/// usable answer; `safe` shrinks to now + grace (never below `safe0`, never above itself).
/// `entry`: the caller's stream entry, which must be the payment's (`sid`).
#[allow(clippy::too_many_arguments)]
pub fn unanswered(
    r: &mut Redis,
    payment: usize,
    entry: Gen,
    proc: Proc,
    att: Att,
    grace: Time,
    held: bool,
    now: Time,
) -> UnansweredReply {
    let Some(mut h) = r.status[payment] else {
        return UnansweredReply {
            ok: false,
            safe: None,
        };
    };
    if h.proc != Some(proc) || h.att != att || !h.amb || h.sid != entry {
        return UnansweredReply {
            ok: false,
            safe: h.safe,
        };
    }
    let safe = h.safe0.max(h.safe.min(Some(now + grace)));
    h.safe = safe;
    if held {
        h.held = Some(proc);
    }
    r.status[payment] = Some(h);
    UnansweredReply { ok: true, safe }
}

/// ARGV[3] of settle.lua.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    Failed,
    Absent { asked: Time },
}

/// Reply of settle.lua.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettleReply {
    Cleared,
    Stale,
    Held,
    Early(Option<Time>),
}

/// scripts/settle.lua — `common/src/scripts/settle.lua`: the processor does not hold it.
/// `strict` is the proposed fix: a 404 must be asked strictly after `safe` (a store may
/// still happen AT `safe`: the bound is "at most G after", and Redis TIME is floored to ms).
/// `entry`: the caller's stream entry, which must be the payment's (`sid`).
pub fn settle(
    r: &mut Redis,
    payment: usize,
    entry: Gen,
    proc: Proc,
    att: Att,
    how: Settle,
    strict: bool,
) -> SettleReply {
    let Some(mut h) = r.status[payment] else {
        return SettleReply::Stale;
    };
    if h.proc != Some(proc) || h.att != att || !h.amb || h.sid != entry {
        return SettleReply::Stale;
    }
    if h.held == Some(proc) {
        return SettleReply::Held;
    }
    match how {
        Settle::Failed => {
            if h.safe0.is_some() {
                h.safe = h.safe0;
                r.status[payment] = Some(h);
                return SettleReply::Early(h.safe0);
            }
        }
        Settle::Absent { asked } => {
            let early = if strict {
                Some(asked) <= h.safe
            } else {
                Some(asked) < h.safe
            };
            if early {
                return SettleReply::Early(h.safe);
            }
        }
    }
    h.amb = false;
    h.safe = None;
    h.safe0 = None;
    r.status[payment] = Some(h);
    SettleReply::Cleared
}

/// Reply of record.lua.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordReply {
    Ok,
    Dup,
    Missing,
}

/// scripts/record.lua — `common/src/scripts/record.lua`: status, summary and ack together.
pub fn record(
    r: &mut Redis,
    payment: usize,
    proc: Proc,
    requested_at: Time,
    entry: Option<Gen>,
) -> RecordReply {
    let ack = |r: &mut Redis| {
        if let Some(id) = entry {
            r.ack(payment, id);
        }
    };
    let Some(mut h) = r.status[payment] else {
        ack(r);
        return RecordReply::Missing;
    };
    if h.st == St::Processed {
        ack(r);
        return RecordReply::Dup;
    }
    // An answer for an entry that is not the payment's (a purge took it, the id came back).
    if entry.is_some_and(|id| id != h.sid) {
        ack(r);
        return RecordReply::Missing;
    }
    r.summary.push((payment as u8, proc, requested_at));
    r.summary.sort();
    h.st = St::Processed;
    h.proc = Some(proc);
    h.amb = false;
    h.safe = None;
    h.safe0 = None;
    h.held = None;
    r.status[payment] = Some(h);
    ack(r);
    RecordReply::Ok
}

/// Reply of fail.lua.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailReply {
    Ok,
    Processed,
    Unresolved,
    Missing,
    /// 'keep' by a consumer that does not own the entry, or for an attempt not the latest.
    Stale,
}

/// scripts/fail.lua — `common/src/scripts/fail.lua`: dead letter + ack, together. `keep`:
/// `Some((consumer, attempt))` for the 'keep' mode (pin kept), checked against the entry's
/// owner and the payment's latest attempt. (The model's processors never answer 422 for a
/// payment their lookup cannot show, so no schedule reaches 'keep'; the check is tested
/// against a real Redis: `common/tests/store/scripts.rs`.)
pub fn fail(
    r: &mut Redis,
    payment: usize,
    entry: Option<Gen>,
    keep: Option<(u8, Att)>,
) -> FailReply {
    let ack = |r: &mut Redis| {
        if let Some(id) = entry {
            r.ack(payment, id);
        }
    };
    let Some(mut h) = r.status[payment] else {
        ack(r);
        return FailReply::Missing;
    };
    if h.st == St::Processed {
        ack(r);
        return FailReply::Processed;
    }
    if h.amb && keep.is_none() {
        return FailReply::Unresolved;
    }
    if let (Some((consumer, att)), Some(id)) = (keep, entry) {
        if r.owner(payment, id) != Some(consumer) || h.att != att {
            return FailReply::Stale;
        }
    }
    h.st = St::Failed;
    r.status[payment] = Some(h);
    r.dead[payment] = r.dead[payment].saturating_add(1);
    ack(r);
    FailReply::Ok
}

/// scripts/redrive.lua — `common/src/scripts/redrive.lua`: every dead letter back to the
/// stream. `fresh(payment)` gives the new entry's id. `old = true` is seeded fault (e): the
/// previous version, which reset `att` and forgot the pin.
pub fn redrive(r: &mut Redis, now: Time, old: bool, mut fresh: impl FnMut(usize) -> Gen) -> u8 {
    let mut moved = 0;
    for payment in 0..NP {
        while r.dead[payment] > 0 {
            r.dead[payment] -= 1;
            let Some(mut h) = r.status[payment] else {
                continue;
            };
            if h.st != St::Failed {
                continue;
            }
            let sid = fresh(payment);
            r.xadd(payment, sid, None);
            h.st = St::Queued;
            h.sid = sid;
            if old {
                h.att = 0;
                h.amb = false;
                h.proc = None;
            } else if h.proc.is_some() {
                // Never below the bound it had: a dead letter that kept its pin ('keep') may
                // still be stored until then.
                let safe = h.safe.max(Some(now));
                h.amb = true;
                h.safe = safe;
                h.safe0 = safe;
            }
            r.status[payment] = Some(h);
            moved += 1;
        }
    }
    moved
}

/// scripts/touch.lua — `common/src/scripts/touch.lua`: the heartbeat. Returns the entries
/// (payment, id) no longer pending on this consumer.
pub fn touch(r: &mut Redis, consumer: u8, entries: &[(usize, Gen)], now: Time) -> Vec<usize> {
    let mut lost = Vec::new();
    for &(payment, id) in entries {
        if r.owner(payment, id) == Some(consumer) {
            r.xclaim(payment, id, consumer, now);
        } else {
            lost.push(payment);
        }
    }
    lost
}

/// XREADGROUP `>` (not a script): hands an undelivered entry to a consumer.
pub fn read(r: &mut Redis, index: usize, consumer: u8, now: Time) {
    r.stream[index].pending = Some((consumer, now));
    r.deleted[consumer as usize] = false;
}

/// XAUTOCLAIM min-idle (not a script): takes an entry pending at least `claim_idle`.
pub fn autoclaim(r: &mut Redis, index: usize, consumer: u8, now: Time) {
    r.stream[index].pending = Some((consumer, now));
    r.deleted[consumer as usize] = false;
}

/// record.lua's first line: while the purge flag is set it answers TRYAGAIN and changes
/// nothing (`None`); else [`record`]. `honour_flag = false` is seeded fault (j): a record
/// that ignores the flag.
pub fn record_unless_purging(
    r: &mut Redis,
    payment: usize,
    proc: Proc,
    requested_at: Time,
    entry: Option<Gen>,
    honour_flag: bool,
) -> Option<RecordReply> {
    if r.purging.is_some() && honour_flag {
        return None;
    }
    Some(record(r, payment, proc, requested_at, entry))
}

/// The token of the model's purge (one purge runs at a time; a restarted one takes the flag
/// anew). The differential test presets [`FOREIGN`] for a flag another purge holds.
pub const OWN: u8 = 1;
/// A purge flag held by another purge (differential cases only).
pub const FOREIGN: u8 = 2;

/// scripts/purge.lua in its 'start' mode (`Store::purge_start`): takes the purge flag for
/// `token` unless it is set (SET NX); `false` = PURGERUNNING, nothing changes.
pub fn purge_start(r: &mut Redis, token: u8) -> bool {
    if r.purging.is_some() {
        return false;
    }
    r.purging = Some(token);
    true
}

/// scripts/purge.lua — `common/src/scripts/purge.lua`: unless the flag holds `token`
/// (PURGELOST: `None`, nothing changes), renews it, then for each of `payments` (a SCAN
/// batch): a payment whose entry is newer than `last` (where the stream ended when the purge
/// started) is kept whatever its status; any other goes with its stream entry (XACK + XDEL,
/// whatever its status: a processed or failed one whose entry is still there, pending or
/// orphaned, loses it too).
/// Entry ids are per payment in the model: `last[p]` is the newest id of payment `p` then.
/// Returns the payments deleted. `keep_newer = false` is seeded fault (n): a processed or
/// failed status is deleted even when its payment was accepted after the purge started.
/// `owned = false` is seeded fault (q): the flag set whoever held it (no token check).
pub fn purge(
    r: &mut Redis,
    token: u8,
    payments: &[usize],
    last: &[Gen; NP],
    keep_newer: bool,
    owned: bool,
) -> Option<Vec<usize>> {
    if owned && r.purging != Some(token) {
        return None;
    }
    r.purging = Some(token);
    let mut deleted = Vec::new();
    for &payment in payments {
        let Some(h) = r.status[payment] else {
            continue;
        };
        let newer = h.sid > last[payment];
        let done = matches!(h.st, St::Processed | St::Failed);
        if newer && (keep_newer || !done) {
            continue;
        }
        r.ack(payment, h.sid);
        r.status[payment] = None;
        deleted.push(payment);
    }
    Some(deleted)
}

/// scripts/purge_finish.lua — `common/src/scripts/purge_finish.lua` (`Store::purge_finish`,
/// `allow-oom`): unless the flag holds `token` (PURGELOST: `false`, nothing changes), the
/// summary wiped, the dead-letter stream trimmed of the `dead_before[p]` letters it held
/// when the purge started (the oldest), the payment stream trimmed up to `last` (XTRIM
/// MINID: pending or not), and the purge flag cleared. `owned = false` is seeded fault (q):
/// no token check (the MULTI it replaced).
pub fn purge_finish(
    r: &mut Redis,
    token: u8,
    last: &[Gen; NP],
    dead_before: &[u8; NP],
    owned: bool,
) -> bool {
    if owned && r.purging != Some(token) {
        return false;
    }
    r.summary.clear();
    for (dead, before) in r.dead.iter_mut().zip(dead_before) {
        *dead -= (*before).min(*dead);
    }
    r.stream.retain(|e| e.id > last[e.payment as usize]);
    r.orphans.retain(|e| e.id > last[e.payment as usize]);
    r.purging = None;
    true
}

/// The consumers of `consumers` other than `me` that hold no pending entry (XINFO
/// CONSUMERS, the check of drop_consumers.lua). Idle long enough: the model lets every
/// consumer be, which only adds schedules.
pub fn idle_consumers(r: &Redis, me: u8, consumers: usize) -> Vec<u8> {
    (0..consumers as u8)
        .filter(|&c| c != me && !r.deleted[c as usize] && !r.has_pending(c))
        .collect()
}

/// XGROUP DELCONSUMER (not a script): the consumer goes, and its pending entries leave the
/// pending list with it (they stay in the stream, out of reach: [`Redis::orphans`]).
pub fn del_consumer(r: &mut Redis, consumer: u8) {
    let (gone, kept): (Vec<Entry>, Vec<Entry>) = r
        .stream
        .iter()
        .partition(|e| e.pending.is_some_and(|(c, _)| c == consumer));
    r.stream = kept;
    r.orphans
        .extend(gone.into_iter().map(|e| Entry { pending: None, ..e }));
    r.orphans.sort();
    r.deleted[consumer as usize] = true;
}

/// scripts/drop_consumers.lua — `common/src/scripts/drop_consumers.lua`: checks and deletes
/// in one script, so a consumer deleted holds no pending entry. Returns those deleted.
pub fn drop_consumers(r: &mut Redis, me: u8, consumers: usize) -> Vec<u8> {
    let idle = idle_consumers(r, me, consumers);
    for &c in &idle {
        del_consumer(r, c);
    }
    idle
}

/// Whether Redis runs the script while memory is full: its first line says
/// `#!lua flags=allow-oom` ([`CONTRACTS`], checked against the files by `contract`).
pub fn allow_oom(script: &str) -> bool {
    CONTRACTS.iter().any(|c| c.script == script && c.allow_oom)
}

/// One script's contract as its header states it.
pub struct Contract {
    pub script: &'static str,
    /// Whether the model has a step for it (summary, health_slot, compact, drop_detail,
    /// rebuild and trim_dead change no payment's state machine: they are listed so that every
    /// script is accounted for).
    pub modelled: bool,
    /// Its first line is `#!lua flags=allow-oom`: Redis runs it while memory is full (the
    /// others are refused before their first command).
    pub allow_oom: bool,
    pub keys: &'static str,
    pub argv: &'static str,
    pub returns: &'static str,
}

/// The header lines of every script (whitespace collapsed), as this model implements them.
pub const CONTRACTS: &[Contract] = &[
    Contract {
        script: "accept",
        modelled: true,
        allow_oom: false,
        keys: "KEYS[1] payment stream KEYS[1+i] status hash of payment i",
        argv: "ARGV[1] backlog limit (0 = none) ARGV[2] first-attempt bound (ms, 0 = none) ARGV[2i+1] correlation id of payment i ARGV[2i+2] its amount in cents",
        returns: "Returns one reply per payment, in order: {'ok', entry id} | {'dup', status} | {'conflict', stored cents} | {'busy', backlog}",
    },
    Contract {
        script: "begin",
        modelled: true,
        allow_oom: false,
        keys: "KEYS[1] stream KEYS[1+i] status hash of payment i",
        argv: "ARGV[1] group ARGV[2] this consumer ARGV[4i-1] wanted processor of payment i ARGV[4i] its stream entry id ARGV[4i+1] its bound (ms) ARGV[4i+2] the requestedAt it will send (ms)",
        returns: "Returns one reply per payment, in order: {'go', processor, attempt, earlier attempt unresolved '0'|'1'} | {'pinned', processor, safe (ms), attempt, now (ms)} (use that processor or confirm absence) | {'done', status, processor} (already processed / dead-lettered) | {'missing'} (purged) | {'lost'} (not pending on this consumer: stop)",
    },
    Contract {
        script: "compact",
        modelled: false,
        allow_oom: true,
        keys: "KEYS[1] events by requestedAt (ev) KEYS[2] compacted detail (second -> 'off:count:cents ...') KEYS[3] the first second whose detail is kept (drop_detail.lua; absent: all of it)",
        argv: "ARGV[1] horizon in ms ARGV[2] most payments moved by this call",
        returns: "Returns the number of payments moved (below ARGV[2] once nothing older is left).",
    },
    Contract {
        script: "drop_consumers",
        modelled: true,
        allow_oom: true,
        keys: "KEYS[1] stream",
        argv: "ARGV[1] group ARGV[2] least idle ms ARGV[3] this consumer",
        returns: "Returns the names deleted.",
    },
    Contract {
        script: "drop_detail",
        modelled: false,
        allow_oom: true,
        keys: "KEYS[1] compacted detail (hash: second -> string) KEYS[2] watermark (string: the first second whose detail is kept) KEYS[3] days index KEYS[4] seconds not rolled up yet (older revisions; their days may be missing from the days index) KEYS[5] counts by bucket KEYS[6] cents by bucket (their tenths of a second)",
        argv: "ARGV[1] SUMMARY_DETAIL_RETENTION in ms ARGV[2] most seconds walked by this call",
        returns: "Returns the number of seconds walked (below ARGV[2] once the watermark reached the cutoff).",
    },
    Contract {
        script: "fail",
        modelled: true,
        allow_oom: true,
        keys: "KEYS[1] status hash KEYS[2] stream KEYS[3] dead-letter stream",
        argv: "ARGV[1] correlation id ARGV[2] cents ('' = the status hash's) ARGV[3] reason ARGV[4] stream entry id ('' = none) ARGV[5] group ARGV[6] 'keep' | 'entry' | '' ARGV[7] retention ms ('' = keep) ARGV[8] this consumer ARGV[9] the caller's attempt ('keep' only) 'entry': the stream entry could not be decoded. It may not be the payment's own (a stray or corrupt copy): unless it is the entry the status hash names, the payment is left alone and only the entry goes to the dead letters; the same when no such payment exists. 'keep' only for the consumer that owns the entry and the payment's latest attempt: a task that lost its entry, or whose attempt a newer one replaced, gets 'stale' and fails nothing.",
        returns: "Returns 'ok' | 'processed' | 'unresolved' | 'missing' | 'foreign' | 'stale'",
    },
    Contract {
        script: "health_slot",
        modelled: false,
        allow_oom: true,
        keys: "KEYS[1] lease KEYS[2] health report hash Poll times come from Redis' clock, so workers with different clocks never share a window.",
        argv: "ARGV[1] this process ARGV[2] poll interval (ms) ARGV[3] lease ttl (ms)",
        returns: "Returns 1 = poll now (the poll time is taken), 0 = leader, not yet, -1 = not the leader.",
    },
    Contract {
        script: "purge",
        modelled: true,
        allow_oom: true,
        keys: "KEYS[1] stream KEYS[2] purge flag KEYS[3..] status hashes",
        argv: "ARGV[1] group ARGV[2] last stream entry id when the purge started ('0-0' = empty) ARGV[3] purge flag expiry ms ARGV[4] this purge's token ARGV[5] 'start' | ''",
        returns: "Returns the number of payments deleted, or the error PURGELOST (nothing deleted) when the flag is not this purge's, or with 'start' the error PURGERUNNING when another holds it.",
    },
    Contract {
        script: "purge_finish",
        modelled: true,
        allow_oom: true,
        keys: "KEYS[1] purge flag KEYS[2] payment stream KEYS[3] dead-letter stream KEYS[4..] summary keys",
        argv: "ARGV[1] the payment stream's least id kept (XTRIM MINID) ARGV[2] the dead-letter stream's least id kept ARGV[3] this purge's token",
        returns: "Returns 1, or the error PURGELOST (nothing deleted) when the flag is not this purge's.",
    },
    Contract {
        script: "rebuild",
        modelled: false,
        allow_oom: true,
        keys: "KEYS[1] counts by bucket KEYS[2] cents by bucket KEYS[3] days index KEYS[4] seconds not rolled up yet",
        argv: "ARGV[1] most hours rolled up by this call",
        returns: "Returns the number of hours rolled up (below ARGV[1] once none is left).",
    },
    Contract {
        script: "record",
        modelled: true,
        allow_oom: true,
        keys: "KEYS[1] stream KEYS[2..5] default: counts by bucket, cents by bucket, days index, events by requestedAt KEYS[6..9] the same for fallback KEYS[10] purge flag KEYS[10+i] status hash of payment i",
        argv: "ARGV[1] group ARGV[2] retention ms ('' = keep) ARGV[6i-3] correlation id of payment i ARGV[6i-2] its processor ARGV[6i-1] requestedAt (ms) ARGV[6i] requestedAt second ARGV[6i+1] cents ARGV[6i+2] stream entry id ('' = none)",
        returns: "Returns one reply per payment, in order: 'ok' | 'dup' | 'missing' | 'overflow' (its second's bucket would overflow; nothing is recorded for it. A minute, hour or day bucket that would overflow is marked 'sat' instead: readers add its parts)",
    },
    Contract {
        script: "redrive",
        modelled: true,
        allow_oom: false,
        keys: "KEYS[1] dead-letter stream KEYS[2] payment stream",
        argv: "ARGV[1] status key prefix ('{p}:pay:') ARGV[2] most letters to read ARGV[3] read after this letter id ('0-0' = from the start)",
        returns: "Returns {payments re-queued, id of the last letter read ('' = none left)}",
    },
    Contract {
        script: "settle",
        modelled: true,
        allow_oom: true,
        keys: "KEYS[1] status hash",
        argv: "ARGV[1] processor ARGV[2] attempt ARGV[3] 'failed'|'absent' ARGV[4] lookup asked at (ms) ARGV[5] the caller's stream entry id",
        returns: "Returns {'cleared'} | {'stale'} | {'held'} | {'early', safe (ms), now (ms)}",
    },
    Contract {
        script: "summary",
        modelled: false,
        allow_oom: false,
        keys: "KEYS[1..4] default: counts by bucket, cents by bucket, days index, seconds not rolled up yet KEYS[5..8] the same for fallback",
        argv: "ARGV[1], ARGV[2] whole days range (scores, may be -inf/+inf; '' = none) ARGV[3] m, the number of other whole buckets ARGV[4..3+m] those buckets: fields '<second>', 'm<minute>', 'h<hour>' ARGV[4+m..] edge reads, each as <argument count> <command> <arguments> (GET, HGET, HMGET, ZRANGEBYSCORE)",
        returns: "Returns {{per processor {count, {cents of each bucket read}}}, {each edge read's reply, in order}}",
    },
    Contract {
        script: "touch",
        modelled: true,
        allow_oom: true,
        keys: "KEYS[1] stream",
        argv: "ARGV[1] group ARGV[2] this consumer ARGV[3..] entry ids",
        returns: "Returns the entry ids no longer owned by this consumer.",
    },
    Contract {
        script: "trim_dead",
        modelled: false,
        allow_oom: true,
        keys: "KEYS[1] dead-letter stream",
        argv: "ARGV[1] retention in ms ARGV[2] status hash key prefix (followed by the correlation id) ARGV[3] most letters per call",
        returns: "Returns the number of dead letters removed.",
    },
    Contract {
        script: "unanswered",
        modelled: true,
        allow_oom: true,
        keys: "KEYS[1] status hash",
        argv: "ARGV[1] processor ARGV[2] attempt ARGV[3] grace (ms) ARGV[4] held '0'|'1' ARGV[5] the caller's stream entry id",
        returns: "Returns {'ok'|'stale', safe (ms), now (ms)}; 'stale' when the attempt is not the latest unresolved one any more (recorded, settled, or a later attempt began).",
    },
];
