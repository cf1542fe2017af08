//! Load generators: the reference test with its score, the open-loop throughput benchmark,
//! and the backlog drain benchmark (binary `paystream-load`).
//!
//! Data flow of a reference run ([`run_rinha`]):
//! [`control`] (purge, set stage 0) → [`rinha`] (virtual users post payments; stage changes
//! via [`control`]; [`checker`] compares summaries every stage) → [`stats`] (HDR latency,
//! outcomes, per-second timeline) → [`score`] (exact [`money`]) → [`report`] (stdout table,
//! JSON) and [`plot`] (SVG).
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
//! All are library calls so tests and scripts can run them; the binary only parses flags.

pub mod checker;
pub mod control;
pub mod drain;
pub mod gateway_stack;
pub mod money;
pub mod perf_buckets;
pub mod plot;
pub mod procstat;
pub mod redis_cost;
pub mod redis_cost_report;
pub mod redis_pool;
pub mod redis_pool_report;
pub mod ref_compare;
pub mod report;
pub mod rinha;
pub mod score;
pub mod stats;
pub mod throughput;
pub mod tower_cost;

pub use drain::{run_drain, DrainConfig, DrainReport};
pub use redis_cost::{run_redis_cost, RedisCostConfig};
pub use redis_pool::{run_redis_pool, RedisPoolConfig};
pub use rinha::{run_rinha, RinhaConfig, RinhaReport};
pub use throughput::{run_throughput, ThroughputConfig, ThroughputReport};
