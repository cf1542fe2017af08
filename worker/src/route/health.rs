//! The shared health cache. The processors allow one `GET /payments/service-health` per
//! 5 s for the whole deployment, so exactly one process polls each processor: the holder
//! of a Redis lease (`health_slot.lua`), handed over when it stops renewing. It publishes
//! each report to Redis; every worker refreshes a local copy a few times a second, so no
//! payment ever waits on a Redis read or a health call.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::metrics as names;
use common::payment::Processor;
use common::shutdown::Shutdown;
use common::store::{HealthReport, HealthSlot, Store};
use common::time::now_ms;

use crate::dispatch::client::{HealthAnswer, ProcessorClient};

#[derive(Debug, Clone, Copy)]
pub struct HealthConfig {
    /// Time between two polls of one processor, deployment-wide (above its 5 s window).
    pub interval: Duration,
    /// Timeout of one health call (a queued call can legitimately wait a window).
    pub timeout: Duration,
    /// How often the local copy is refreshed from Redis (and the lease renewed).
    pub refresh: Duration,
}

/// The local copy of both processors' reports.
#[derive(Debug, Default)]
pub struct HealthCache {
    reports: Mutex<[Option<HealthReport>; 2]>,
}

impl HealthCache {
    pub fn get(&self, processor: Processor) -> Option<HealthReport> {
        self.reports.lock().ok().and_then(|r| r[processor.index()])
    }

    /// Replaces the copy; returns the processors that went from failing to healthy.
    pub fn update(&self, fresh: [Option<HealthReport>; 2]) -> Vec<Processor> {
        let Ok(mut reports) = self.reports.lock() else {
            return Vec::new();
        };
        let mut recovered = Vec::new();
        for p in Processor::ALL {
            let (old, new) = (reports[p.index()], fresh[p.index()]);
            if old.is_some_and(|o| o.failing) && new.is_some_and(|n| !n.failing) {
                recovered.push(p);
            }
            if new.is_some() {
                reports[p.index()] = new;
            }
        }
        recovered
    }
}

/// Runs until shutdown: renew/take the lease, poll when due, refresh the local copy.
/// `on_change` is called after every refresh with the processors that recovered.
pub async fn run(
    store: Store,
    client: ProcessorClient,
    cache: Arc<HealthCache>,
    config: HealthConfig,
    me: String,
    mut shutdown: Shutdown,
    on_recovered: impl Fn(Processor) + Send + Sync + 'static,
) {
    let mut tick = tokio::time::interval(config.refresh);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The lease outlives a few missed renewals but lapses within one poll interval.
    let lease_ttl = config
        .interval
        .min(config.refresh * 8)
        .max(config.refresh * 2);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        for processor in Processor::ALL {
            match store
                .health_slot(processor, &me, config.interval, lease_ttl)
                .await
            {
                Ok(HealthSlot::Poll) => {
                    let (store, client) = (store.clone(), client.clone());
                    tokio::spawn(poll(store, client, processor, config.timeout));
                }
                Ok(HealthSlot::Leader | HealthSlot::Follower) => {}
                Err(e) => tracing::debug!(error = %e, "health lease check failed"),
            }
        }
        match store.read_health().await {
            Ok(fresh) => {
                let now = now_ms();
                for p in Processor::ALL {
                    if let Some(r) = fresh[p.index()] {
                        metrics::gauge!(names::HEALTH_AGE_SECONDS, "processor" => p.as_str())
                            .set((now - r.observed_at).max(0) as f64 / 1000.0);
                        metrics::gauge!(names::HEALTH_FAILING, "processor" => p.as_str())
                            .set(r.failing as u8 as f64);
                    }
                }
                for p in cache.update(fresh) {
                    on_recovered(p);
                }
            }
            Err(e) => tracing::debug!(error = %e, "health refresh failed"),
        }
    }
}

async fn poll(store: Store, client: ProcessorClient, processor: Processor, timeout: Duration) {
    let answer = client.health(processor, timeout).await;
    let outcome = match &answer {
        HealthAnswer::Report { .. } => "ok",
        HealthAnswer::RateLimited => "rate_limited",
        HealthAnswer::Unavailable => "error",
    };
    metrics::counter!(
        names::HEALTH_POLLS_TOTAL,
        "processor" => processor.as_str(),
        "outcome" => outcome,
    )
    .increment(1);
    match answer {
        HealthAnswer::Report {
            failing,
            min_response_ms,
        } => {
            let report = HealthReport {
                failing,
                min_response_ms,
                observed_at: now_ms(),
            };
            tracing::debug!(%processor, failing, min_response_ms, "health polled");
            if let Err(e) = store.publish_health(processor, report).await {
                tracing::warn!(error = %e, "could not publish a health report");
            }
        }
        HealthAnswer::RateLimited => {
            tracing::warn!(%processor, "health endpoint answered 429: another caller shares the window");
        }
        HealthAnswer::Unavailable => {
            tracing::debug!(%processor, "health endpoint did not answer");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(failing: bool) -> Option<HealthReport> {
        Some(HealthReport {
            failing,
            min_response_ms: 10,
            observed_at: 1,
        })
    }

    #[test]
    fn update_reports_recoveries_and_keeps_old_data_when_none_is_new() {
        let cache = HealthCache::default();
        assert!(cache.update([report(true), None]).is_empty());
        assert_eq!(
            cache.update([report(false), None]),
            vec![Processor::Default]
        );
        cache.update([None, None]);
        assert_eq!(cache.get(Processor::Default), report(false));
        assert_eq!(cache.get(Processor::Fallback), None);
    }
}
