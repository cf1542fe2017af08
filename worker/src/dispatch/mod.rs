//! Talking to the processors. Comes after routing, before recording. [`client`] makes
//! the calls; [`outcome`] classifies their answers into what the pipeline may conclude.

pub mod client;
pub mod outcome;

pub use client::ProcessorClient;
pub use outcome::{Lookup, SendOutcome};
