//! The scripts against their model functions, behaviour for behaviour: for generated model
//! states and inputs ([`cases`]), the state is written into a real `redis-server`, the real
//! script runs through the product's own [`Store`] method (the call the gateway or the worker
//! makes), the resulting Redis state is read back into the model's [`Redis`], and both the
//! reply and the end state must equal what the function of [`crate::scripts`] gives for the
//! same state and input. One test per script that `scripts::CONTRACTS` marks as modelled, a
//! few thousand cases each (all of them in seconds); each requires every kind of reply of
//! the model function, and each path to it, to occur in its sample.
//!
//! Time: a case runs at model time [`NOW`]; model time `t` is the Redis time read just before
//! the case plus `(t - NOW)` ticks of [`TICK_MS`], so the milliseconds a case takes never move
//! a value across a tick. What a script computes from its own `TIME` is mapped back to the
//! nearest tick (and must lie within a fifth of a tick of it). An entry pending since `t` is
//! written with `XCLAIM … TIME`, and read back as the time of the read minus `XPENDING`'s idle.
//! Entry ids: entry `g` of payment `p` is the explicit id `<1 + 1000p + g>-0`, far below any
//! id `XADD *` makes; an id of that form reads back as its entry, any other as the next fresh
//! entry of its payment (accept and redrive add one each), as the model numbers them.
//!
//! Compared: the status hash's fields the model has (`st`, `proc`, `amb`, `safe`, `safe0` —
//! missing and `'0'` both read as none, the scripts' own reading —, `held`, `att`, `sid`,
//! `rq0`, a requestedAt written in the same ticks),
//! the stream with the consumer group's pending list (owner and since when), the dead letters
//! per payment, and the summary events (payment, processor, requestedAt); the summary's bucket
//! hashes and days index must hold exactly what those events make, and no other key may
//! exist. Replies are compared as
//! the product sees them: [`Store`]'s outcome types, so fail.lua's `stale` and `unresolved`
//! are one outcome (`Recorded::Unresolved`; neither changes anything), accept's entry id is
//! compared through the state, unanswered's `stale` carries no bound, and touch's lost
//! entries are compared by payment (the model returns payments). The `now` a script returns
//! must be the case's `NOW`.
//!
//! Not compared, because the model has no such field: the amount, `at` (kept by the model
//! only where seeded fault (o) reads it), `upd`, `ambat`, `req` and `err` of the status hash, its expiry (`PEXPIRE` / `PERSIST`), the
//! dead letters' and entries' other fields, and the consumer group's last-delivered id (no
//! modelled script reads it: the setup claims entries with `FORCE` and leaves it at 0-0).
//! Not generated, because the model abstracts it: the modes the model leaves out (fail.lua's
//! `entry`, record.lua's `overflow` and its refusal while a purge runs (the purge flag is
//! never set here: see `NOT_YET`), begin.lua's upgrade of a pin without `safe` — so a
//! pinned, unresolved status is written with `safe = '0'` when the model has none), a
//! `keep` dead letter without an entry id (the worker always has one), a summary event for a
//! payment that is not processed (the model has no expiry that would let an id come back),
//! and batches of several payments (one script call per case; a batch is the same steps back
//! to back).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use paystream_common::keys::{Bucket, Keys, GROUP};
use paystream_common::payment::{Cents, PaymentId, Processor, Status as PayStatus};
use paystream_common::store::{
    Accepted, Attempt, BeginRequest, FailMode, RecordRequest, Recorded, RedisOptions, SafeAt,
    Settle as Lookup, Settled, Store,
};
use paystream_common::testing::{unique_prefix, RedisServer};
use redis::aio::ConnectionManager;
use redis::Value;
use uuid::Uuid;

mod cases;

use cases::{
    gen_accept, gen_begin, gen_fail, gen_record, gen_redrive, gen_settle, gen_touch,
    gen_unanswered, Case, Input, Rng, ALL_ST, NOW,
};

use crate::protocol::{Att, Gen, Proc, Time};
use crate::scripts::{
    self, AcceptReply, BeginReply, Entry, FailReply, RecordReply, Redis, Settle, SettleReply, St,
    Status, NP,
};

/// Real milliseconds per model tick: far more than a case takes.
const TICK_MS: i64 = 10_000;
/// Every payment's amount (the model has none).
const CENTS: i64 = 1990;

/// The real Redis time of each model time in one case.
#[derive(Clone, Copy, Debug)]
struct Clock {
    /// Real ms of model time 0.
    base: i64,
}

impl Clock {
    fn ms(self, t: Time) -> i64 {
        self.base + i64::from(t) * TICK_MS
    }

    /// The model time of a Redis time the case wrote or a script computed (`0`: none).
    fn time(self, ms: i64) -> Result<Option<Time>, String> {
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
    fn check_now(self, ms: i64) -> Result<(), String> {
        match self.time(ms)? {
            Some(NOW) => Ok(()),
            t => Err(format!("the script's now {ms} is tick {t:?}, not {NOW}")),
        }
    }
}

fn payment_id(p: usize) -> PaymentId {
    PaymentId::new(Uuid::from_u128(0x5eed_0000_0000_0000 + p as u128))
}

fn uuid_text(p: usize) -> String {
    payment_id(p).as_uuid().hyphenated().to_string()
}

/// The payment of a correlation id written by the setup.
fn payment_of(text: &str) -> Result<usize, String> {
    (0..NP)
        .find(|&p| uuid_text(p) == text)
        .ok_or_else(|| format!("unknown payment {text:?}"))
}

fn entry_id(p: usize, g: Gen) -> String {
    format!("{}-0", 1 + 1000 * p + usize::from(g))
}

/// `(payment, entry)` of an id written by the setup; `None` for an id `XADD *` made.
fn preset_entry(id: &str) -> Option<(usize, Gen)> {
    let (ms, seq) = id.split_once('-')?;
    let ms: usize = ms.parse().ok()?;
    if seq != "0" || !(1..1000 * NP + 1).contains(&ms) {
        return None;
    }
    Some(((ms - 1) / 1000, Gen::try_from((ms - 1) % 1000).ok()?))
}

fn consumer(c: u8) -> String {
    format!("c{c}")
}

fn processor(p: Proc) -> Processor {
    match p {
        Proc::Default => Processor::Default,
        Proc::Fallback => Processor::Fallback,
    }
}

fn proc_of(name: &str) -> Result<Proc, String> {
    Proc::ALL
        .into_iter()
        .find(|p| p.name() == name)
        .ok_or_else(|| format!("unknown processor {name:?}"))
}

fn st_of(status: PayStatus) -> St {
    match status {
        PayStatus::Queued => St::Queued,
        PayStatus::Processing => St::Processing,
        PayStatus::Processed => St::Processed,
        PayStatus::Failed => St::Failed,
    }
}

/// The entry the model gives a payment next (one past any it names).
fn fresh(r: &Redis, p: usize) -> Gen {
    let in_stream = r.stream.iter().filter(|e| usize::from(e.payment) == p);
    let sid = r.status[p].map(|h| h.sid);
    in_stream.map(|e| e.id).chain(sid).max().unwrap_or(0) + 1
}

/// The summary fields (second, minute, hour, day, tenth) of a requestedAt.
fn bucket_fields(ms: i64) -> Vec<String> {
    let mut fields: Vec<String> = Bucket::all_of(ms.div_euclid(1000))
        .iter()
        .map(|b| b.field())
        .collect();
    fields.push(Bucket::Tenth(ms.div_euclid(100)).field());
    fields
}

/// A reply as the product sees it (see the module doc for what is merged).
#[derive(Clone, Debug, PartialEq)]
enum Reply {
    Accept(Accepted),
    Begin(BeginReply),
    /// `Some(safe)` for `ok`, `None` for `stale`.
    Unanswered(Option<Option<Time>>),
    Settle(SettleReply),
    Record(RecordReply),
    Fail(Recorded),
    Redrive(u64),
    /// The payments of the entries reported lost, in order.
    Touch(Vec<usize>),
}

/// The model function's reply, the name of its kind (with the path taken where two lead to
/// it: the coverage a test requires) and its end state.
fn model(case: &Case) -> (Reply, String, Redis) {
    let mut r = case.state.clone();
    let kind = |reply: &dyn std::fmt::Debug, path: &str| {
        let text = format!("{reply:?}");
        let name = text.split(['(', ' ', '{']).next().unwrap_or("");
        format!("{name}{path}")
    };
    let (reply, kind) = match case.input.clone() {
        Input::Accept => {
            let reply = scripts::accept(&mut r, 0, fresh(&case.state, 0));
            let seen = match reply {
                AcceptReply::Ok(_) => Accepted::Enqueued,
                AcceptReply::Dup(st) => Accepted::Replay(
                    st.name()
                        .parse()
                        .expect("the model's status names are the product's"),
                ),
            };
            (Reply::Accept(seen), kind(&reply, ""))
        }
        Input::Begin {
            wanted,
            consumer,
            entry,
            bound,
        } => {
            // The worker's requestedAt is sent as Redis' now (`BeginRequest` below).
            let reply = scripts::begin(
                &mut r,
                0,
                wanted,
                consumer,
                entry,
                bound,
                NOW,
                Some(NOW),
                true,
                true,
            );
            let earlier = matches!(
                reply,
                BeginReply::Go {
                    earlier_unresolved: true,
                    ..
                }
            );
            let path = if earlier { " earlier" } else { "" };
            (Reply::Begin(reply), kind(&reply, path))
        }
        Input::Unanswered {
            proc,
            att,
            grace,
            held,
        } => {
            let reply = scripts::unanswered(&mut r, 0, proc, att, grace, held, NOW);
            let kind = match (reply.ok, held) {
                (true, true) => "ok held",
                (true, false) => "ok",
                (false, _) => "stale",
            };
            (
                Reply::Unanswered(reply.ok.then_some(reply.safe)),
                kind.into(),
            )
        }
        Input::Settle { proc, att, how } => {
            let reply = scripts::settle(&mut r, 0, proc, att, how, true);
            let path = match how {
                Settle::Failed => " failed",
                Settle::Absent { .. } => " absent",
            };
            (Reply::Settle(reply), kind(&reply, path))
        }
        Input::Record {
            proc,
            requested_at,
            entry,
        } => {
            let reply = scripts::record(&mut r, 0, proc, requested_at, entry);
            (Reply::Record(reply), kind(&reply, ""))
        }
        Input::Fail { entry, keep } => {
            let reply = scripts::fail(&mut r, 0, entry, keep);
            let seen = match reply {
                FailReply::Ok => Recorded::Now,
                FailReply::Processed => Recorded::AlreadyDone,
                FailReply::Missing => Recorded::Missing,
                FailReply::Unresolved | FailReply::Stale => Recorded::Unresolved,
            };
            (
                Reply::Fail(seen),
                kind(&reply, if keep.is_some() { " keep" } else { "" }),
            )
        }
        Input::Redrive => {
            let mut next: [Gen; NP] = std::array::from_fn(|p| fresh(&case.state, p));
            let moved = scripts::redrive(&mut r, NOW, false, |p| {
                next[p] += 1;
                next[p] - 1
            });
            (Reply::Redrive(u64::from(moved)), format!("moved {moved}"))
        }
        Input::Touch { consumer, entries } => {
            let lost = scripts::touch(&mut r, consumer, &entries, NOW);
            let kind = format!("{} lost", lost.len().min(1));
            (Reply::Touch(lost), kind)
        }
    };
    (reply, kind, r)
}

/// A store on its own `redis-server`, and a connection for the setup and the read-back.
struct Real {
    store: Store,
    conn: ConnectionManager,
    keys: Keys,
    _redis: RedisServer,
}

impl Real {
    async fn start() -> Self {
        let redis = RedisServer::start();
        let mut options = RedisOptions::new(redis.url());
        options.response_timeout = Duration::from_secs(60);
        let keys = Keys::new(&unique_prefix());
        let store = Store::connect_lazy(&options, keys.clone()).unwrap();
        let conn = store.connection();
        Self {
            store,
            conn,
            keys,
            _redis: redis,
        }
    }

    /// Redis' `TIME` in ms.
    async fn now_ms(&mut self) -> i64 {
        let (s, us): (i64, i64) = redis::cmd("TIME")
            .query_async(&mut self.conn)
            .await
            .unwrap();
        s * 1000 + us / 1000
    }

    /// Empties the database and writes the case's state.
    async fn write(&mut self, clock: Clock, case: &Case) {
        let r = &case.state;
        let (stream, dead) = (self.keys.stream(), self.keys.dead_letters());
        let mut pipe = redis::pipe();
        let mut add = |line: String| {
            pipe.add_command(command(&line)).ignore();
        };
        add("FLUSHDB".into());
        add(format!("XGROUP CREATE {stream} {GROUP} 0 MKSTREAM"));
        // Sorted by payment and entry: the explicit ids increase.
        for e in &r.stream {
            let p = usize::from(e.payment);
            let id = entry_id(p, e.id);
            add(format!(
                "XADD {stream} {id} id {} amt {CENTS}",
                uuid_text(p)
            ));
            if let Some((c, since)) = e.pending {
                let at = clock.ms(since);
                add(format!(
                    "XCLAIM {stream} {GROUP} c{c} 0 {id} TIME {at} FORCE JUSTID"
                ));
            }
        }
        for (p, h) in r.status.iter().enumerate() {
            let Some(h) = h else { continue };
            let style = case.style >> (3 * p);
            let mut line = format!(
                "HSET {} amt {CENTS} st {} att {} sid {} at {} upd {}",
                self.keys.payment(&payment_id(p)),
                h.st.name(),
                h.att,
                entry_id(p, h.sid),
                clock.ms(0),
                clock.ms(NOW)
            );
            let time = |t: Option<Time>, zero: bool| match t {
                Some(t) => Some(clock.ms(t).to_string()),
                None => zero.then(|| "0".to_string()),
            };
            let amb = if h.amb {
                Some("1".into())
            } else {
                time(None, style & 1 != 0)
            };
            let pinned = h.proc.is_some() && h.amb;
            for (name, value) in [
                ("proc", h.proc.map(|p| p.name().to_string())),
                ("amb", amb),
                ("safe", time(h.safe, pinned || style & 2 != 0)),
                ("safe0", time(h.safe0, style & 4 != 0)),
                ("held", h.held.map(|p| p.name().to_string())),
                ("rq0", time(h.rq0, false)),
            ] {
                if let Some(value) = value {
                    line.push_str(&format!(" {name} {value}"));
                }
            }
            add(line);
        }
        for (p, &n) in r.dead.iter().enumerate() {
            let at = clock.ms(NOW);
            for _ in 0..n {
                add(format!(
                    "XADD {dead} * id {} amt {CENTS} reason model at {at}",
                    uuid_text(p)
                ));
            }
        }
        for &(p, proc, t) in &r.summary {
            let k = self.keys.summary(processor(proc));
            let ms = clock.ms(t);
            let member = format!("{}:{CENTS}", uuid_text(usize::from(p)));
            add(format!("ZADD {} {ms} {member}", k.events));
            for f in bucket_fields(ms) {
                add(format!("HINCRBY {} {f} 1", k.counts));
                add(format!("HINCRBY {} {f} {CENTS}", k.cents));
            }
            let day = ms.div_euclid(86_400_000);
            add(format!("ZADD {} {day} {day}", k.days));
        }
        let () = pipe.query_async(&mut self.conn).await.unwrap();
    }

    /// Runs the case's script through the store, as the product calls it.
    async fn run(&self, clock: Clock, input: &Input) -> Result<Reply, String> {
        let s = &self.store;
        let id = payment_id(0);
        let err = |e: paystream_common::store::StoreError| format!("store error: {e}");
        let safe_at = |at: SafeAt| -> Result<Option<Time>, String> {
            clock.check_now(at.now)?;
            clock.time(at.safe)
        };
        Ok(match input.clone() {
            Input::Accept => {
                let mut out = s
                    .accept_batch(&[(id, Cents::new(CENTS), 0)])
                    .await
                    .map_err(err)?;
                Reply::Accept(out.remove(0))
            }
            Input::Begin {
                wanted,
                consumer: c,
                entry,
                bound,
            } => {
                let request = BeginRequest {
                    id,
                    wanted: processor(wanted),
                    consumer: consumer(c),
                    entry_id: entry_id(0, entry),
                    bound: Duration::from_millis(u64::from(bound) * TICK_MS as u64),
                    requested_at: clock.ms(NOW),
                };
                let out = s.begin_batch(&[request]).await.map_err(err)?;
                Reply::Begin(match out[0] {
                    Attempt::Go {
                        processor,
                        attempt,
                        unresolved_before,
                    } => BeginReply::Go {
                        proc: proc_of(processor.as_str())?,
                        att: attempt as Att,
                        earlier_unresolved: unresolved_before,
                    },
                    Attempt::Pinned {
                        processor,
                        safe,
                        attempt,
                    } => BeginReply::Pinned {
                        proc: proc_of(processor.as_str())?,
                        safe: safe_at(safe)?,
                        att: attempt as Att,
                    },
                    Attempt::Done(status) => BeginReply::Done(st_of(status)),
                    Attempt::Missing => BeginReply::Missing,
                    Attempt::Lost => BeginReply::Lost,
                })
            }
            Input::Unanswered {
                proc,
                att,
                grace,
                held,
            } => {
                let grace = Duration::from_millis(u64::from(grace) * TICK_MS as u64);
                let out = s
                    .unanswered(&id, processor(proc), u32::from(att), grace, held)
                    .await
                    .map_err(err)?;
                Reply::Unanswered(out.map(safe_at).transpose()?)
            }
            Input::Settle { proc, att, how } => {
                let how = match how {
                    Settle::Failed => Lookup::Failed,
                    Settle::Absent { asked } => Lookup::Absent {
                        asked_at: clock.ms(asked),
                    },
                };
                let out = s
                    .settle(&id, processor(proc), u32::from(att), how)
                    .await
                    .map_err(err)?;
                Reply::Settle(match out {
                    Settled::Cleared => SettleReply::Cleared,
                    Settled::Stale => SettleReply::Stale,
                    Settled::Held => SettleReply::Held,
                    Settled::Early(at) => SettleReply::Early(safe_at(at)?),
                })
            }
            Input::Record {
                proc,
                requested_at,
                entry,
            } => {
                let request = RecordRequest {
                    id,
                    amount: Cents::new(CENTS),
                    processor: processor(proc),
                    requested_at: clock.ms(requested_at),
                    entry_id: entry.map_or(String::new(), |g| entry_id(0, g)),
                };
                let mut out = s.record_batch(&[request]).await.map_err(err)?;
                Reply::Record(match out.remove(0).map_err(err)? {
                    Recorded::Now => RecordReply::Ok,
                    Recorded::AlreadyDone => RecordReply::Dup,
                    Recorded::Missing => RecordReply::Missing,
                    other => return Err(format!("record: {other:?}")),
                })
            }
            Input::Fail { entry, keep } => {
                let (mode, by) = match keep {
                    Some((c, att)) => (
                        FailMode::KeepPin {
                            attempt: u32::from(att),
                        },
                        c,
                    ),
                    None => (FailMode::Final, 0),
                };
                let entry = entry.map_or(String::new(), |g| entry_id(0, g));
                let out = s
                    .dead_letter(&id, "", "model", &entry, mode, &consumer(by))
                    .await
                    .map_err(err)?;
                Reply::Fail(out)
            }
            Input::Redrive => Reply::Redrive(s.redrive_dead_letters(100).await.map_err(err)?),
            Input::Touch {
                consumer: c,
                entries,
            } => {
                let ids: Vec<String> = entries.iter().map(|&(p, g)| entry_id(p, g)).collect();
                let lost = s.touch(&consumer(c), &ids).await.map_err(err)?;
                let payments = lost
                    .iter()
                    .map(|id| preset_entry(id).map(|(p, _)| p))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| format!("touch reported ids it was not given: {lost:?}"))?;
                Reply::Touch(payments)
            }
        })
    }

    /// Reads the state back into the model's representation. `before`: the case's state
    /// (the fresh entries are numbered after it).
    async fn read(&mut self, clock: Clock, before: &Redis) -> Result<Redis, String> {
        let keys = &self.keys;
        let (stream, dead) = (keys.stream(), keys.dead_letters());
        let mut lines = vec!["TIME".to_string(), "KEYS *".to_string()];
        lines.extend((0..NP).map(|p| format!("HGETALL {}", keys.payment(&payment_id(p)))));
        lines.push(format!("XRANGE {stream} - +"));
        lines.push(format!("XPENDING {stream} {GROUP} - + 1000"));
        lines.push(format!("XRANGE {dead} - +"));
        for proc in Proc::ALL {
            let k = keys.summary(processor(proc));
            lines.push(format!("ZRANGE {} 0 -1 WITHSCORES", k.events));
            lines.push(format!("HGETALL {}", k.counts));
            lines.push(format!("HGETALL {}", k.cents));
            lines.push(format!("ZRANGE {} 0 -1", k.days));
        }
        let mut pipe = redis::pipe();
        for line in &lines {
            pipe.add_command(command(line));
        }
        let values: Vec<Value> = pipe.query_async(&mut self.conn).await.unwrap();
        let mut values = values.into_iter();
        let mut next = move || values.next().ok_or("short read-back".to_string());
        fn parse<T: redis::FromRedisValue>(v: Value) -> Result<T, String> {
            redis::from_redis_value(v).map_err(|e| e.to_string())
        }
        let (s, us): (i64, i64) = parse(next()?)?;
        let read_at = s * 1000 + us / 1000;
        // Every key must be one read back here: a write anywhere else would go unseen.
        let mut stray: BTreeSet<String> = parse(next()?)?;
        for line in &lines[2..] {
            stray.remove(line.split(' ').nth(1).unwrap_or_default());
        }
        if !stray.is_empty() {
            return Err(format!("keys the model has no place for: {stray:?}"));
        }
        let hashes: Vec<BTreeMap<String, String>> =
            (0..NP).map(|_| parse(next()?)).collect::<Result<_, _>>()?;
        let stream: Vec<(String, Vec<String>)> = parse(next()?)?;
        let pending: Vec<(String, String, i64, i64)> = parse(next()?)?;
        let letters: Vec<(String, Vec<String>)> = parse(next()?)?;

        let mut r = Redis::default();
        // Entry ids: the setup's explicit ones, then the fresh ones in order per payment.
        let mut gens: BTreeMap<String, (usize, Gen)> = BTreeMap::new();
        let mut fresh_next: [Gen; NP] = std::array::from_fn(|p| fresh(before, p));
        for (id, fields) in &stream {
            let p = payment_of(field(fields, "id").ok_or(format!("entry {id} has no id"))?)?;
            let (q, g) = match preset_entry(id) {
                Some(pg) => pg,
                None => {
                    fresh_next[p] += 1;
                    (p, fresh_next[p] - 1)
                }
            };
            if q != p {
                return Err(format!("entry {id} names payment {p}"));
            }
            gens.insert(id.clone(), (p, g));
            r.stream.push(Entry {
                payment: p as u8,
                id: g,
                pending: None,
            });
        }
        for (id, owner, idle, _) in &pending {
            let (p, g) = *gens
                .get(id)
                .ok_or(format!("pending entry {id} is not in the stream"))?;
            let c = owner
                .strip_prefix('c')
                .and_then(|c| c.parse::<u8>().ok())
                .ok_or(format!("unknown consumer {owner:?}"))?;
            let since = clock
                .time(read_at - idle)?
                .ok_or("pending since 0".to_string())?;
            let e = r
                .stream
                .iter_mut()
                .find(|e| usize::from(e.payment) == p && e.id == g)
                .ok_or("lost entry")?;
            e.pending = Some((c, since));
        }
        r.stream.sort();
        for (p, hash) in hashes.iter().enumerate() {
            if !hash.is_empty() {
                r.status[p] = Some(status(clock, hash, &gens).map_err(|e| format!("p{p}: {e}"))?);
            }
        }
        for (id, fields) in &letters {
            let p = payment_of(field(fields, "id").ok_or(format!("letter {id} has no id"))?)?;
            r.dead[p] += 1;
        }
        for proc in Proc::ALL {
            let events: Vec<(String, i64)> = parse(next()?)?;
            let counts: BTreeMap<String, i64> = parse(next()?)?;
            let cents: BTreeMap<String, i64> = parse(next()?)?;
            let days: BTreeSet<i64> = parse(next()?)?;
            let (mut want_counts, mut want_cents) = (BTreeMap::new(), BTreeMap::new());
            let mut want_days = BTreeSet::new();
            for (member, ms) in &events {
                let (uuid, amount) = member.split_once(':').ok_or("event without cents")?;
                if amount != CENTS.to_string() {
                    return Err(format!("event {member} of {}", proc.name()));
                }
                let t = clock.time(*ms)?.ok_or("requestedAt 0")?;
                r.summary.push((payment_of(uuid)? as u8, proc, t));
                for field in bucket_fields(*ms) {
                    *want_counts.entry(field.clone()).or_insert(0) += 1;
                    *want_cents.entry(field).or_insert(0) += CENTS;
                }
                want_days.insert(ms.div_euclid(86_400_000));
            }
            if (counts, cents, days) != (want_counts, want_cents, want_days) {
                return Err(format!(
                    "the summary buckets of {} are not what its events make",
                    proc.name()
                ));
            }
        }
        r.summary.sort();
        Ok(r)
    }
}

/// One command from a line of words (none of the words written here has a space).
fn command(line: &str) -> redis::Cmd {
    let mut words = line.split(' ');
    let mut cmd = redis::cmd(words.next().unwrap_or_default());
    cmd.arg(words.collect::<Vec<_>>());
    cmd
}

/// The value of `name` in a stream entry's flat field list.
fn field<'a>(fields: &'a [String], name: &str) -> Option<&'a str> {
    fields
        .chunks(2)
        .find(|kv| kv[0] == name)
        .and_then(|kv| kv.get(1))
        .map(String::as_str)
}

/// A status hash in the model's terms.
fn status(
    clock: Clock,
    hash: &BTreeMap<String, String>,
    gens: &BTreeMap<String, (usize, Gen)>,
) -> Result<Status, String> {
    let get = |name: &str| hash.get(name).map(String::as_str);
    let need = |name: &str| get(name).ok_or(format!("no {name} in {hash:?}"));
    let st = ALL_ST
        .into_iter()
        .find(|st| Some(st.name()) == get("st"))
        .ok_or(format!("st of {hash:?}"))?;
    let time = |name: &str| match get(name) {
        None => Ok(None),
        Some(v) => clock.time(v.parse().map_err(|_| format!("{name} = {v:?}"))?),
    };
    let sid = need("sid")?;
    Ok(Status {
        st,
        proc: get("proc").map(proc_of).transpose()?,
        amb: match get("amb") {
            None | Some("0") => false,
            Some("1") => true,
            Some(v) => return Err(format!("amb = {v:?}")),
        },
        safe: time("safe")?,
        safe0: time("safe0")?,
        held: get("held").map(proc_of).transpose()?,
        rq0: time("rq0")?,
        // Not compared: the model's scripts leave it out (`Status::at`).
        at: None,
        att: need("att")?
            .parse()
            .map_err(|_| format!("att of {hash:?}"))?,
        sid: match gens.get(sid) {
            Some(&(_, g)) => g,
            None => {
                preset_entry(sid)
                    .ok_or(format!("sid {sid} names no entry"))?
                    .1
            }
        },
    })
}

/// Runs `cases` generated cases of one script on a real Redis and its model function;
/// every kind of reply in `kinds` must occur.
async fn agree(script: &str, cases: usize, generate: fn(&mut Rng) -> Case, kinds: &[&str]) {
    let started = Instant::now();
    let seed = script.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut rng = Rng::new(seed);
    let mut real = Real::start().await;
    let mut seen = BTreeSet::new();
    let mut wrong = Vec::new();
    let mut mismatches = 0;
    for i in 0..cases {
        let case = generate(&mut rng);
        let (want, kind, want_state) = model(&case);
        seen.insert(kind);
        let clock = Clock {
            base: real.now_ms().await - i64::from(NOW) * TICK_MS,
        };
        real.write(clock, &case).await;
        let got = real.run(clock, &case.input).await;
        let got_state = real.read(clock, &case.state).await;
        if got.as_ref() != Ok(&want) || got_state.as_ref() != Ok(&want_state) {
            mismatches += 1;
            if wrong.len() < 3 {
                wrong.push(format!(
                    "case {i}:\n  state:  {:?}\n  input:  {:?} (style {:#x})\n  model:  {want:?}\n          \
                     {want_state:?}\n  redis:  {got:?}\n          {got_state:?}",
                    case.state, case.input, case.style
                ));
            }
        }
    }
    println!(
        "{script}: {cases} cases, replies {seen:?}, {:.1?}",
        started.elapsed()
    );
    assert!(
        mismatches == 0,
        "{script}.lua and scripts::{script} disagree in {mismatches} of {cases} cases; the first:\n{}",
        wrong.join("\n")
    );
    let missing: Vec<&&str> = kinds.iter().filter(|k| !seen.contains(**k)).collect();
    assert!(missing.is_empty(), "{script}: no case got {missing:?}");
}

#[tokio::test]
async fn accept_agrees_with_the_model() {
    agree("accept", 1000, gen_accept, &["Ok", "Dup"]).await;
}

#[tokio::test]
async fn begin_agrees_with_the_model() {
    let kinds = ["Go", "Go earlier", "Pinned", "Done", "Missing", "Lost"];
    agree("begin", 4000, gen_begin, &kinds).await;
}

#[tokio::test]
async fn unanswered_agrees_with_the_model() {
    let kinds = ["ok", "ok held", "stale"];
    agree("unanswered", 3000, gen_unanswered, &kinds).await;
}

#[tokio::test]
async fn settle_agrees_with_the_model() {
    let kinds = [
        "Cleared failed",
        "Cleared absent",
        "Early failed",
        "Early absent",
        "Held absent",
        "Stale absent",
    ];
    agree("settle", 4000, gen_settle, &kinds).await;
}

#[tokio::test]
async fn record_agrees_with_the_model() {
    agree("record", 3000, gen_record, &["Ok", "Dup", "Missing"]).await;
}

#[tokio::test]
async fn fail_agrees_with_the_model() {
    let kinds = [
        "Ok",
        "Ok keep",
        "Processed",
        "Unresolved",
        "Missing",
        "Stale keep",
    ];
    agree("fail", 4000, gen_fail, &kinds).await;
}

#[tokio::test]
async fn redrive_agrees_with_the_model() {
    let kinds = ["moved 0", "moved 1", "moved 2"];
    agree("redrive", 2000, gen_redrive, &kinds).await;
}

#[tokio::test]
async fn touch_agrees_with_the_model() {
    agree("touch", 2000, gen_touch, &["0 lost", "1 lost"]).await;
}

/// Modelled scripts this harness does not run yet: their state (the group's consumers, the
/// purge flag, entries out of every pending list) is not among what it writes and reads back.
/// Their behaviour against a real Redis is tested in `common/tests/store` (`consumers.rs`, and
/// the purge tests of `scripts.rs` and `summary.rs`).
const NOT_YET: [&str; 2] = ["drop_consumers", "purge"];

#[test]
fn every_modelled_script_has_a_differential_test() {
    let source = include_str!("differential.rs");
    for c in scripts::CONTRACTS
        .iter()
        .filter(|c| c.modelled && !NOT_YET.contains(&c.script))
    {
        let test = format!("async fn {}_agrees_with_the_model()", c.script);
        assert!(source.contains(&test), "no differential test `{test}`");
    }
}
