//! `common`'s own integration tests: the store's scripts, the summary and retention, each
//! test against its own real `redis-server` (`common::testing`), through [`Store`] alone.
//! What needs the gateway's HTTP (status codes, problem documents) is tested in the
//! gateway.
//!
//! [`Store`]: common::store::Store

#![allow(clippy::unwrap_used)]

// The gateway's and worker's name for this crate, so these tests read like theirs.
extern crate paystream_common as common;

mod consumers;
mod helpers;
mod purge;
mod retention;
mod scripts;
mod summary;
