//! Integration tests of the load generators: a compressed reference run and a small
//! throughput run against two in-process processor simulators and a stand-in backend
//! ([`fake_backend`]), the CLI, and the k6 script. No assertion depends on timing: the
//! machines are shared and noisy; runs are checked for shape and for bookkeeping.
#![allow(clippy::unwrap_used)]

mod fake_backend;

use std::path::{Path, PathBuf};
use std::time::Duration;

use paystream_load_tests::load::control::iso_ms;
use paystream_load_tests::load::money::Decimal;
use paystream_load_tests::load::procstat::ProcGroup;
use paystream_load_tests::load::{run_rinha, run_throughput, RinhaConfig, ThroughputConfig};
use paystream_load_tests::sim::{self, SimConfig};

const ADMIN_TOKEN: &str = "s3cret";

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

fn assert_svg(path: &Path) {
    let svg = std::fs::read_to_string(path).unwrap();
    assert!(svg.contains("<svg"), "{} is not an SVG", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_reference_run_scores_and_writes_its_files() {
    let default = sim::spawn(SimConfig::default_processor()).await.unwrap();
    let fallback = sim::spawn(SimConfig::fallback_processor()).await.unwrap();
    let backend =
        fake_backend::spawn(default.url(), fallback.url(), Some(ADMIN_TOKEN.into())).await;

    // A payment left over from "a previous run": the purge must remove it.
    let leftover = uuid::Uuid::new_v4();
    let status = reqwest::Client::new()
        .post(format!("{}/payments", default.url()))
        .json(&serde_json::json!({
            "correlationId": leftover,
            "amount": 19.90,
            "requestedAt": iso_ms(time::OffsetDateTime::now_utc()),
        }))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    assert!(default.stored(&leftover).is_some());

    let (_keep, out) = out_dir();
    let cfg = RinhaConfig {
        backend_url: backend.url(),
        default_url: default.url(),
        fallback_url: fallback.url(),
        admin_token: Some(ADMIN_TOKEN.into()),
        max_requests: 20,
        duration: Duration::from_secs(6),
        stage: Duration::from_secs(1),
        settle: Duration::from_secs(1),
        out_dir: Some(out.clone()),
        name: "compressed".into(),
        ..RinhaConfig::default()
    };
    let report = run_rinha(cfg).await.unwrap();

    // Set-up: purged everywhere (with the backend's token), and all six stages applied.
    assert_eq!(backend.purges(), 1);
    assert!(default.stored(&leftover).is_none());
    assert_eq!(report.stages.len(), 6);
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
    assert_eq!(default.simulator().delay_ms(), 0);
    assert!(!default.simulator().failure());
    assert_eq!(fallback.simulator().delay_ms(), 5000);
    assert!(!fallback.simulator().failure());

    // Load bookkeeping.
    let r = &report.requests;
    assert!(r.requests > 0);
    assert_eq!(
        r.requests,
        r.accepted + r.rejected_total() + r.timeouts + r.errors
    );
    assert!(backend.payments() >= r.accepted + r.rejected_total());
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

    // One check per stage, each with all three summaries.
    assert_eq!(report.checks.len(), 6);
    assert_eq!(report.check_errors, 0, "{:?}", report.checks);
    for c in &report.checks {
        assert!(c.from < c.to, "{} .. {}", c.from, c.to);
        assert!(c.backend.is_some() && c.default.is_some() && c.fallback.is_some());
    }
    assert_eq!(
        report.inconsistencies,
        report
            .checks
            .iter()
            .filter(|c| c.consistent == Some(false))
            .count() as u64
    );

    // The score is computed from the final summaries.
    let s = &report.score;
    let b = &report.summary.backend;
    assert_eq!(s.gross, b.default.total_amount + b.fallback.total_amount);
    assert_eq!(
        s.reported,
        b.default.total_requests + b.fallback.total_requests
    );
    assert_eq!(s.lag, r.accepted as i64 - s.reported as i64);
    assert_eq!(
        s.fine,
        if report.inconsistencies > 0 {
            "0.35".parse::<Decimal>().unwrap()
        } else {
            Decimal::ZERO
        }
    );
    assert_eq!(
        report.summary.default.fee_per_transaction,
        "0.05".parse().unwrap()
    );
    assert_eq!(
        report.summary.fallback.fee_per_transaction,
        "0.15".parse().unwrap()
    );
    // The fake only counts what a processor confirmed.
    assert!(
        !s.disqualified_reasons
            .iter()
            .any(|r| r.contains("processor stored")),
        "{:?}",
        s.disqualified_reasons
    );

    // Files: the JSON holds every figure with exact money, the SVG exists.
    let json_path = out.join("compressed.json");
    let json = read_json(&json_path);
    assert_eq!(json["name"], "compressed");
    assert_eq!(json["requests"]["requests"], r.requests);
    assert_eq!(json["checks"].as_array().unwrap().len(), 6);
    assert_eq!(json["stages"].as_array().unwrap().len(), 6);
    assert_eq!(json["settings"]["check_to_offset_ms"], 1500);
    assert_eq!(json["settings"]["check_from_offset_ms"], 2850);
    let text = std::fs::read_to_string(&json_path).unwrap();
    assert!(
        text.contains(&format!("\"score\": {}", s.score)),
        "score not exact in JSON"
    );
    assert_svg(&out.join("compressed.svg"));

    // The table has the headline figures.
    let table = paystream_load_tests::load::report::rinha_table(&report);
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
        backend_url: format!("http://127.0.0.1:{port}"),
        default_url: format!("http://127.0.0.1:{port}"),
        fallback_url: format!("http://127.0.0.1:{port}"),
        out_dir: None,
        ..RinhaConfig::default()
    };
    let err = run_rinha(cfg).await.unwrap_err();
    assert!(format!("{err:#}").contains("purging"), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_throughput_run_reports_steps_samples_and_processes() {
    let default = sim::spawn(SimConfig::default_processor()).await.unwrap();
    let fallback = sim::spawn(SimConfig::fallback_processor()).await.unwrap();
    let backend = fake_backend::spawn(default.url(), fallback.url(), None).await;
    let (_keep, out) = out_dir();
    let me = std::process::id();
    let cfg = ThroughputConfig {
        backend_url: backend.url(),
        rates: vec![100, 200],
        step: Duration::from_secs(1),
        // Generous: this test is about bookkeeping, not speed.
        p99_limit: Duration::from_secs(1),
        connections: 8,
        drain: Duration::from_secs(2),
        sample_every: Duration::from_millis(200),
        procs: vec![format!("test={me}").parse::<ProcGroup>().unwrap()],
        out_dir: Some(out.clone()),
        name: "small".into(),
        ..ThroughputConfig::default()
    };
    let report = run_throughput(cfg).await.unwrap();

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
    let rejected: u64 = report
        .steps
        .iter()
        .map(|s| s.outcomes.rejected_total())
        .sum();
    assert!(backend.payments() >= accepted + rejected);

    assert!(!report.samples.is_empty());
    assert!(report.samples.iter().any(|s| s.processed.is_some()));
    let names: Vec<&str> = report.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["load-generator", "test"]);
    assert!(report.processes.iter().all(|p| p.rss_last_kb > 0));

    let json = read_json(&out.join("small.json"));
    assert_eq!(json["steps"].as_array().unwrap().len(), report.steps.len());
    assert!(
        json["samples"][0]["procs"]["test"]["rss_kb"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_svg(&out.join("small.svg"));
    let table = paystream_load_tests::load::report::throughput_table(&report);
    assert!(table.contains("highest passing rate"), "{table}");
}

#[test]
fn cli_describes_both_commands() {
    let bin = env!("CARGO_BIN_EXE_paystream-load");
    for args in [
        &["--help"][..],
        &["rinha", "--help"],
        &["throughput", "--help"],
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
    // The stages of SPEC section 5 are all there.
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
        eprintln!("k6 not installed: skipping the k6 run");
        return;
    }
    let default = sim::spawn(SimConfig::default_processor()).await.unwrap();
    let fallback = sim::spawn(SimConfig::fallback_processor()).await.unwrap();
    let backend =
        fake_backend::spawn(default.url(), fallback.url(), Some(ADMIN_TOKEN.into())).await;
    let (_keep, out) = out_dir();
    std::fs::create_dir_all(&out).unwrap();
    let result = out.join("k6-compressed.json");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("k6/rinha.js");
    let run = tokio::process::Command::new(&k6)
        .args(["run", "--quiet", "--no-usage-report"])
        .arg(&script)
        .env("BACKEND_URL", backend.url())
        .env("DEFAULT_URL", default.url())
        .env("FALLBACK_URL", fallback.url())
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
    assert_eq!(backend.purges(), 1);
    assert_eq!(fallback.simulator().delay_ms(), 5000);
    let json = read_json(&result);
    let accepted = json["requests"]["accepted"].as_u64().unwrap();
    assert!(accepted > 0);
    assert!(backend.payments() >= accepted + json["requests"]["rejected"].as_u64().unwrap());
    assert!(json["checks"].as_u64().unwrap() >= 1);
    assert_eq!(json["settings"]["duration_secs"], 6);
    assert_eq!(json["settings"]["check_from_offset_ms"], 2850);
    assert!(json["score"].as_str().unwrap().parse::<f64>().is_ok());
}

/// The full-length scenario (60 s, 550 VUs) against the stand-in backend: a check that the
/// harness itself keeps up at the contest's scale. Slow, so only on demand:
/// `cargo test -p paystream-load-tests --test load -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs for about 75 s"]
async fn full_length_reference_run() {
    let default = sim::spawn(SimConfig::default_processor()).await.unwrap();
    let fallback = sim::spawn(SimConfig::fallback_processor()).await.unwrap();
    let backend = fake_backend::spawn(default.url(), fallback.url(), None).await;
    let (_keep, out) = out_dir();
    let cfg = RinhaConfig {
        backend_url: backend.url(),
        default_url: default.url(),
        fallback_url: fallback.url(),
        out_dir: Some(out.clone()),
        name: "full-length".into(),
        ..RinhaConfig::default()
    };
    let report = run_rinha(cfg).await.unwrap();
    println!(
        "{}",
        paystream_load_tests::load::report::rinha_table(&report)
    );
    assert_eq!(report.checks.len(), 6);
    assert_eq!(report.stages.len(), 6);
    // About 16 700 payments at the contest's scale.
    assert!(
        report.requests.requests > 15_000,
        "{}",
        report.requests.requests
    );
}
