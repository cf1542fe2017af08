//! Talking to the processors. Comes after routing, before recording. [`client`] makes
//! the calls over [`http1`]'s keep-alive pools; [`outcome`] classifies their answers into what the pipeline may conclude.

pub mod client;
pub mod http1;
pub mod outcome;

pub use client::ProcessorClient;
pub use outcome::{Lookup, SendOutcome};
