//! `ref-ratio`: the reference run (SPEC §5) against a static nginx and against the stack,
//! compared (issue 10: "p99 ≤ 1.5× that of a static nginx `return 202` measured the same
//! way in the same run of `bench.sh`").
//!
//! Comes after [`rinha`](super::rinha), whose JSON files it reads back (one per run: the
//! static nginx's and the stack's of each round, run alternately by `scripts/bench.sh`), and
//! writes its own with [`report::write_json`](super::report::write_json); it prints its own
//! table, so nothing imports it back. The latency compared is the one the score uses (every
//! request of the run: payments and the checker's summaries); the payments' own is beside it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use common::money::Decimal;
use serde::{Deserialize, Serialize};

use super::procstat::LoadAverages;
use super::stats::Spread;

/// The issue's target: the stack's p99 at most this many times the static nginx's.
pub const TARGET_RATIO: f64 = 1.5;

/// The part of a reference run's JSON file (`RinhaReport`) this compares.
#[derive(Deserialize)]
struct RunFile {
    name: String,
    started_at: String,
    #[serde(default)]
    load_average: LoadAverages,
    latency: LatencyFile,
    payment_latency: LatencyFile,
    requests: RequestsFile,
    inconsistencies: u64,
    score: ScoreFile,
}

#[derive(Deserialize)]
struct LatencyFile {
    count: u64,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Deserialize)]
struct RequestsFile {
    requests: u64,
    accepted: u64,
}

#[derive(Deserialize)]
struct ScoreFile {
    score: Decimal,
}

/// What one run measured, as compared.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunFigures {
    /// The JSON file it was read from.
    pub file: String,
    pub name: String,
    pub started_at: String,
    pub load_average: LoadAverages,
    /// Every request of the run (payments and checker summaries): what the score uses.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests_measured: u64,
    /// `POST /payments` only.
    pub payments_p50_ms: f64,
    pub payments_p99_ms: f64,
    pub payments_sent: u64,
    pub payments_accepted: u64,
    /// Meaningless for the static nginx (it stores nothing), kept for the stack's run.
    pub score: Decimal,
    pub inconsistencies: u64,
}

impl RunFigures {
    /// Reads a `paystream-load rinha` JSON file.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Parses the text of a `paystream-load rinha` JSON file read from `file`.
    pub fn parse(file: &str, text: &str) -> anyhow::Result<Self> {
        let r: RunFile = serde_json::from_str(text)
            .with_context(|| format!("{file} is not a reference run's report"))?;
        Ok(RunFigures {
            file: file.to_owned(),
            name: r.name,
            started_at: r.started_at,
            load_average: r.load_average,
            p50_ms: r.latency.p50_ms,
            p99_ms: r.latency.p99_ms,
            requests_measured: r.latency.count,
            payments_p50_ms: r.payment_latency.p50_ms,
            payments_p99_ms: r.payment_latency.p99_ms,
            payments_sent: r.requests.requests,
            payments_accepted: r.requests.accepted,
            score: r.score.score,
            inconsistencies: r.inconsistencies,
        })
    }
}

/// One round: the static nginx's run and the stack's, one after the other.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoundComparison {
    /// From 1.
    pub round: usize,
    pub static_nginx: RunFigures,
    pub stack: RunFigures,
    /// The stack's p99 over the static nginx's (`None` when the static p99 is 0).
    pub p99_ratio: Option<f64>,
    pub p50_ratio: Option<f64>,
    /// `p99_ratio <= target_ratio`.
    pub met: bool,
}

/// Met in every round, or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Met,
    NotMet,
}

/// Everything `ref-ratio` found: written as `<out>/<name>.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RefComparison {
    pub name: String,
    pub target_ratio: f64,
    pub rounds: Vec<RoundComparison>,
    /// The ratios over the rounds (median, best, worst).
    pub p99_ratio: Option<Spread>,
    pub p50_ratio: Option<Spread>,
    pub rounds_met: usize,
    /// [`Verdict::Met`] only when every round met the target.
    pub verdict: Verdict,
    pub notes: Vec<String>,
    /// Files written (paths as given).
    pub files: Vec<String>,
}

fn ratio(stack: f64, reference: f64) -> Option<f64> {
    (reference > 0.0).then(|| (stack / reference * 1000.0).round() / 1000.0)
}

/// Pairs the runs round by round (the i-th static run with the i-th stack run) and judges
/// each against `target_ratio`.
pub fn compare(
    name: &str,
    static_runs: Vec<RunFigures>,
    stack_runs: Vec<RunFigures>,
    target_ratio: f64,
) -> anyhow::Result<RefComparison> {
    anyhow::ensure!(
        !static_runs.is_empty() && static_runs.len() == stack_runs.len(),
        "one static nginx run per stack run is needed ({} static, {} stack)",
        static_runs.len(),
        stack_runs.len()
    );
    anyhow::ensure!(target_ratio > 0.0, "the target ratio must be positive");
    let rounds: Vec<RoundComparison> = static_runs
        .into_iter()
        .zip(stack_runs)
        .enumerate()
        .map(|(i, (static_nginx, stack))| {
            let p99_ratio = ratio(stack.p99_ms, static_nginx.p99_ms);
            RoundComparison {
                round: i + 1,
                p50_ratio: ratio(stack.p50_ms, static_nginx.p50_ms),
                met: p99_ratio.is_some_and(|r| r <= target_ratio),
                p99_ratio,
                static_nginx,
                stack,
            }
        })
        .collect();
    let p99: Vec<f64> = rounds.iter().filter_map(|r| r.p99_ratio).collect();
    let p50: Vec<f64> = rounds.iter().filter_map(|r| r.p50_ratio).collect();
    let rounds_met = rounds.iter().filter(|r| r.met).count();
    Ok(RefComparison {
        name: name.to_owned(),
        target_ratio,
        p99_ratio: Spread::of(&p99),
        p50_ratio: Spread::of(&p50),
        verdict: if rounds_met == rounds.len() {
            Verdict::Met
        } else {
            Verdict::NotMet
        },
        rounds_met,
        rounds,
        notes: vec![
            "p50/p99 are over every request of a run (payments and the checker's summaries), \
             as the score's p99; payments_* are POST /payments only."
                .to_owned(),
            "the static nginx answers POST /payments with 202 and GET /payments-summary with \
             a fixed zero summary: its score and consistency mean nothing, only its latency."
                .to_owned(),
        ],
        files: Vec::new(),
    })
}

/// What `ref-ratio` reads and where it writes.
#[derive(Clone, Debug)]
pub struct RefRatioConfig {
    /// The static nginx's runs, in round order.
    pub static_files: Vec<PathBuf>,
    /// The stack's runs, in the same order.
    pub stack_files: Vec<PathBuf>,
    pub target_ratio: f64,
    /// Where `<name>.json` goes; nothing is written when `None`.
    pub out_dir: Option<PathBuf>,
    pub name: String,
}

/// Reads the runs, compares them and writes `<out>/<name>.json`.
pub fn run_ref_ratio(cfg: &RefRatioConfig) -> anyhow::Result<RefComparison> {
    let read = |files: &[PathBuf]| -> anyhow::Result<Vec<RunFigures>> {
        files.iter().map(|f| RunFigures::read(f)).collect()
    };
    let mut comparison = compare(
        &cfg.name,
        read(&cfg.static_files)?,
        read(&cfg.stack_files)?,
        cfg.target_ratio,
    )?;
    super::report::write_report(cfg.out_dir.as_deref(), &cfg.name, &mut comparison, |r| {
        &mut r.files
    })?;
    Ok(comparison)
}

impl RefComparison {
    /// The human table: one line per run, the ratios and the verdict.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "reference run: static nginx vs the stack (p50/p99 over every request, ms)"
        );
        let _ = writeln!(
            out,
            "{:>5}  {:<14} {:>8} {:>8} {:>12}  load average (1, 5, 15 min) start → end",
            "round", "target", "p50", "p99", "payments p99"
        );
        let ratio = |r: Option<f64>| r.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}"));
        for r in &self.rounds {
            for (label, f) in [("static nginx", &r.static_nginx), ("stack", &r.stack)] {
                let _ = writeln!(
                    out,
                    "{:>5}  {:<14} {:>8.3} {:>8.3} {:>12.3}  {}",
                    r.round, label, f.p50_ms, f.p99_ms, f.payments_p99_ms, f.load_average
                );
            }
            let _ = writeln!(
                out,
                "{:>5}  stack / static: p50 × {}, p99 × {} ({})",
                r.round,
                ratio(r.p50_ratio),
                ratio(r.p99_ratio),
                if r.met { "met" } else { "NOT met" }
            );
        }
        let _ = writeln!(
            out,
            "p99 ratio median {} (worst {}); target ≤ {}: {} in {} of {} rounds",
            ratio(self.p99_ratio.map(|s| s.median)),
            ratio(self.p99_ratio.map(|s| s.max)),
            self.target_ratio,
            match self.verdict {
                Verdict::Met => "MET",
                Verdict::NotMet => "NOT MET",
            },
            self.rounds_met,
            self.rounds.len()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The fields of a real `rinha` report this reads, and a few it ignores.
    fn report(name: &str, p50: f64, p99: f64) -> String {
        format!(
            r#"{{"name":"{name}","started_at":"2026-11-28T10:00:00.000Z","finished_at":"x",
               "load_average":{{"start":{{"one":1.5,"five":1.0,"fifteen":0.5}},"end":null}},
               "latency":{{"count":16800,"min_ms":0.1,"mean_ms":0.5,"p50_ms":{p50},"p90_ms":1.0,"p99_ms":{p99},"p999_ms":9.0,"max_ms":20.0}},
               "payment_latency":{{"count":16794,"min_ms":0.1,"mean_ms":0.5,"p50_ms":{p50},"p90_ms":1.0,"p99_ms":{p99},"p999_ms":9.0,"max_ms":20.0}},
               "requests":{{"requests":16794,"accepted":16790,"rejected":{{}},"timeouts":0,"errors":4}},
               "inconsistencies":0,"score":{{"score":361234.56,"p99_ms":1.2}},"checks":[]}}"#
        )
    }

    fn run(name: &str, p50: f64, p99: f64) -> RunFigures {
        RunFigures::parse(name, &report(name, p50, p99)).unwrap()
    }

    #[test]
    fn reads_what_a_rinha_report_holds() {
        let r = run("ref-static-1", 0.4, 1.25);
        assert_eq!(
            (r.p50_ms, r.p99_ms, r.requests_measured),
            (0.4, 1.25, 16800)
        );
        assert_eq!((r.payments_sent, r.payments_accepted), (16794, 16790));
        assert_eq!(r.score.to_string(), "361234.56");
        assert_eq!(r.load_average.start.unwrap().one, 1.5);
        assert!(r.load_average.end.is_none());
        // A report written before load averages were recorded still reads.
        let old = report("old", 1.0, 2.0).replace(
            r#""load_average":{"start":{"one":1.5,"five":1.0,"fifteen":0.5},"end":null},"#,
            "",
        );
        assert!(!old.contains("load_average"));
        assert_eq!(
            RunFigures::parse("old", &old).unwrap().load_average,
            LoadAverages::default()
        );
        assert!(RunFigures::parse("bad", r#"{"name":"x"}"#).is_err());
    }

    #[test]
    fn each_round_is_judged_and_the_verdict_needs_all() {
        let c = compare(
            "ref",
            vec![run("s1", 0.5, 2.0), run("s2", 0.5, 2.0)],
            vec![run("k1", 0.8, 3.0), run("k2", 0.9, 3.2)],
            TARGET_RATIO,
        )
        .unwrap();
        assert_eq!(c.rounds[0].p99_ratio, Some(1.5));
        assert!(c.rounds[0].met, "exactly at the target is met");
        assert_eq!(c.rounds[1].p99_ratio, Some(1.6));
        assert!(!c.rounds[1].met);
        assert_eq!(c.rounds_met, 1);
        assert_eq!(c.verdict, Verdict::NotMet);
        let p99 = c.p99_ratio.unwrap();
        assert_eq!((p99.median, p99.max), (1.55, 1.6));
        assert_eq!(c.rounds[1].p50_ratio, Some(1.8));
        assert_eq!(
            (c.rounds[1].round, c.rounds[1].stack.name.as_str()),
            (2, "k2")
        );

        let met = compare(
            "ref",
            vec![run("s", 1.0, 4.0)],
            vec![run("k", 1.0, 4.4)],
            1.5,
        )
        .unwrap();
        assert_eq!(met.verdict, Verdict::Met);
    }

    #[test]
    fn a_zero_reference_or_unpaired_runs_cannot_be_judged() {
        let c = compare(
            "ref",
            vec![run("s", 0.0, 0.0)],
            vec![run("k", 1.0, 2.0)],
            1.5,
        )
        .unwrap();
        assert_eq!(c.rounds[0].p99_ratio, None);
        assert!(!c.rounds[0].met);
        assert_eq!(c.verdict, Verdict::NotMet);
        assert!(compare("ref", vec![run("s", 1.0, 2.0)], vec![], 1.5).is_err());
        assert!(compare("ref", vec![], vec![], 1.5).is_err());
    }

    #[test]
    fn writes_its_json() {
        let dir = tempfile::tempdir().unwrap();
        let (s, k) = (dir.path().join("s.json"), dir.path().join("k.json"));
        std::fs::write(&s, report("s", 0.5, 1.0)).unwrap();
        std::fs::write(&k, report("k", 0.6, 1.4)).unwrap();
        let cfg = RefRatioConfig {
            static_files: vec![s],
            stack_files: vec![k],
            target_ratio: TARGET_RATIO,
            out_dir: Some(dir.path().join("out")),
            name: "ref-vs-static".into(),
        };
        let c = run_ref_ratio(&cfg).unwrap();
        assert_eq!(c.verdict, Verdict::Met);
        let written: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("out/ref-vs-static.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(written["verdict"], "met");
        assert_eq!(written["rounds"][0]["p99_ratio"], 1.4);
        let table = c.table();
        assert!(table.contains("p99 × 1.40 (met)"), "{table}");
        assert!(table.contains("MET in 1 of 1 rounds"), "{table}");
    }
}
