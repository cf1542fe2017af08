//! The real side: a [`Store`] on its own `redis-server`; a case's state written into it,
//! the script run through the product's call, and the state read back in the model's terms.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use paystream_common::keys::{Keys, GROUP};
use paystream_common::payment::Cents;
use paystream_common::store::{
    Accepted, Attempt, BeginRequest, FailMode, RecordRequest, Recorded, RedisOptions, SafeAt,
    Settle as Lookup, Settled, Store, StoreError,
};
use paystream_common::testing::{unique_prefix, RedisServer};
use redis::aio::ConnectionManager;
use redis::Value;

use crate::protocol::{Att, Gen, Proc, Time};
use crate::scripts::{
    BeginReply, Entry, RecordReply, Redis, Settle, SettleReply, Status, FOREIGN, NP, OWN,
};

use super::cases::{Case, Input, ALL_ST, NOW};
use super::mapping::{
    bucket_fields, consumer, consumer_of, entry_id, fresh, id_order, payment_id, payment_of,
    preset_entry, proc_of, processor, purge_start_id, real_id, st_of, uuid_text, Clock, CENTS,
    TICK_MS,
};

/// A reply as the product sees it (see the module doc for what is merged).
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Accept(Accepted),
    Begin(BeginReply),
    /// `Some(safe)` for `ok`, `None` for `stale`.
    Unanswered(Option<Option<Time>>),
    Settle(SettleReply),
    /// `None`: refused while a purge runs (`TRYAGAIN`).
    Record(Option<RecordReply>),
    Fail(Recorded),
    Redrive(u64),
    /// The payments of the entries reported lost, in order.
    Touch(Vec<usize>),
    /// The payments `purge_sweep` deleted.
    Purge(u64),
    /// `purge_start` refused: another purge holds the flag.
    PurgeRunning,
    /// `purge_sweep` or `purge_finish` found the flag not its own.
    PurgeLost,
    /// The consumers deleted, in order.
    DropConsumers(Vec<u8>),
}

/// An end state as compared: the model's, and the pending list's records of entries no
/// longer in the stream (`XTRIM` leaves them there; the model has no place for them).
#[derive(Clone, Debug, PartialEq)]
pub struct End {
    pub redis: Redis,
    /// `(payment, entry)`, sorted.
    pub dangling: Vec<(usize, Gen)>,
}

/// A store on its own `redis-server`, and a connection for the setup and the read-back.
pub struct Real {
    store: Store,
    conn: ConnectionManager,
    keys: Keys,
    _redis: RedisServer,
}

impl Real {
    pub async fn start() -> Self {
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
    pub async fn now_ms(&mut self) -> i64 {
        let (s, us): (i64, i64) = redis::cmd("TIME")
            .query_async(&mut self.conn)
            .await
            .unwrap();
        s * 1000 + us / 1000
    }

    /// Writes the case's state. With `late = false`, into an empty database, all but what a
    /// purge case writes after `purge_start` (the entries and dead letters newer than where
    /// the purge started); with `late = true`, that (nothing outside a purge case), and the
    /// group's last-delivered id.
    pub async fn write(&mut self, clock: Clock, case: &Case, late: bool) {
        let (r, input) = (&case.state, &case.input);
        let (stream, dead) = (self.keys.stream(), self.keys.dead_letters());
        let mut pipe = redis::pipe();
        let mut add = |line: String| {
            pipe.add_command(command(&line)).ignore();
        };
        if !late {
            add("FLUSHDB".into());
            add(format!("XGROUP CREATE {stream} {GROUP} 0 MKSTREAM"));
            for c in (0..NP as u8).filter(|&c| !r.deleted[usize::from(c)]) {
                add(format!(
                    "XGROUP CREATECONSUMER {stream} {GROUP} {}",
                    consumer(c)
                ));
            }
        }
        let is_late = |e: &&Entry| input.late(usize::from(e.payment), e.id);
        // Sorted by payment and entry: the explicit ids increase.
        let mut entries: Vec<&Entry> = r.stream.iter().chain(&r.orphans).collect();
        entries.retain(|e| is_late(e) == late);
        entries.sort();
        for e in entries {
            let p = usize::from(e.payment);
            let id = real_id(input, p, e.id);
            add(format!(
                "XADD {stream} {id} id {} amt {CENTS}",
                uuid_text(p)
            ));
            if let Some((c, since)) = e.pending {
                let (c, at) = (consumer(c), clock.ms(since));
                add(format!(
                    "XCLAIM {stream} {GROUP} {c} 0 {id} TIME {at} FORCE JUSTID"
                ));
            }
        }
        for (p, &n) in r.dead.iter().enumerate() {
            let at = clock.ms(NOW);
            let early = input.early_dead(p, n);
            for _ in if late { early..n } else { 0..early } {
                add(format!(
                    "XADD {dead} * id {} amt {CENTS} reason model at {at}",
                    uuid_text(p)
                ));
            }
        }
        if late {
            // Delivered up to the newest orphan: XREADGROUP `>` hands out what comes after.
            let newest = r
                .orphans
                .iter()
                .max_by_key(|e| (is_late(e), e.payment, e.id));
            if let Some(e) = newest {
                let id = real_id(input, usize::from(e.payment), e.id);
                add(format!("XGROUP SETID {stream} {GROUP} {id}"));
            }
            if !pipe.is_empty() {
                let () = pipe.query_async(&mut self.conn).await.unwrap();
            }
            return;
        }
        if let Input::Purge { last, .. } = input {
            // The stream's last id is its newest entry's, even one deleted since.
            if let Some(id) = purge_start_id(last) {
                add(format!("XSETID {stream} {id}"));
            }
        }
        if let Some(token) = r.purging {
            add(format!("SET {} {}", self.keys.purging(), token_text(token)));
        }
        for (p, h) in r.status.iter().enumerate() {
            let Some(h) = h else { continue };
            let style = case.style >> (3 * p);
            let mut line = format!(
                "HSET {} amt {CENTS} st {} att {} sid {} at {} upd {}",
                self.keys.payment(&payment_id(p)),
                h.st.name(),
                h.att,
                real_id(input, p, h.sid),
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

    /// Writes the rest of the case's state (a purge case's after `purge_start`) and runs the
    /// case's script through the store, as the product calls it.
    pub async fn run(&mut self, clock: Clock, case: &Case) -> Result<Reply, String> {
        let err = |e: StoreError| format!("store error: {e}");
        let purge = match case.input {
            Input::Purge { .. } => Some(self.store.purge_start().await),
            _ => None,
        };
        self.write(clock, case, true).await;
        let s = &self.store;
        let id = payment_id(0);
        let safe_at = |at: SafeAt| -> Result<Option<Time>, String> {
            clock.check_now(at.now)?;
            clock.time(at.safe)
        };
        Ok(match case.input.clone() {
            Input::Accept { first } => {
                let bound = Duration::from_millis(u64::from(first) * TICK_MS as u64);
                let mut out = s
                    .clone()
                    .with_first_attempt(bound)
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
                entry,
            } => {
                let grace = Duration::from_millis(u64::from(grace) * TICK_MS as u64);
                let out = s
                    .unanswered(
                        &id,
                        &entry_id(0, entry),
                        processor(proc),
                        u32::from(att),
                        grace,
                        held,
                    )
                    .await
                    .map_err(err)?;
                Reply::Unanswered(out.map(safe_at).transpose()?)
            }
            Input::Settle {
                proc,
                att,
                how,
                entry,
            } => {
                let how = match how {
                    Settle::Failed => Lookup::Failed,
                    Settle::Absent { asked } => Lookup::Absent {
                        asked_at: clock.ms(asked),
                    },
                };
                let out = s
                    .settle(
                        &id,
                        &entry_id(0, entry),
                        processor(proc),
                        u32::from(att),
                        how,
                    )
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
                let mut out = match s.record_batch(&[request]).await {
                    // Refused while the purge flag is set: nothing ran.
                    Err(StoreError::Unavailable(e)) if e.code() == Some("TRYAGAIN") => {
                        return Ok(Reply::Record(None));
                    }
                    out => out.map_err(err)?,
                };
                Reply::Record(Some(match out.remove(0).map_err(err)? {
                    Recorded::Now => RecordReply::Ok,
                    Recorded::AlreadyDone => RecordReply::Dup,
                    Recorded::Missing => RecordReply::Missing,
                    other => return Err(format!("record: {other:?}")),
                }))
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
            Input::Purge { finish, lose, .. } => {
                let run = match purge.ok_or("no purge started")? {
                    Err(StoreError::PurgeRunning) => return Ok(Reply::PurgeRunning),
                    run => run.map_err(err)?,
                };
                if let Some((false, flag)) = lose {
                    self.set_flag(flag).await;
                }
                let deleted = match s.purge_sweep(&run).await {
                    Err(StoreError::PurgeLost) => return Ok(Reply::PurgeLost),
                    deleted => deleted.map_err(err)?,
                };
                if let Some((true, flag)) = lose {
                    self.set_flag(flag).await;
                }
                if finish {
                    match s.purge_finish(&run).await {
                        Err(StoreError::PurgeLost) => return Ok(Reply::PurgeLost),
                        done => done.map_err(err)?,
                    }
                }
                Reply::Purge(deleted)
            }
            Input::DropConsumers { me } => {
                // Every consumer idle long enough: the model has no idle times.
                let gone = s
                    .drop_stale_consumers(&consumer(me), Duration::ZERO)
                    .await
                    .map_err(err)?;
                let gone = gone.iter().map(|name| consumer_of(name));
                Reply::DropConsumers(gone.collect::<Result<_, _>>()?)
            }
        })
    }

    /// The purge flag expires (`None`: DEL) or another purge takes it.
    async fn set_flag(&self, flag: Option<u8>) {
        let line = match flag {
            None => format!("DEL {}", self.keys.purging()),
            Some(token) => format!("SET {} {}", self.keys.purging(), token_text(token)),
        };
        let mut conn = self.conn.clone();
        let _: Value = command(&line).query_async(&mut conn).await.unwrap();
    }

    /// Reads the state back into the model's representation. `before`: the case's state
    /// (the fresh entries are numbered after it).
    pub async fn read(&mut self, clock: Clock, before: &Redis) -> Result<End, String> {
        let keys = &self.keys;
        let (stream, dead) = (keys.stream(), keys.dead_letters());
        let mut lines = vec!["TIME".to_string(), "KEYS *".to_string()];
        lines.extend((0..NP).map(|p| format!("HGETALL {}", keys.payment(&payment_id(p)))));
        lines.push(format!("XRANGE {stream} - +"));
        lines.push(format!("XPENDING {stream} {GROUP} - + 1000"));
        lines.push(format!("XRANGE {dead} - +"));
        lines.push(format!("XINFO CONSUMERS {stream} {GROUP}"));
        lines.push(format!("XINFO GROUPS {stream}"));
        lines.push(format!("GET {}", keys.purging()));
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
        let consumers: Vec<HashMap<String, Value>> = parse(next()?)?;
        let groups: Vec<HashMap<String, Value>> = parse(next()?)?;
        // The preset foreign token, or (any other value) the purge's own.
        let purging = parse::<Option<String>>(next()?)?.map(|token| {
            if token == token_text(FOREIGN) {
                FOREIGN
            } else {
                OWN
            }
        });
        let text = |info: &HashMap<String, Value>, name: &str| -> Result<String, String> {
            parse(
                info.get(name)
                    .cloned()
                    .ok_or(format!("XINFO without {name}"))?,
            )
        };
        let delivered = match groups.as_slice() {
            [group] if text(group, "name")? == GROUP => {
                id_order(&text(group, "last-delivered-id")?)?
            }
            _ => return Err(format!("consumer groups {groups:?}")),
        };

        let mut r = Redis {
            purging,
            ..Redis::default()
        };
        r.deleted = [true; NP];
        for info in &consumers {
            let c = consumer_of(&text(info, "name")?)?;
            *r.deleted
                .get_mut(usize::from(c))
                .ok_or(format!("consumer c{c}"))? = false;
        }
        // Entry ids: the setup's explicit ones, then the fresh ones in order per payment.
        let mut gens: BTreeMap<String, (usize, Gen)> = BTreeMap::new();
        let mut fresh_next: [Gen; NP] = std::array::from_fn(|p| fresh(before, p));
        let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
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
            let pending = None;
            let at = match field(fields, "at") {
                Some(ms) => clock.time(ms.parse().map_err(|_| format!("entry at {ms:?}"))?)?,
                None => None,
            };
            entries.insert(
                id.clone(),
                Entry {
                    payment: p as u8,
                    id: g,
                    pending,
                    at,
                },
            );
        }
        let mut dangling = Vec::new();
        for (id, owner, idle, _) in &pending {
            let Some(e) = entries.get_mut(id) else {
                dangling.push(preset_entry(id).ok_or(format!("pending entry {id}"))?);
                continue;
            };
            let since = clock
                .time(read_at - idle)?
                .ok_or("pending since 0".to_string())?;
            e.pending = Some((consumer_of(owner)?, since));
        }
        dangling.sort();
        // Delivered and pending nowhere: an orphan.
        for (id, e) in entries {
            if e.pending.is_none() && id_order(&id)? <= delivered {
                r.orphans.push(e);
            } else {
                r.stream.push(e);
            }
        }
        r.orphans.sort();
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
        Ok(End { redis: r, dangling })
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

/// The purge flag's value for a model token other than the purge's own (whose value is
/// `Store::purge_start`'s random token).
fn token_text(token: u8) -> String {
    format!("foreign-purge-{token}")
}
