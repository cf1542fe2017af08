//! Paystream's instruments: the processor simulator and the load generators.
//!
//! Layout:
//! - [`sim`]: a faithful simulator of the external payment processors (SPEC section 3),
//!   startable in-process on an ephemeral port for tests, or as the `processor-sim` binary.
//! - [`load`]: the reference load test (SPEC section 5) with its score, the open-loop
//!   throughput benchmark, the backlog drain benchmark, what Redis spends per recorded
//!   payment, and the plots they write (binary `paystream-load`).

pub mod load;
pub mod sim;
