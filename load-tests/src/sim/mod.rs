//! A faithful simulator of the external payment processors (docs/protocol.md §3).
//!
//! The worker's tests and the local stack need processors that behave like the real
//! ones in every detail that decides correctness: the delay runs before the store and
//! survives a client disconnect, failure mode answers `500` without storing, a repeated
//! correlation id is `422`, amounts are exact cents, `requestedAt` is what the admin
//! summary filters on, and the health endpoint is rate limited with a short queue.
//!
//! # Data flow (a `POST /payments`, in the order it passes the modules)
//! - [`server`]: accepts the connection and hands the request to [`handlers`]
//!   ([`run`] for the binary, [`spawn`] → [`SimHandle`] for tests).
//! - [`handlers`]: routes; asks [`admission`] for a place (else `429`), parses the body
//!   (the amount with the workspace's one parser, `common::money`, rounded to cents as the
//!   processors do; `requestedAt` with its one timestamp parser, `common::time`, to UTC
//!   ms), then in a spawned task waits for a slot, sleeps the delay, checks failure mode
//!   and inserts into [`store`].
//! - [`store`]: the payments; the admin summary and the handle read totals from it.
//! - [`health`]: the rate limit of `GET /payments/service-health`.
//! - [`state`]: the [`Simulator`] all of the above share (knobs, store, counters),
//!   built from a [`SimConfig`] ([`config`]); the binary reads its configuration with
//!   [`env`](mod@env) (the workspace's `common::config` parser).
//! - [`error`]: every failure and its one status mapping.

pub mod admission;
pub mod config;
pub mod env;
pub mod error;
pub mod handlers;
pub mod health;
pub mod server;
pub mod state;
pub mod store;

pub use config::{ConfigError, SimConfig};
pub use env::ServeConfig;
pub use server::{run, spawn, SimHandle};
pub use state::{SimSummary, Simulator};
pub use store::StoredPayment;
