//! The deployment-wide health poller of each processor: one process at a time holds a
//! lease and polls (`health_slot.lua`, on Redis' clock), and publishes what it learnt for
//! every process to read.
//!
//! Before it: the worker's health task, each interval. After it: the worker's routing,
//! which reads the published reports.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::Store;
use crate::error::StoreError;
use crate::payment::Processor;
use crate::store::types::{HealthReport, HealthSlot};
use crate::time::Millis;

static HEALTH_SLOT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../scripts/health_slot.lua")));

impl Store {
    /// poll; see `health_slot.lua`.
    pub async fn health_slot(
        &self,
        processor: Processor,
        me: &str,
        interval: Duration,
        lease_ttl: Duration,
    ) -> Result<HealthSlot, StoreError> {
        let mut conn = self.conn.clone();
        let slot: i64 = HEALTH_SLOT
            .key(self.keys.health_lease(processor))
            .key(self.keys.health(processor))
            .arg(me)
            .arg(interval.as_millis() as u64)
            .arg(lease_ttl.as_millis().max(1) as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(match slot {
            1 => HealthSlot::Poll,
            0 => HealthSlot::Leader,
            _ => HealthSlot::Follower,
        })
    }

    /// Publishes a health report for every process to read.
    pub async fn publish_health(
        &self,
        processor: Processor,
        report: HealthReport,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: () = redis::cmd("HSET")
            .arg(self.keys.health(processor))
            .arg("failing")
            .arg(report.failing as u8)
            .arg("min")
            .arg(report.min_response_ms)
            .arg("at")
            .arg(report.observed_at)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Both processors' latest health reports (`None` where none was published yet).
    pub async fn read_health(&self) -> Result<[Option<HealthReport>; 2], StoreError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for processor in Processor::ALL {
            pipe.cmd("HMGET")
                .arg(self.keys.health(processor))
                .arg(&["failing", "min", "at"]);
        }
        let replies: Vec<(Option<u8>, Option<u64>, Option<Millis>)> =
            pipe.query_async(&mut conn).await?;
        let mut out = [None, None];
        for (slot, reply) in out.iter_mut().zip(replies) {
            if let (Some(failing), Some(min), Some(at)) = reply {
                *slot = Some(HealthReport {
                    failing: failing == 1,
                    min_response_ms: min,
                    observed_at: at,
                });
            }
        }
        Ok(out)
    }
}
