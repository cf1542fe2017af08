//! The human table of every run, printed on stdout by the binary.
//!
//! Comes last, with [`plot`](super::plot), and reads only the leaf report types
//! ([`rinha_report`](super::rinha_report), [`throughput_report`](super::throughput_report),
//! [`drain_report`](super::drain_report), [`soak_report`](super::soak_report)): a finished
//! report always gives the same table.

use std::fmt::Write as _;

use super::drain_report::DrainReport;
use super::rinha_report::RinhaReport;
use super::soak_report::SoakReport;
use super::stats::{Outcomes, Percentiles};
use super::throughput_report::ThroughputReport;

fn rejected(o: &Outcomes) -> String {
    if o.rejected.is_empty() {
        return "0".into();
    }
    let parts: Vec<String> = o
        .rejected
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    format!("{} ({})", o.rejected_total(), parts.join(", "))
}

fn percentiles(p: &Percentiles) -> String {
    format!(
        "p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (n = {})",
        p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms, p.count
    )
}

/// The reference run as a table.
pub fn rinha_table(r: &RinhaReport) -> String {
    let s = &r.score;
    let b = &r.summary.backend;
    let mut out = String::new();
    let mut row = |k: &str, v: String| {
        let _ = writeln!(out, "  {k:<22} {v}");
    };
    row(
        "run",
        format!(
            "{} ({} VUs max, {} s, stages of {} s) {} .. {}",
            r.name,
            r.settings.max_requests,
            r.settings.duration_s,
            r.settings.stage_s,
            r.started_at,
            r.finished_at
        ),
    );
    let verdict = if s.disqualified {
        format!("   DISQUALIFIED: {}", s.disqualified_reasons.join("; "))
    } else {
        String::new()
    };
    row("load average", r.load_average.to_string());
    row("SCORE", format!("{}{verdict}", s.score));
    row(
        "gross / fees / net",
        format!("{} / {} / {}", s.gross, s.fees, s.net),
    );
    row(
        "bonus / fine / factor",
        format!(
            "{} (p99 {} ms) / {} / {}",
            s.bonus, s.p99_ms, s.fine, s.factor
        ),
    );
    row(
        "inconsistencies",
        format!(
            "{} of {} checks ({} check errors)",
            r.inconsistencies,
            r.checks.len(),
            r.check_errors
        ),
    );
    row("latency ms (all)", percentiles(&r.latency));
    if !r.processes.is_empty() {
        let total: f64 = r
            .processes
            .iter()
            .filter_map(|p| p.cpu_us_per_payment)
            .sum();
        let parts: Vec<String> = r
            .processes
            .iter()
            .map(|p| {
                format!(
                    "{} {}",
                    p.name,
                    p.cpu_us_per_payment
                        .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1}"))
                )
            })
            .collect();
        row(
            "CPU µs per payment",
            format!("{total:.1} in all: {}", parts.join(", ")),
        );
    }
    if !r.redis_commands.is_empty() {
        // The five costliest commands (a script's own commands are inside its µs).
        let top: Vec<String> = r
            .redis_commands
            .iter()
            .take(5)
            .map(|c| {
                format!(
                    "{} {:.2}×/{:.1} µs",
                    c.command, c.calls_per_payment, c.usec_per_payment
                )
            })
            .collect();
        row("Redis per payment", top.join(", "));
    }
    row("latency ms (payments)", percentiles(&r.payment_latency));
    row("requests", r.requests.requests.to_string());
    row("accepted (2xx)", r.requests.accepted.to_string());
    row("rejected", rejected(&r.requests));
    row(
        "timeouts / errors",
        format!("{} / {}", r.requests.timeouts, r.requests.errors),
    );
    row(
        "default",
        format!(
            "{} payments, {} (processor stored {}, fee {})",
            b.default.total_requests,
            b.default.total_amount,
            r.summary.default.total_requests,
            s.default_fee
        ),
    );
    row(
        "fallback",
        format!(
            "{} payments, {} (processor stored {}, fee {})",
            b.fallback.total_requests,
            b.fallback.total_amount,
            r.summary.fallback.total_requests,
            s.fallback_fee
        ),
    );
    row("lag (accepted - shown)", s.lag.to_string());
    if let Some(failed) = r.stages.iter().find(|st| st.error.is_some()) {
        row(
            "stage errors",
            format!(
                "stage {}: {}",
                failed.index,
                failed.error.clone().unwrap_or_default()
            ),
        );
    }
    out
}

/// The benchmark as a table, one line per step.
pub fn throughput_table(r: &ThroughputReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "throughput run {} against {} ({} connections, {} s steps, p99 limit {} ms; load average {})",
        r.name,
        r.settings.backend_url,
        r.settings.connections,
        r.settings.step_s,
        r.settings.p99_limit_ms,
        r.load_average
    );
    let _ = writeln!(
        out,
        "{:>8} {:>9} {:>10} {:>9} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}  result",
        "rate",
        "sent",
        "accepted/s",
        "rejected",
        "timeouts",
        "errors",
        "dropped",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms"
    );
    for s in &r.steps {
        let _ = writeln!(
            out,
            "{:>8} {:>9} {:>10.0} {:>9} {:>8} {:>7} {:>8} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>9.3}  {}",
            s.target_rate,
            s.outcomes.requests,
            s.accepted_per_sec,
            s.outcomes.rejected_total(),
            s.outcomes.timeouts,
            s.outcomes.errors,
            s.dropped,
            s.latency.p50_ms,
            s.latency.p90_ms,
            s.latency.p99_ms,
            s.latency.p999_ms,
            s.latency.max_ms,
            s.stop_reason.as_deref().unwrap_or("ok"),
        );
        if !s.cpu_cores.is_empty() {
            let cores: Vec<String> = s
                .cpu_cores
                .iter()
                .map(|(n, c)| format!("{n} {c:.2}"))
                .collect();
            let _ = writeln!(out, "{:>8} cores: {}", "", cores.join(", "));
        }
    }
    let max = r
        .max_passing_rate
        .map_or_else(|| "none".to_owned(), |m| format!("{m} req/s"));
    let _ = writeln!(out, "highest passing rate: {max}");
    let p = &r.processed;
    let opt = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0}"));
    let _ = writeln!(
        out,
        "processed end to end: {} of {} accepted, backlog at end {}, avg {}/s, peak {}/s",
        p.processed
            .map_or_else(|| "n/a".to_owned(), |v| v.to_string()),
        p.accepted,
        p.backlog_end
            .map_or_else(|| "n/a".to_owned(), |v| v.to_string()),
        opt(p.avg_per_sec),
        opt(p.peak_per_sec),
    );
    if let Some(stored) = p.stored_by_processors {
        let _ = writeln!(out, "stored by the processors: {stored}");
    }
    for g in &r.processes {
        let _ = writeln!(
            out,
            "process {:<16} cpu {:.2} s ({:.2} cores avg, {} µs/payment)  rss {} KiB now, {} KiB peak",
            g.name,
            g.cpu_seconds,
            g.avg_cores,
            g.cpu_us_per_payment
                .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1}")),
            g.rss_last_kb,
            g.rss_peak_kb
        );
    }
    out
}

/// The drain benchmark as a table.
pub fn drain_table(r: &DrainReport) -> String {
    let ms = |v: Option<f64>| v.map_or_else(|| "not reached".to_owned(), |v| format!("{v:.0} ms"));
    let mut out = String::new();
    let mut row = |k: &str, v: String| {
        let _ = writeln!(out, "  {k:<26} {v}");
    };
    let s = &r.settings;
    row(
        "run",
        format!(
            "{} ({} s outage at {}/s, recovery {} ms) {} .. {}",
            r.name, s.outage_s, s.rate, s.recovery_delay_ms, r.started_at, r.finished_at
        ),
    );
    row(
        "posts during the outage",
        format!(
            "{} sent, {} accepted, rejected {}, timeouts {}, errors {}, dropped {}",
            r.posts.requests,
            r.posts.accepted,
            rejected(&r.posts),
            r.posts.timeouts,
            r.posts.errors,
            r.dropped
        ),
    );
    row("post latency ms", percentiles(&r.post_latency));
    row("backlog at recovery (t0)", r.backlog_at_t0.to_string());
    let verdict = if r.drained {
        String::new()
    } else {
        format!("   NOT DRAINED within {} s", s.timeout_s)
    };
    row("DRAIN TIME", format!("{}{verdict}", ms(r.drain_ms)));
    for m in &r.milestones {
        row(&format!("  {} % drained", m.share * 100.0), ms(m.ms));
    }
    row(
        "drain rate",
        r.drain_rate_per_sec
            .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0} payments/s")),
    );
    row(
        "processed / backlog at end",
        format!("{} / {}", r.processed, r.backlog_end),
    );
    row("on the fallback", r.fallback.to_string());
    let c = &r.consistency;
    row(
        "consistency",
        format!(
            "{}: backend default {} / fallback {}, processors stored {} / {}",
            if c.consistent { "ok" } else { "MISMATCH" },
            c.backend.default.total_requests,
            c.backend.fallback.total_requests,
            c.default.total_requests,
            c.fallback.total_requests
        ),
    );
    if r.poll_errors > 0 {
        row("summary poll errors", r.poll_errors.to_string());
    }
    if let Some(e) = &r.restore_error {
        row("PROCESSORS NOT RESTORED", e.clone());
    }
    out
}

/// The soak as a table: the verdict first, then what it rests on.
pub fn soak_table(r: &SoakReport) -> String {
    let s = &r.settings;
    let v = &r.verdict;
    let t = &r.totals;
    let opt = |x: Option<f64>, unit: &str| {
        x.map_or_else(|| "n/a".to_owned(), |x| format!("{x:.1}{unit}"))
    };
    let secs = |x: Option<f64>| opt(x, " s");
    let mut out = String::new();
    let mut row = |k: &str, v: String| {
        let _ = writeln!(out, "  {k:<24} {v}");
    };
    row(
        "run",
        format!(
            "{} ({}/s for {} s, stages of {} s, appendfsync {}) {} .. {}",
            r.name,
            s.rate,
            s.duration_s,
            s.stage_s,
            s.appendfsync.as_deref().unwrap_or("n/a"),
            r.started_at,
            r.finished_at
        ),
    );
    let verdict = match v.passed {
        Some(true) => "PASS".to_owned(),
        Some(false) => "FAIL".to_owned(),
        None => "NOT JUDGED".to_owned(),
    };
    row("VERDICT", verdict);
    for reason in &v.reasons {
        row("", reason.clone());
    }
    row(
        "window",
        format!(
            "{} .. {} s ({}; PAYMENT_RETENTION {}, SUMMARY_DETAIL_HORIZON {})",
            v.window_from_s,
            v.window_to_s,
            if v.steady {
                "steady state, judged"
            } else {
                "last half, not judged"
            },
            secs(s.payment_retention_s),
            secs(s.detail_horizon_s)
        ),
    );
    for f in &v.series {
        let flat = match f.flat {
            Some(true) if f.falls => "falls (passes: memory given back)",
            Some(true) => "flat",
            Some(false) => "GROWS",
            None => "reported",
        };
        row(
            "",
            format!(
                "{:<54} mean {:>10.1} {:<4} range {:.1}..{:.1}, slope {:+.3}/min  {flat}",
                f.series, f.mean, f.unit, f.min, f.max, f.slope_per_min
            ),
        );
    }
    let checks = |old: bool| r.checks.iter().filter(|c| c.old == old).count();
    row(
        "inconsistencies",
        format!(
            "{} of {} recent-window checks, {} of {} old-window checks ({} s back), {} check errors",
            v.inconsistencies,
            checks(false),
            v.old_window_inconsistencies,
            checks(true),
            s.old_check_age_s,
            v.check_errors
        ),
    );
    let o = &r.requests;
    row(
        "requests",
        format!(
            "{} sent, {} accepted, rejected {}, timeouts {}, errors {}, dropped {}",
            o.requests,
            o.accepted,
            rejected(o),
            o.timeouts,
            o.errors,
            r.dropped
        ),
    );
    row("latency ms", percentiles(&r.latency));
    row(
        "lag at end / drain",
        format!(
            "{} / {}",
            t.lag_at_end
                .map_or_else(|| "n/a".to_owned(), |l| l.to_string()),
            match t.drain_s {
                Some(d) => format!("drained {d:.1} s after the load"),
                None => format!("NOT drained within {} s", s.drain_timeout_s),
            }
        ),
    );
    row(
        "totals",
        format!(
            "{}: backend default {} ({}) / fallback {} ({}); processors stored {} ({}) / {} ({}); \
             accepted {}, unanswered {}, dead letters {}",
            if t.consistent && t.all_processed_once {
                "exactly once"
            } else {
                "MISMATCH"
            },
            t.backend.default.total_requests,
            t.backend.default.total_amount,
            t.backend.fallback.total_requests,
            t.backend.fallback.total_amount,
            t.default.total_requests,
            t.default.total_amount,
            t.fallback.total_requests,
            t.fallback.total_amount,
            t.accepted,
            t.unanswered,
            t.dead_letters
                .map_or_else(|| "n/a".to_owned(), |n| n.to_string())
        ),
    );
    let stack: f64 = r
        .processes
        .iter()
        .filter(|p| p.stack)
        .filter_map(|p| p.cpu_us_per_payment)
        .sum();
    let parts: Vec<String> = r
        .processes
        .iter()
        .map(|p| {
            format!(
                "{} {} (RSS {:.1} MB, max {:.1})",
                p.name,
                opt(p.cpu_us_per_payment, ""),
                p.rss_last_kb as f64 / 1024.0,
                p.rss_max_kb as f64 / 1024.0
            )
        })
        .collect();
    row(
        "CPU µs per payment",
        format!("{stack:.1} for the stack: {}", parts.join(", ")),
    );
    if !r.pid_changes.is_empty() {
        let changes: Vec<String> = r
            .pid_changes
            .iter()
            .map(|c| format!("{} at {} s ({:?} -> {:?})", c.group, c.t_s, c.gone, c.new))
            .collect();
        row("processes came, went", changes.join("; "));
    }
    row(
        "stages",
        format!(
            "{} applied, {} failed",
            r.stages_applied,
            r.stage_errors.len()
        ),
    );
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rejected_lists_statuses() {
        let mut o = Outcomes::default();
        assert_eq!(rejected(&o), "0");
        o.add(crate::load::stats::Outcome::Status(503));
        o.add(crate::load::stats::Outcome::Status(429));
        o.add(crate::load::stats::Outcome::Status(503));
        assert_eq!(rejected(&o), "3 (429: 1, 503: 2)");
    }
}
