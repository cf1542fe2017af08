//! The one error type of every Redis operation: what a caller needs to tell apart
//! (certainly not run, maybe run, a reply no script gives, a summary edge that cannot be
//! answered exactly).
//!
//! A leaf: it imports only [`crate::time`], so every module can import it and none is
//! imported back. Raised by: every [`crate::store`] operation, [`crate::batch`] (which hands
//! a failed script call to each of its callers) and [`crate::retention`]. Read by: the
//! gateway's error mapping (503, 504, 422) and the worker's back-off.

use crate::time::Millis;

/// A Redis failure as the callers need to tell it apart.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The command was certainly not executed: Redis refused the connection, or answered
    /// with an error before running anything (memory full, loading, busy). The caller may
    /// back off and retry; the gateway answers 503.
    #[error("redis unavailable: {0}")]
    Unavailable(#[source] redis::RedisError),
    /// The command was sent but no answer came (timeout, connection lost while waiting):
    /// it may or may not have run. The gateway answers 504 "outcome unknown".
    #[error("redis outcome unknown: {0}")]
    Unknown(#[source] redis::RedisError),
    /// Redis answered something a script never returns: a bug or a foreign key layout.
    #[error("unexpected redis reply: {0}")]
    Unexpected(String),
    /// A summary window has a millisecond edge in a second whose detail was dropped
    /// (`SUMMARY_DETAIL_RETENTION`, `drop_detail.lua`): it cannot be answered exactly. The
    /// detail is kept from `kept_from` (ms) on; the gateway answers 422.
    #[error("summary detail dropped before {kept_from} ms")]
    DetailDropped { kept_from: Millis },
    /// Another purge holds the purge flag: this one did not start (nothing was deleted).
    /// The gateway answers 409.
    #[error("a purge is already running")]
    PurgeRunning,
    /// The purge flag is no longer this purge's (it expired between two renewals, or
    /// another purge took it after that): the purge stopped, and its last step (the summary
    /// wipe) did not run. Payments it deleted stay deleted; running it again finishes the
    /// job. The gateway answers 409.
    #[error("the purge lost its flag (it expired or another purge took it) and stopped")]
    PurgeLost,
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        if written_maybe(&e) {
            StoreError::Unknown(e)
        } else {
            StoreError::Unavailable(e)
        }
    }
}

/// Error replies Redis gives before running a command or script at all: memory full (every
/// script that grows state declares it, so Redis refuses it before its first command),
/// another script running, loading, an unknown script, a replica, a disk or replication
/// problem, cluster redirections, a transaction aborted before it ran, and `ERR` (our
/// scripts raise their own errors before their first write). Any other code — `WRONGTYPE`
/// from a command inside a script, say — may come after the script wrote something: Redis
/// does not roll a script back.
const NOT_RUN: [&str; 14] = [
    "ERR",
    "OOM",
    "BUSY",
    "LOADING",
    "NOSCRIPT",
    "READONLY",
    "MASTERDOWN",
    "MISCONF",
    "NOREPLICAS",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "MOVED",
    "ASK",
    "EXECABORT",
];

/// Whether a failed command may have reached Redis and run. Only a refused connection
/// (nothing was ever sent on it) and an error reply of [`NOT_RUN`] are certain. Every
/// other failure — a timeout, a reset or EOF while waiting for the answer, another error
/// reply — may follow a write.
fn written_maybe(e: &redis::RedisError) -> bool {
    if e.is_connection_refusal() {
        return false;
    }
    !e.code().is_some_and(|code| NOT_RUN.contains(&code))
}

/// Whether the operation certainly did not run (Redis refused it before its first command,
/// or the connection was refused): calling it again is the same as calling it once. The
/// worker retries such a record, settle or unanswered as that same call.
pub fn not_run(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(_))
}

/// Whether Redis refused a write because its memory is full (nothing ran).
pub fn is_out_of_memory(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(e) if e.code() == Some("OOM"))
}

impl StoreError {
    /// Bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "redis_unavailable",
            StoreError::Unknown(_) => "redis_unknown",
            StoreError::Unexpected(_) => "redis_unexpected",
            StoreError::DetailDropped { .. } => "summary_detail_dropped",
            StoreError::PurgeRunning => "purge_running",
            StoreError::PurgeLost => "purge_lost",
        }
    }
}
