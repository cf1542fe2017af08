//! What the Redis benchmarks read from the server itself: `INFO` fields and the persistence
//! mode. A leaf: [`redis_cost`](super::redis_cost), [`redis_pool`](super::redis_pool),
//! [`state_scale`](super::state_scale) and [`soak`](super::soak) call it.

use anyhow::Context as _;
use common::store::Store;

/// `appendfsync` when AOF is on, else `off`.
pub async fn aof_mode(store: &Store) -> anyhow::Result<String> {
    let on: Vec<String> = store
        .query(redis::cmd("CONFIG").arg("GET").arg("appendonly"))
        .await?;
    if on.get(1).map(String::as_str) != Some("yes") {
        return Ok("off".into());
    }
    let fsync: Vec<String> = store
        .query(redis::cmd("CONFIG").arg("GET").arg("appendfsync"))
        .await?;
    Ok(fsync.get(1).cloned().unwrap_or_default())
}

/// The `INFO` fields a window needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    pub version: String,
    /// `used_cpu_user + used_cpu_sys`, s.
    pub cpu_s: f64,
    pub main_cpu_s: f64,
    pub used_memory: u64,
    pub forks: u64,
}

impl Info {
    pub async fn read(store: &Store) -> anyhow::Result<Info> {
        let text: String = store.query(&redis::cmd("INFO")).await?;
        Info::parse(&text)
    }

    pub fn parse(text: &str) -> anyhow::Result<Info> {
        let num = |name: &str| -> anyhow::Result<f64> {
            info_field(text, name)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("INFO has no number {name}"))
        };
        Ok(Info {
            version: info_field(text, "redis_version").unwrap_or("?").to_owned(),
            cpu_s: num("used_cpu_user")? + num("used_cpu_sys")?,
            // Redis 6.2+; zero where absent.
            main_cpu_s: num("used_cpu_user_main_thread").unwrap_or(0.0)
                + num("used_cpu_sys_main_thread").unwrap_or(0.0),
            used_memory: num("used_memory")? as u64,
            forks: num("total_forks").unwrap_or(0.0) as u64,
        })
    }
}

/// The value of `name` in `INFO` text (`name:value` lines).
pub fn info_field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == name).then(|| v.trim())
    })
}

/// `used_memory` once the allocator has returned what it can (`MEMORY PURGE`), so two
/// states of the data set compare without the allocator's leftovers of the step between.
pub async fn used_memory(store: &Store) -> anyhow::Result<u64> {
    let _: () = store.query(redis::cmd("MEMORY").arg("PURGE")).await?;
    Ok(Info::read(store).await?.used_memory)
}

/// Server-side µs of the outermost commands since the last `CONFIG RESETSTAT`, from `INFO
/// commandstats`: `EXEC` when the calls were transactions (its time covers what it ran),
/// else `EVALSHA`. Commands run inside them are counted again under their own names, so
/// they are not added.
pub fn outermost_usec(text: &str) -> u64 {
    let usec = |name: &str| {
        let stats = info_field(text, &format!("cmdstat_{name}"))?;
        stats
            .split(',')
            .find_map(|kv| kv.strip_prefix("usec=")?.parse::<u64>().ok())
    };
    usec("exec").or_else(|| usec("evalsha")).unwrap_or(0)
}

/// [`outermost_usec`] read from the server now.
pub async fn server_usec(store: &Store) -> anyhow::Result<u64> {
    let text: String = store.query(redis::cmd("INFO").arg("commandstats")).await?;
    Ok(outermost_usec(&text))
}

/// One command's share of a run, from `INFO commandstats` after a `CONFIG RESETSTAT`: the
/// commands run inside a script or transaction are counted under their own names too, so
/// `evalsha`'s and `exec`'s µs include theirs.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CommandCost {
    pub command: String,
    pub calls: u64,
    pub usec: u64,
    pub calls_per_payment: f64,
    pub usec_per_payment: f64,
}

/// Every command of `INFO commandstats`, per payment, most µs first.
pub fn command_costs(text: &str, payments: u64) -> Vec<CommandCost> {
    let per = |n: u64| n as f64 / payments.max(1) as f64;
    let mut out: Vec<CommandCost> = text
        .lines()
        .filter_map(|line| {
            let (name, stats) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |key: &str| {
                stats.split(',').find_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    (k == key).then(|| v.parse::<u64>().ok())?
                })
            };
            let (calls, usec) = (field("calls")?, field("usec")?);
            Some(CommandCost {
                command: name.to_string(),
                calls,
                usec,
                calls_per_payment: per(calls),
                usec_per_payment: per(usec),
            })
        })
        .collect();
    out.sort_by(|a, b| b.usec.cmp(&a.usec).then(a.command.cmp(&b.command)));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const INFO: &str = "# Server\r\nredis_version:7.0.15\r\n# CPU\r\nused_cpu_sys:1.500000\r\n\
        used_cpu_user:2.250000\r\nused_cpu_sys_main_thread:1.000000\r\n\
        used_cpu_user_main_thread:2.000000\r\n# Memory\r\nused_memory:1048576\r\n\
        used_memory_human:1.00M\r\n# Stats\r\ntotal_forks:3\r\n";

    #[test]
    fn info_is_parsed_by_exact_field_name() {
        let info = Info::parse(INFO).unwrap();
        assert_eq!(info.version, "7.0.15");
        assert_eq!(info.cpu_s, 3.75);
        assert_eq!(info.main_cpu_s, 3.0);
        assert_eq!(info.used_memory, 1_048_576);
        assert_eq!(info.forks, 3);
        assert_eq!(info_field(INFO, "used_memory"), Some("1048576"));
        assert_eq!(info_field(INFO, "used_cpu"), None);
        assert!(Info::parse("used_memory:1\r\n").is_err());
    }

    #[test]
    fn outermost_usec_reads_exec_else_evalsha() {
        let text = "# Commandstats\r\ncmdstat_evalsha:calls=12,usec=3400,usec_per_call=283.33,\
            rejected_calls=0,failed_calls=0\r\ncmdstat_exec:calls=12,usec=4000,usec_per_call=333.33\r\n\
            cmdstat_zrangebyscore:calls=4,usec=100,usec_per_call=25.00\r\n";
        assert_eq!(outermost_usec(text), 4000);
        let text = "cmdstat_evalsha:calls=12,usec=3400,usec_per_call=283.33\r\n";
        assert_eq!(outermost_usec(text), 3400);
        assert_eq!(outermost_usec(""), 0);
    }

    #[test]
    fn command_costs_are_per_payment_most_usec_first() {
        let text = "# Commandstats\r\ncmdstat_evalsha:calls=12,usec=3400,usec_per_call=283.33,\
            rejected_calls=0,failed_calls=0\r\ncmdstat_xreadgroup:calls=4,usec=4000,usec_per_call=1000.00\r\n\
            cmdstat_config|resetstat:calls=1,usec=5,usec_per_call=5.00\r\n";
        let costs = command_costs(text, 4);
        let names: Vec<&str> = costs.iter().map(|c| c.command.as_str()).collect();
        assert_eq!(names, ["xreadgroup", "evalsha", "config|resetstat"]);
        assert_eq!(costs[1].calls, 12);
        assert_eq!(costs[1].calls_per_payment, 3.0);
        assert_eq!(costs[0].usec_per_payment, 1000.0);
        assert!(command_costs("", 4).is_empty());
    }
}
