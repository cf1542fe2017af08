//! Paystream's instruments: the processor simulator and the load generators.
//!
//! Layout:
//! - [`sim`]: a faithful simulator of the external payment processors (docs/protocol.md §3),
//!   startable in-process on an ephemeral port for tests, or as the `processor-sim` binary.
//! - [`load`]: the reference load test (docs/protocol.md §5) with its score, the open-loop
//!   throughput benchmark, the backlog drain benchmark and the soak; each returns a report
//!   that the binary `paystream-load` writes as JSON, an SVG picture and a table.
//!
//! Data flow: a scenario of [`load`] drives a stack (gateway, Redis, worker) whose workers
//! call processors — [`sim`]'s, locally — and reads both sides' totals back.

pub mod load;
pub mod sim;
