//! Load generators: the reference test with its score, the open-loop throughput benchmark,
//! the backlog drain benchmark and the soak (binary `paystream-load`).
//!
//! The modules come in layers; each imports only from the layers above it:
//! 1. tools: [`control`] (the backend's and the processors' HTTP APIs), [`checker`] (one
//!    consistency check), [`score`], [`stats`] (HDR latency, outcomes), [`procstat`] (CPU and
//!    memory of processes from `/proc`), [`redis_info`] (what the stack's Redis reports);
//! 2. report types, leaves that name no scenario: [`rinha_report`], [`throughput_report`],
//!    [`drain_report`], [`soak_report`] (with the soak's verdict);
//! 3. scenarios, each returning its report: [`rinha`], [`throughput`], [`drain`] (with the
//!    [`throughput`] client), [`soak`] (with [`rinha`]'s stages and the [`throughput`] client);
//! 4. output, from a finished report only: [`report`] (the stdout table) and [`plot`] (SVG).
//!
//! Data flow of a reference run ([`run_rinha`]):
//! [`control`] (purge, set stage 0) → [`rinha`] (virtual users post payments; stage changes
//! via [`control`]; [`checker`] compares summaries every stage) → [`stats`] (HDR latency,
//! outcomes, per-second timeline) → [`score`] (exact: `common::money::Decimal`) →
//! [`RinhaReport`] → the binary: JSON, [`report`] (table) and [`plot`] (SVG).
//!
//! Data flow of a throughput run ([`run_throughput`]):
//! [`throughput`] (open-loop schedule over raw keep-alive connections, sampler of the
//! backend's totals and of [`procstat`]) → [`stats`] → [`ThroughputReport`] → the binary.
//!
//! Data flow of a drain run ([`run_drain`]):
//! [`control`] (purge, both processors failing) → [`drain`] (an outage of open-loop posts with
//! the [`throughput`] client, then the default processor recovers and the backend's totals are
//! polled until the backlog is gone) → [`DrainReport`] → the binary.
//!
//! Data flow of a soak run ([`run_soak`]):
//! [`control`] (purge, stage 0) → [`soak`] (open-loop posts with the [`throughput`] client for
//! the whole run; [`rinha`]'s stages cycling; [`checker`] on a recent and an old window; a
//! sampler of the load, Redis ([`redis_info`]) and [`procstat`]; then a drain and the final
//! totals) → [`soak_report`] (its verdict) → [`SoakReport`] → the binary.
//!
//! All are library calls so tests and scripts can run them; the binary parses flags and
//! writes what a run returns.

pub mod checker;
pub mod control;
pub mod drain;
pub mod drain_report;
pub mod plot;
pub mod procstat;
pub mod redis_info;
pub mod report;
pub mod rinha;
pub mod rinha_report;
pub mod score;
pub mod soak;
pub mod soak_report;
pub mod stats;
pub mod throughput;
pub mod throughput_report;

pub use drain::{run_drain, DrainConfig};
pub use drain_report::DrainReport;
pub use rinha::{run_rinha, RinhaConfig};
pub use rinha_report::RinhaReport;
pub use soak::{run_soak, SoakConfig};
pub use soak_report::SoakReport;
pub use throughput::{run_throughput, ThroughputConfig};
pub use throughput_report::ThroughputReport;
