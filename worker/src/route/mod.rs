//! Deciding which processor a payment goes to. Comes after the stream read, before the
//! dispatch. [`policy`] holds the rule; the pinning rule (a payment whose outcome on one
//! processor is unknown never goes to the other) is enforced by the store, not here.

pub mod observed;
pub mod policy;
