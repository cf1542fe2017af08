//! Load generators: the reference test with its score, the open-loop throughput benchmark,
//! the backlog drain benchmark, the Redis benchmarks (what Redis spends per payment, the
//! connection pool, the state's scale), the soak and the CPU breakdowns (binary
//! `paystream-load`).
//!
//! Data flow of a reference run ([`run_rinha`]):
//! [`control`] (purge, set stage 0) → [`rinha`] (virtual users post payments; stage changes
//! via [`control`]; [`checker`] compares summaries every stage) → [`stats`] (HDR latency,
//! outcomes, per-second timeline) → [`score`] (exact: `common::money::Decimal`) →
//! [`report`] (stdout table, JSON) and [`plot`] (SVG).
//!
//! Data flow of a throughput run ([`run_throughput`]):
//! [`throughput`] (open-loop schedule over raw keep-alive connections, sampler of the
//! backend's totals and of [`procstat`]) → [`stats`] → [`report`] and [`plot`].
//!
//! Data flow of a drain run ([`run_drain`]):
//! [`control`] (purge, both processors failing) → [`drain`] (an outage of open-loop posts with
//! the [`throughput`] client, then the default processor recovers and the backend's totals are
//! polled until the backlog is gone) → [`report`] and [`plot`].
//!
//! Data flow of a Redis cost run ([`run_redis_cost`]):
//! [`redis_cost`] (per round and variant: accept and deliver payments, record them between
//! two `INFO` snapshots, check summary windows, delete the keys) fills the leaf
//! [`redis_cost_report`] → [`report`] and [`plot`].
//!
//! Data flow of a pool run ([`run_redis_pool`]): [`redis_pool`] (per round, caller count and
//! variant: the gateway's accept from concurrent callers over the multiplexed connection or a
//! deadpool-redis pool, between two CPU readings) fills the leaf [`redis_pool_report`] →
//! [`report`] and [`plot`].
//!
//! Measurements that compare or read other runs, each printing its own table:
//! [`ref_compare`] (reference runs against a static nginx and the stack, from their JSON),
//! [`tower_cost`] (the gateway served by [`gateway_stack`] plain and with a tower stack, each
//! loaded by [`throughput`]) and [`perf_buckets`] (a `perf script` of one process, grouped into
//! where its CPU goes, with the CPU per payment of a [`throughput`] run).
//!
//! Data flow of a soak run ([`run_soak`]):
//! [`control`] (purge, stage 0) → [`soak`] (open-loop posts with the [`throughput`] client for
//! the whole run; [`rinha`]'s stages cycling; [`checker`] on a recent and an old window; a
//! sampler of the load, Redis and [`procstat`]; then a drain and the final totals) fills the
//! leaf [`soak_report`] (and its verdict) → [`report`] and [`plot`].
//!
//! Data flow of a state-scale run ([`run_state_scale`]):
//! [`state_scale`] (a scratch Redis of its own filled through the real scripts with
//! [`synthetic`] payments, then the summary call timed and memory read per retention state,
//! via [`redis_info`]) fills the leaf [`state_scale_report`] → [`report`] and [`plot`].
//!
//! All are library calls so tests and scripts can run them; the binary only parses flags.

pub mod checker;
pub mod control;
pub mod drain;
pub mod gateway_stack;
pub mod perf_buckets;
pub mod plot;
pub mod procstat;
pub mod redis_cost;
pub mod redis_cost_report;
pub mod redis_info;
pub mod redis_pool;
pub mod redis_pool_report;
pub mod ref_compare;
pub mod report;
pub mod rinha;
pub mod score;
pub mod soak;
pub mod soak_report;
pub mod state_scale;
pub mod state_scale_report;
pub mod stats;
pub mod synthetic;
pub mod throughput;
pub mod tower_cost;

pub use drain::{run_drain, DrainConfig, DrainReport};
pub use redis_cost::{run_redis_cost, RedisCostConfig};
pub use redis_pool::{run_redis_pool, RedisPoolConfig};
pub use rinha::{run_rinha, RinhaConfig, RinhaReport};
pub use soak::{run_soak, SoakConfig};
pub use state_scale::{run_state_scale, StateScaleConfig};
pub use throughput::{run_throughput, ThroughputConfig, ThroughputReport};
