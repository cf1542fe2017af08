//! One module per resource. Each handler takes the shared state and the parts of the
//! request it needs, and returns a response or an [`crate::error::ApiError`].

pub mod admin;
pub mod health;
pub mod payments;
pub mod status;
pub mod summary;
