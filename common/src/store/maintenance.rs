//! Operations outside a payment's own path: dead letters re-driven and counted, the
//! stream's backlog and the consumer group's figures, the purge of everything, raw commands
//! for the worker's stream upkeep, and the decoding of the entries it reads.
//!
//! Before it: the admin endpoints, the worker's reclaim and metrics tasks. After it: the
//! stream, from which [`super::attempt`] takes payments again (a re-drive).

use std::sync::LazyLock;

use redis::aio::ConnectionLike;
use redis::{Script, Value};

use super::types::PurgeRun;
use super::Store;
use crate::entry::{self, as_str, StreamEntry};
use crate::error::StoreError;
use crate::keys::GROUP;
use crate::payment::Processor;

/// How long a purge flag outlives the purge call that last renewed it: a purge that died
/// half-way holds records back no longer than this.
const PURGE_FLAG_EXPIRY: std::time::Duration = std::time::Duration::from_secs(10);

static REDRIVE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../scripts/redrive.lua")));
static PURGE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../scripts/purge.lua")));
static PURGE_FINISH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../scripts/purge_finish.lua")));
static DROP_CONSUMERS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../scripts/drop_consumers.lua")));

impl Store {
    /// Re-queues up to `limit` dead-lettered payments, reading the dead letters once from
    /// the oldest; returns how many moved. Letters that name no payment stay.
    pub async fn redrive_dead_letters(&self, limit: u64) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let mut moved = 0u64;
        let mut after = String::from("0-0");
        while moved < limit {
            let (n, last): (u64, String) = REDRIVE
                .key(self.keys.dead_letters())
                .key(self.keys.stream())
                .arg(self.keys.payment_prefix())
                .arg((limit - moved).min(1_000))
                .arg(&after)
                .invoke_async(&mut conn)
                .await?;
            moved += n;
            if last.is_empty() {
                break;
            }
            after = last;
        }
        Ok(moved)
    }

    /// Number of dead letters waiting.
    pub async fn dead_letter_count(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("XLEN")
            .arg(self.keys.dead_letters())
            .query_async(&mut conn)
            .await?)
    }

    /// The consumer group's pending entries and lag (entries not yet delivered).
    pub async fn group_info(&self) -> Result<(u64, u64), StoreError> {
        let mut conn = self.conn.clone();
        let groups: Vec<std::collections::HashMap<String, Value>> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(self.keys.stream())
            .query_async(&mut conn)
            .await?;
        let int = |v: Option<&Value>| match v {
            Some(Value::Int(n)) => (*n).max(0) as u64,
            _ => 0,
        };
        Ok(groups
            .iter()
            .find(|g| matches!(g.get("name"), Some(v) if as_str(v) == Some(GROUP)))
            .map(|g| (int(g.get("pending")), int(g.get("lag"))))
            .unwrap_or_default())
    }

    /// Deletes the group's consumers other than `me` that hold no pending entry and have
    /// been idle at least `idle`; returns their names. Checked and deleted in one script: a
    /// consumer that read entries between a separate check and its deletion would take them
    /// out of the pending list, where neither `XAUTOCLAIM` nor `XREADGROUP` finds them again.
    pub async fn drop_stale_consumers(
        &self,
        me: &str,
        idle: std::time::Duration,
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(DROP_CONSUMERS
            .key(self.keys.stream())
            .arg(GROUP)
            .arg(idle.as_millis() as u64)
            .arg(me)
            .invoke_async(&mut conn)
            .await?)
    }

    /// Redis' memory: `used_memory` and `maxmemory` (0 = no limit) from `INFO memory`.
    pub async fn memory(&self) -> Result<(u64, u64), StoreError> {
        let mut conn = self.conn.clone();
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        match (field("used_memory"), field("maxmemory")) {
            (Some(used), Some(max)) => Ok((used, max)),
            _ => Err(StoreError::Unexpected(
                "INFO memory without used_memory".into(),
            )),
        }
    }

    /// Number of entries in the stream (queued or in flight: processed ones are deleted).
    pub async fn backlog(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("XLEN")
            .arg(self.keys.stream())
            .query_async(&mut conn)
            .await?)
    }

    /// Deletes every payment, status, summary and dead letter; keeps the consumer group.
    /// A payment goes together with its stream entry (`purge.lua`), and payments accepted
    /// while the purge runs are kept whole: a concurrent POST never leaves a "queued"
    /// status without its entry, and a payment recorded after the purge is counted in the
    /// summary it leaves (`record.lua` waits for the purge's end). One purge at a time: a
    /// second one while the flag is held fails with [`StoreError::PurgeRunning`], and a purge
    /// that lost its flag stops with [`StoreError::PurgeLost`] before wiping the summary.
    pub async fn purge(&self) -> Result<u64, StoreError> {
        let run = self.purge_start().await?;
        let deleted = self.purge_sweep(&run).await?;
        self.purge_finish(&run).await?;
        Ok(deleted)
    }

    /// The purge's first step: takes the purge flag (`SET NX PX` with a random token, in
    /// `purge.lua`, so only this purge renews or clears it; [`StoreError::PurgeRunning`]
    /// while another purge holds it), then notes where both streams end. Everything
    /// up to there is deleted; what comes after is kept.
    pub async fn purge_start(&self) -> Result<PurgeRun, StoreError> {
        let mut conn = self.conn.clone();
        let token = uuid::Uuid::new_v4().simple().to_string();
        let run = PurgeRun {
            stream_last: String::new(),
            dead_last: String::new(),
            token,
        };
        // purge.lua rather than a plain SET: a script with `allow-oom` takes the flag at a
        // full memory too, where Redis refuses a SET.
        let _: u64 = purge_lost(
            self.purge_invocation(&[], &run, true)
                .invoke_async(&mut conn)
                .await,
        )?;
        // The dead letters' end first: a payment the purge keeps was accepted after the
        // stream's end was read, so any dead letter of it comes after the dead letters' end
        // and stays (read the other way round, one dead-lettered in between lost its letter).
        let dead_last = self.last_entry_id(self.keys.dead_letters()).await?;
        let stream_last = self.last_entry_id(self.keys.stream()).await?;
        Ok(PurgeRun {
            stream_last,
            dead_last,
            ..run
        })
    }

    /// Deletes the payments (with their stream entries) that `run` covers, in batches found
    /// by SCAN; every page (one without payment keys too) checks that the flag is still
    /// this purge's and renews it, so a purge slowed by pages of other keys keeps its flag.
    /// Returns how many were deleted; [`StoreError::PurgeLost`] when the flag is gone.
    pub async fn purge_sweep(&self, run: &PurgeRun) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let mut deleted = 0u64;
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(self.keys.payment_pattern())
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            let n: u64 = purge_lost(
                self.purge_invocation(&batch, run, false)
                    .invoke_async(&mut conn)
                    .await,
            )?;
            deleted += n;
            if next == 0 {
                break;
            }
            cursor = next;
        }
        Ok(deleted)
    }

    /// The purge's last step, atomic (`purge_finish.lua`): wipes the summary, trims both
    /// streams up to where the purge started (entries and dead letters written since stay)
    /// and clears the purge flag, so the next record lands in the summary this leaves. Only
    /// while the flag is this purge's: else nothing is deleted ([`StoreError::PurgeLost`]).
    /// A script with `allow-oom`, as it only deletes: it runs at a full memory too.
    pub async fn purge_finish(&self, run: &PurgeRun) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let mut invocation = PURGE_FINISH.prepare_invoke();
        invocation
            .key(self.keys.purging())
            .key(self.keys.stream())
            .key(self.keys.dead_letters());
        for processor in Processor::ALL {
            for key in self.keys.summary(processor).all() {
                invocation.key(key);
            }
        }
        invocation
            .arg(next_entry_id(&run.stream_last))
            .arg(next_entry_id(&run.dead_last))
            .arg(&run.token);
        let _: i64 = purge_lost(invocation.invoke_async(&mut conn).await)?;
        Ok(())
    }

    fn purge_invocation(
        &self,
        statuses: &[String],
        run: &PurgeRun,
        start: bool,
    ) -> redis::ScriptInvocation<'static> {
        let mut invocation = PURGE.prepare_invoke();
        invocation.key(self.keys.stream()).key(self.keys.purging());
        for key in statuses {
            invocation.key(key);
        }
        invocation
            .arg(GROUP)
            .arg(&run.stream_last)
            .arg(PURGE_FLAG_EXPIRY.as_millis() as u64)
            .arg(&run.token)
            .arg(if start { "start" } else { "" });
        invocation
    }

    /// The last id a stream generated (`0-0`: no stream).
    async fn last_entry_id(&self, stream: &str) -> Result<String, StoreError> {
        let mut conn = self.conn.clone();
        let info: Result<std::collections::HashMap<String, Value>, _> = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(stream)
            .query_async(&mut conn)
            .await;
        match info {
            Ok(info) => Ok(info
                .get("last-generated-id")
                .and_then(as_str)
                .unwrap_or("0-0")
                .to_string()),
            // No stream yet.
            Err(e)
                if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) =>
            {
                Ok("0-0".to_string())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Runs a raw command on the shared connection (for worker-side stream maintenance).
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        let value = conn.req_packed_command(cmd).await?;
        redis::from_redis_value(value).map_err(|e| StoreError::Unexpected(e.to_string()))
    }

    /// Decodes XREADGROUP / XCLAIM style entries (`[[id, [field, value, ...]], ...]`).
    pub fn decode_entries(
        entries: &[Value],
    ) -> (Vec<StreamEntry>, Vec<(String, entry::EntryError)>) {
        let mut good = Vec::with_capacity(entries.len());
        let mut bad = Vec::new();
        for item in entries {
            let Value::Array(parts) = item else { continue };
            let (Some(id), fields) = (parts.first().and_then(as_str), parts.get(1)) else {
                continue;
            };
            let fields: &[Value] = match fields {
                Some(Value::Array(f)) => f,
                _ => &[],
            };
            match entry::decode(id.to_string(), fields) {
                Ok(e) => good.push(e),
                Err(e) => bad.push((id.to_string(), e)),
            }
        }
        (good, bad)
    }
}

/// A purge script's reply, its `PURGELOST` error (the flag is not this purge's: nothing
/// ran) as [`StoreError::PurgeLost`], `PURGERUNNING` (another purge holds it) as
/// [`StoreError::PurgeRunning`].
fn purge_lost<T>(reply: redis::RedisResult<T>) -> Result<T, StoreError> {
    match reply {
        Err(e) if e.code() == Some("PURGELOST") => Err(StoreError::PurgeLost),
        Err(e) if e.code() == Some("PURGERUNNING") => Err(StoreError::PurgeRunning),
        other => Ok(other?),
    }
}

/// The smallest stream entry id after `id` (`XTRIM MINID` keeps ids at or above it).
fn next_entry_id(id: &str) -> String {
    match id.split_once('-') {
        Some((ms, seq)) => match seq.parse::<u64>() {
            Ok(seq) if seq < u64::MAX => format!("{ms}-{}", seq + 1),
            _ => format!("{}-0", ms.parse::<u64>().unwrap_or(0).saturating_add(1)),
        },
        None => "0-1".to_string(),
    }
}
