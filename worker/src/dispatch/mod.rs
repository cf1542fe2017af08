//! Talking to the processors. Comes after routing, before recording. [`client`] makes
//! the calls; [`outcome`] classifies their answers into what the pipeline may conclude.

pub mod client;
pub mod http1;
pub mod outcome;

pub use client::{ProcessorClient, Transport};
pub use outcome::{Lookup, SendOutcome};
