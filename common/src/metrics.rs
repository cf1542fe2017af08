//! Metric names, one constant each, so the gateway, the worker, the docs and the tests
//! agree. Naming: `paystream_<noun>_<unit>[_total]`, base units, bounded labels.

/// HTTP requests served by the gateway; labels `route`, `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "paystream_http_requests_total";
/// Gateway request latency; labels `route`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "paystream_http_request_duration_seconds";
/// `POST /payments` outcomes; label `outcome` = accepted|replayed|conflict|invalid|busy|unavailable|rate_limited.
pub const PAYMENTS_RECEIVED_TOTAL: &str = "paystream_payments_received_total";
/// Payments recorded as processed; label `processor`.
pub const PAYMENTS_PROCESSED_TOTAL: &str = "paystream_payments_processed_total";
/// Cents recorded as processed; label `processor`.
pub const PAYMENTS_PROCESSED_CENTS_TOTAL: &str = "paystream_payments_processed_cents_total";
/// Processor calls; labels `processor`, `outcome`.
pub const PROCESSOR_CALLS_TOTAL: &str = "paystream_processor_calls_total";
/// Processor call latency; labels `processor`, `outcome`.
pub const PROCESSOR_CALL_DURATION_SECONDS: &str = "paystream_processor_call_duration_seconds";
/// Payments dead-lettered; label `reason`.
pub const DEAD_LETTERS_TOTAL: &str = "paystream_dead_letters_total";
/// Send attempts after the first; label `processor`.
pub const RETRIES_TOTAL: &str = "paystream_retries_total";
/// Entries read from the stream; label `source` = new|reclaimed.
pub const STREAM_READ_TOTAL: &str = "paystream_stream_entries_read_total";
/// Entries in the stream (queued + in flight).
pub const STREAM_BACKLOG: &str = "paystream_stream_backlog_entries";
/// Backlog (stream length) the gateway's accept script reported the last time it shed a
/// payment with 503 (absent until it first does). The worker's `STREAM_BACKLOG` is the
/// live value.
pub const GATEWAY_SHED_BACKLOG: &str = "paystream_gateway_shed_backlog_entries";
/// Redis' `used_memory / maxmemory` as the gateway last read it (0 without a `maxmemory`);
/// accepts are shed from `MEMORY_HIGH_WATER` on.
pub const REDIS_MEMORY_USED_RATIO: &str = "paystream_redis_memory_used_ratio";
/// Clients the gateway's per-client rate limiter currently tracks (after its periodic cleanup).
pub const RATE_LIMIT_TRACKED_CLIENTS: &str = "paystream_gateway_rate_limit_clients";
/// Payments being handled by this worker right now.
pub const WORKER_IN_FLIGHT: &str = "paystream_worker_in_flight_payments";
/// Payments per batched script call (accept, begin, record); label `op`.
pub const REDIS_BATCH_SIZE: &str = "paystream_redis_batch_payments";
/// Buckets of [`REDIS_BATCH_SIZE`].
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// Redis errors; label `kind`.
pub const REDIS_ERRORS_TOTAL: &str = "paystream_redis_errors_total";
/// Attempts not sent because the send window after the ownership check had passed (a
/// starved or frozen worker): ownership is confirmed again instead.
pub const SEND_WINDOW_MISSED_TOTAL: &str = "paystream_worker_send_window_missed_total";
/// First attempts the accept pinned, by what the reading worker did with them; label
/// `path`: `sent` (without `begin`), `late` (its window had passed: begun again on
/// default), `rerouted` (the router wanted fallback or held it: the pin cleared first).
pub const FIRST_ATTEMPTS_TOTAL: &str = "paystream_worker_first_attempts_total";
/// Stream entries the heartbeat found owned by another consumer; their tasks stop.
pub const ENTRIES_LOST_TOTAL: &str = "paystream_worker_entries_lost_total";
/// 1 while `AMBIGUITY_GRACE_MS` is below a processor's reported delay (the grace follows the
/// report then); label `processor`.
pub const GRACE_BELOW_DELAY: &str = "paystream_worker_grace_below_delay";

/// Latency buckets in seconds: from 50 µs (gateway hot path) to 10 s (slow processors).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
];

/// Routing decisions; label `decision` = default|fallback|hold.
pub const ROUTING_DECISIONS_TOTAL: &str = "paystream_routing_decisions_total";
/// Circuit breaker state per processor: 0 closed, 1 half-open, 2 open.
pub const BREAKER_STATE: &str = "paystream_breaker_state";
/// Age of the health report in the local cache; label `processor`.
pub const HEALTH_AGE_SECONDS: &str = "paystream_health_report_age_seconds";
/// Whether the health report says failing (1) or not (0); label `processor`.
pub const HEALTH_FAILING: &str = "paystream_health_failing";
/// Health polls made by this process; labels `processor`, `outcome` = ok|rate_limited|error.
pub const HEALTH_POLLS_TOTAL: &str = "paystream_health_polls_total";
/// Entries delivered to a consumer and not yet acknowledged.
pub const STREAM_PENDING: &str = "paystream_stream_pending_entries";
/// Entries not yet delivered to any consumer of the group (Redis' group lag).
pub const STREAM_GROUP_LAG: &str = "paystream_stream_group_lag_entries";
/// Duration of one Redis operation of the store; label `op`.
pub const REDIS_COMMAND_DURATION_SECONDS: &str = "paystream_redis_command_duration_seconds";
/// Summaries read a second time without tenths of a second: an edge second whose tenths do
/// not add up to it (payments recorded by a version before the tenths; `Store::summary`).
pub const SUMMARY_REREADS_TOTAL: &str = "paystream_summary_rereads_total";
/// Payments whose summary detail was compacted (`common::retention`).
pub const RETENTION_COMPACTED_TOTAL: &str = "paystream_retention_compacted_payments_total";
/// Hours of summary seconds from a version before the roll-ups, rolled up
/// (`common::retention`; non-zero only after such an upgrade).
pub const RETENTION_ROLLED_UP_HOURS_TOTAL: &str =
    "paystream_retention_summary_hours_rolled_up_total";
/// Seconds whose millisecond summary detail was dropped after `SUMMARY_DETAIL_RETENTION`
/// (walked: a second without payments counts too, days without traffic are skipped).
pub const RETENTION_DETAIL_SECONDS_DROPPED_TOTAL: &str =
    "paystream_retention_detail_seconds_dropped_total";
/// Dead letters removed after `PAYMENT_RETENTION`.
pub const RETENTION_DEAD_LETTERS_TRIMMED_TOTAL: &str =
    "paystream_retention_dead_letters_trimmed_total";
