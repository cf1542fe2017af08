//! What the runs read from the stack's Redis itself: `INFO` fields, the persistence mode and
//! each command's cost. A leaf: [`rinha`](super::rinha) and [`soak`](super::soak) call it.

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

/// The value of `name` in `INFO` text (`name:value` lines).
pub fn info_field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == name).then(|| v.trim())
    })
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

    #[test]
    fn info_fields_are_found_by_exact_name() {
        let text = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n";
        assert_eq!(info_field(text, "used_memory"), Some("1048576"));
        assert_eq!(info_field(text, "used_mem"), None);
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
