//! Paystream's shared vocabulary: the types a payment is made of, how it is encoded in
//! Redis, the atomic scripts that change its state, configuration and telemetry.
//!
//! # Data flow
//!
//! ```text
//!  client JSON ──payment::ValidPayment::parse──▶ store::Store::accept   (store/accept.rs,
//!                                                  scripts/accept.lua: status hash + XADD,
//!                                                  one atomic step)
//!                                                         │
//!                         entry::StreamEntry (id, cents)  ▼
//!  worker ◀──XREADGROUP── {ps}:stream ── store::Store::begin_attempt  (store/attempt.rs,
//!                                          scripts/begin.lua: confirms the entry is still
//!                                          this consumer's, pins the processor before any
//!                                          call is made)
//!     │  processor call (requestedAt chosen by time::now_ms at send time)
//!     │  no answer → store::Store::unanswered (scripts/unanswered.lua: when a 404 proves
//!     │  absence, on Redis' clock); definite failure or late-enough 404 → Store::settle
//!     ▼
//!  store::Store::record (store/record.rs, scripts/record.lua: status=processed, summary
//!                        buckets, XACK + XDEL — all or nothing)
//!                                                         │
//!  retention::compact_summary / drop_summary_detail ──────┤ (bounded by time)
//!                                                         ▼
//!  GET /payments-summary ◀── store::Store::summary (store/summary/: plan.rs plans the
//!                            window, scripts/summary.lua + edge reads, exact edges)
//! ```
//!
//! # Layout
//! Leaves first: each module imports only modules listed above it (the graph is acyclic).
//! - [`money`]: exact money for the whole workspace: `Cents` (an amount), `Decimal` (fees,
//!   sums, scores), the one JSON-number grammar, the one rounding rule (half away from zero).
//! - [`payment`]: `PaymentId`, `Processor`, `Status`, request parsing (its amount is `Cents`).
//! - [`time`]: UTC millisecond timestamps, ISO-8601 in and out.
//! - [`entry`]: the stream entry's fields, encode/decode.
//! - [`keys`]: the only place a Redis key is formatted (all share one hash tag).
//! - [`error`]: `StoreError`, the one error of every Redis operation.
//! - [`config`]: environment parsing that names the variable on error ([`config::env`](mod@config::env)), the
//!   Redis settings ([`config::redis`]) and the retention settings ([`config::retention`]).
//! - [`metrics`]: metric names.
//! - [`batch`]: concurrent accepts, begins and records share one script call.
//! - [`store`]: every Redis operation the gateway and worker perform, over the Lua scripts,
//!   by job: `accept`, `attempt`, `record`, `summary` (with its planner), `health`,
//!   `maintenance`; their values in [`store::types`].
//! - [`retention`]: what is kept and for how long (status expiry, summary compaction,
//!   dead-letter trimming): state bounded by time, not by payments served.
//! - [`shutdown`], [`telemetry`], [`runtime`]: process plumbing shared by both binaries;
//!   [`admin`]: each process's own `/metrics` listener.
//! - `testing` (feature `test-support`): a real `redis-server` on an ephemeral port.

pub mod admin;
pub mod batch;
pub mod config;
pub mod entry;
pub mod error;
pub mod keys;
pub mod memory;
pub mod metrics;
pub mod money;
pub mod payment;
pub mod retention;
pub mod runtime;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod time;

#[cfg(feature = "test-support")]
pub mod testing;
