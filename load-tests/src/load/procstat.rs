//! CPU time and memory of the processes under test, read from `/proc`.
//!
//! The throughput benchmark names the processes it watches (`--pid gateway=123,456`), and
//! samples each group every 500 ms: CPU seconds so far (`utime + stime` of
//! `/proc/<pid>/stat`), resident memory now (`VmRSS`) and at its peak (`VmHWM`, from
//! `/proc/<pid>/status`). [`throughput`](super::throughput) turns the samples into cores used
//! per step; [`report`](super::report) prints them. [`LoadAverage`] records how busy the whole
//! machine was around a measurement (the box is shared: a figure means little without it).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`): fixed at 100 by the kernel's
/// user ABI on every architecture we run on, whatever `CONFIG_HZ` is.
pub const USER_HZ: u64 = 100;

/// Why a process could not be sampled.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("unexpected format in {what}: {detail}")]
    Format { what: &'static str, detail: String },
    #[error("bad --pid value {0:?}: expected NAME=PID[,PID...]")]
    Spec(String),
}

/// CPU ticks of one process, from `/proc/<pid>/stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTicks {
    pub utime: u64,
    pub stime: u64,
}

/// Memory of one process in KiB, from `/proc/<pid>/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may itself
/// contain spaces and parentheses, so the fields are counted from the *last* `)`.
pub fn parse_stat(text: &str) -> Result<CpuTicks, ProcError> {
    let format = |detail: &str| ProcError::Format {
        what: "stat",
        detail: detail.to_owned(),
    };
    let close = text.rfind(')').ok_or_else(|| format("no ')' after comm"))?;
    // After the comm: field 3 (state) is index 0, so field N is index N - 3.
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let field = |n: usize| -> Result<u64, ProcError> {
        fields
            .get(n - 3)
            .ok_or_else(|| format(&format!("missing field {n}")))?
            .parse()
            .map_err(|_| format(&format!("field {n} not a number")))
    };
    Ok(CpuTicks {
        utime: field(14)?,
        stime: field(15)?,
    })
}

/// Parses `VmRSS` and `VmHWM` out of `/proc/<pid>/status` (kernel threads have neither: 0).
pub fn parse_status(text: &str) -> Result<Memory, ProcError> {
    let mut mem = Memory::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let target = match key {
            "VmRSS" => &mut mem.rss_kb,
            "VmHWM" => &mut mem.hwm_kb,
            _ => continue,
        };
        let number = value.trim().trim_end_matches("kB").trim();
        *target = number.parse().map_err(|_| ProcError::Format {
            what: "status",
            detail: format!("{key} value {value:?}"),
        })?;
    }
    Ok(mem)
}

fn read(path: &Path) -> Result<String, ProcError> {
    std::fs::read_to_string(path).map_err(|source| ProcError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// One reading of one process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcSample {
    /// User + system CPU seconds since the process started.
    pub cpu_seconds: f64,
    pub memory: Memory,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
pub fn sample_pid(pid: u32) -> Result<ProcSample, ProcError> {
    let base = Path::new("/proc").join(pid.to_string());
    let ticks = parse_stat(&read(&base.join("stat"))?)?;
    let memory = parse_status(&read(&base.join("status"))?)?;
    Ok(ProcSample {
        cpu_seconds: (ticks.utime + ticks.stime) as f64 / USER_HZ as f64,
        memory,
    })
}

/// A named set of processes watched together (e.g. both gateway instances).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcGroup {
    pub name: String,
    pub pids: Vec<u32>,
}

impl std::str::FromStr for ProcGroup {
    type Err = ProcError;

    /// `NAME=PID` or `NAME=PID,PID,...`.
    fn from_str(spec: &str) -> Result<Self, ProcError> {
        let bad = || ProcError::Spec(spec.to_owned());
        let (name, pids) = spec.split_once('=').ok_or_else(bad)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(bad());
        }
        let pids = pids
            .split(',')
            .map(|p| p.trim().parse::<u32>().map_err(|_| bad()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProcGroup {
            name: name.to_owned(),
            pids,
        })
    }
}

/// One reading of a group: sums over its processes that could be read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct GroupSample {
    /// CPU seconds used so far by all the group's processes.
    pub cpu_seconds: f64,
    /// Resident memory now, KiB.
    pub rss_kb: u64,
    /// Sum of the processes' peak resident memory, KiB.
    pub hwm_kb: u64,
    /// How many of the group's processes could be read (a dead one is skipped).
    pub alive: usize,
}

impl ProcGroup {
    /// Samples every process of the group.
    pub fn sample(&self) -> GroupSample {
        let mut total = GroupSample::default();
        for pid in &self.pids {
            match sample_pid(*pid) {
                Ok(s) => {
                    total.cpu_seconds += s.cpu_seconds;
                    total.rss_kb += s.memory.rss_kb;
                    total.hwm_kb += s.memory.hwm_kb;
                    total.alive += 1;
                }
                Err(e) => tracing::debug!(pid, error = %e, "process not sampled"),
            }
        }
        total
    }
}

/// CPU a group used over a run, per payment: the figure the cost work drives down (it
/// moves far less between runs on a shared VM than latency or throughput do).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CpuPerPayment {
    pub name: String,
    pub pids: Vec<u32>,
    /// CPU seconds (user + system) between the two readings.
    pub cpu_seconds: f64,
    /// Microseconds of CPU per payment accepted in between (`None` without payments).
    pub cpu_us_per_payment: Option<f64>,
}

impl CpuPerPayment {
    /// From a group's readings before and after `payments` payments.
    pub fn between(
        group: &ProcGroup,
        before: &GroupSample,
        after: &GroupSample,
        payments: u64,
    ) -> Self {
        let cpu_seconds = (after.cpu_seconds - before.cpu_seconds).max(0.0);
        Self {
            name: group.name.clone(),
            pids: group.pids.clone(),
            cpu_seconds: (cpu_seconds * 1000.0).round() / 1000.0,
            cpu_us_per_payment: per_payment(cpu_seconds, payments),
        }
    }
}

/// Microseconds of CPU per payment, to 0.1 µs.
pub fn per_payment(cpu_seconds: f64, payments: u64) -> Option<f64> {
    (payments > 0).then(|| (cpu_seconds * 1e6 / payments as f64 * 10.0).round() / 10.0)
}

/// The machine's load average (`/proc/loadavg`: runnable tasks averaged over 1, 5 and 15
/// minutes), as `uptime` prints it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadAverage {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

impl LoadAverage {
    /// Parses the first three fields of `/proc/loadavg`.
    pub fn parse(text: &str) -> Result<Self, ProcError> {
        let mut fields = text.split_whitespace().map(str::parse::<f64>);
        let mut next = || match fields.next() {
            Some(Ok(v)) => Ok(v),
            _ => Err(ProcError::Format {
                what: "loadavg",
                detail: text.trim().chars().take(80).collect(),
            }),
        };
        Ok(LoadAverage {
            one: next()?,
            five: next()?,
            fifteen: next()?,
        })
    }

    /// Reads `/proc/loadavg` now; `None` where there is none (the figure is informative only).
    pub fn now() -> Option<Self> {
        let text = read(Path::new("/proc/loadavg")).ok()?;
        Self::parse(&text).ok()
    }
}

impl std::fmt::Display for LoadAverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2}, {:.2}, {:.2}", self.one, self.five, self.fifteen)
    }
}

/// The load average when a run started and when it ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadAverages {
    pub start: Option<LoadAverage>,
    pub end: Option<LoadAverage>,
}

impl LoadAverages {
    /// The start reading, taken now; [`LoadAverages::ended`] adds the end one.
    pub fn started() -> Self {
        LoadAverages {
            start: LoadAverage::now(),
            end: None,
        }
    }

    /// With the end reading taken now.
    pub fn ended(self) -> Self {
        LoadAverages {
            end: LoadAverage::now(),
            ..self
        }
    }
}

impl std::fmt::Display for LoadAverages {
    /// `1.20, 0.90, 0.70 → 1.80, 1.00, 0.75` (1, 5, 15 min at the start → at the end).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |l: Option<LoadAverage>| l.map_or_else(|| "n/a".to_owned(), |l| l.to_string());
        write!(f, "{} → {}", show(self.start), show(self.end))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_stat_with_awkward_comm() {
        let line = "4242 (we ird) (name)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    731 52 0 0 20 0 4 0 100 123456 789 18446744073709551615";
        let t = parse_stat(line).unwrap();
        assert_eq!(
            t,
            CpuTicks {
                utime: 731,
                stime: 52
            }
        );
        assert!(parse_stat("4242 (x) S 1 2").is_err());
        assert!(parse_stat("no parens at all").is_err());
    }

    #[test]
    fn parses_status_memory_lines() {
        let text = "Name:\tredis\nVmPeak:\t  9000 kB\nVmHWM:\t    5120 kB\nVmRSS:\t    4096 kB\n";
        let m = parse_status(text).unwrap();
        assert_eq!(
            m,
            Memory {
                rss_kb: 4096,
                hwm_kb: 5120
            }
        );
        assert_eq!(
            parse_status("Name:\tkthreadd\n").unwrap(),
            Memory::default()
        );
        assert!(parse_status("VmRSS:\tlots kB\n").is_err());
    }

    #[test]
    fn reads_our_own_process() {
        // Burn a little CPU so the counters are not all zero on a fast machine.
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let me = std::process::id();
        let s = sample_pid(me).unwrap();
        assert!(s.cpu_seconds >= 0.0);
        assert!(s.memory.rss_kb > 0);
        assert!(s.memory.hwm_kb >= s.memory.rss_kb);

        let group: ProcGroup = format!("self={me},{me}").parse().unwrap();
        let g = group.sample();
        assert_eq!(g.alive, 2);
        assert!(g.rss_kb > 0);
    }

    #[test]
    fn parses_the_load_average() {
        let l = LoadAverage::parse("0.12 0.73 1.31 1/234 5678\n").unwrap();
        assert_eq!(
            l,
            LoadAverage {
                one: 0.12,
                five: 0.73,
                fifteen: 1.31
            }
        );
        assert_eq!(l.to_string(), "0.12, 0.73, 1.31");
        assert!(LoadAverage::parse("0.12 0.73").is_err());
        assert!(LoadAverage::parse("high 0.73 1.31").is_err());
        let both = LoadAverages {
            start: Some(l),
            end: None,
        };
        assert_eq!(both.to_string(), "0.12, 0.73, 1.31 → n/a");
        // This machine has one.
        assert!(LoadAverages::started().ended().end.is_some());
    }

    #[test]
    fn parses_group_specs() {
        let g: ProcGroup = "gateway=12, 34".parse().unwrap();
        assert_eq!(g.name, "gateway");
        assert_eq!(g.pids, vec![12, 34]);
        for bad in ["gateway", "=12", "gateway=", "gateway=x", "gateway=1,,2"] {
            assert!(bad.parse::<ProcGroup>().is_err(), "{bad:?} accepted");
        }
        // A process that does not exist is skipped, not an error.
        let gone = ProcGroup {
            name: "gone".into(),
            pids: vec![u32::MAX],
        };
        assert_eq!(gone.sample().alive, 0);
    }

    #[test]
    fn cpu_per_payment_is_the_difference_over_the_payments() {
        let group = ProcGroup {
            name: "redis".into(),
            pids: vec![1],
        };
        let at = |cpu_seconds| GroupSample {
            cpu_seconds,
            ..GroupSample::default()
        };
        let c = CpuPerPayment::between(&group, &at(1.5), &at(3.0), 10_000);
        assert_eq!(c.cpu_seconds, 1.5);
        assert_eq!(c.cpu_us_per_payment, Some(150.0));
        assert_eq!(per_payment(1.0, 0), None);
    }
}
