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
}
