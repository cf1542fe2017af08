//! CPU time and memory of the processes under test, read from `/proc`.
//!
//! The throughput benchmark names the processes it watches (`--pid gateway=123,456`), and
//! samples each group every 500 ms: CPU seconds so far (`utime + stime` of
//! `/proc/<pid>/stat`), resident memory now (`VmRSS`) and at its peak (`VmHWM`, from
//! `/proc/<pid>/status`). [`throughput`](super::throughput) turns the samples into cores used
//! per step; [`report`](super::report) prints them. [`LoadAverage`] records how busy the whole
//! machine was around a measurement (the box is shared: a figure means little without it).
//!
//! A long run follows a supervised stack whose processes may be restarted ([`Watch`]): the
//! groups are read again from `scripts/up.sh`'s pid files at every sample, with each
//! process's children (nginx's workers), and CPU is counted per process ([`GroupReading`]),
//! so a restarted process counts from zero instead of making its group's total jump back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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
        self.read().sample
    }

    /// Samples every process of the group, keeping each one's CPU.
    pub fn read(&self) -> GroupReading {
        let mut reading = GroupReading::default();
        for pid in &self.pids {
            match sample_pid(*pid) {
                Ok(s) => {
                    let total = &mut reading.sample;
                    total.cpu_seconds += s.cpu_seconds;
                    total.rss_kb += s.memory.rss_kb;
                    total.hwm_kb += s.memory.hwm_kb;
                    total.alive += 1;
                    reading.cpu_by_pid.insert(*pid, s.cpu_seconds);
                    if Some(pid) == self.pids.first() {
                        reading.main = Some(*pid);
                    }
                }
                Err(e) => tracing::debug!(pid, error = %e, "process not sampled"),
            }
        }
        reading
    }
}

/// One reading of a group, with each live process's CPU seconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupReading {
    pub sample: GroupSample,
    pub cpu_by_pid: BTreeMap<u32, f64>,
    /// The group's first pid (a pid file's process, before its children), when it was read.
    pub main: Option<u32>,
}

impl GroupReading {
    /// CPU seconds the group's live processes used since `before`: a process that was not
    /// in `before` (restarted, or new) counts from its start.
    pub fn cpu_since(&self, before: &GroupReading) -> f64 {
        self.cpu_by_pid
            .iter()
            .map(|(pid, now)| (now - before.cpu_by_pid.get(pid).copied().unwrap_or(0.0)).max(0.0))
            .sum()
    }

    /// The pids read now.
    pub fn pids(&self) -> BTreeSet<u32> {
        self.cpu_by_pid.keys().copied().collect()
    }
}

/// Which processes a long run watches: fixed groups, and the groups of a supervised stack
/// read again from its pid files at every sample.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Watch {
    /// Groups given by pid (`--pid NAME=PID,...`): not restarted by anyone we know of.
    pub fixed: Vec<ProcGroup>,
    /// `scripts/up.sh`'s `$RUN_DIR/pids` (`<component>.pid`, e.g. `worker-2.pid`).
    pub pid_dir: Option<PathBuf>,
}

/// One watched group at one reading.
#[derive(Clone, Debug, PartialEq)]
pub struct Watched {
    pub name: String,
    /// One of the stack's (from its pid files), not a fixed group.
    pub stack: bool,
    pub reading: GroupReading,
}

impl Watch {
    /// Reads every group now: the pid directory's ([`pid_dir_groups`]), then the fixed ones.
    pub fn read(&self) -> Vec<Watched> {
        let stack = self
            .pid_dir
            .as_deref()
            .map(pid_dir_groups)
            .unwrap_or_default();
        let fixed = self.fixed.iter().cloned();
        stack
            .into_iter()
            .map(|g| (g, true))
            .chain(fixed.map(|g| (g, false)))
            .map(|(g, stack)| Watched {
                reading: g.read(),
                name: g.name,
                stack,
            })
            .collect()
    }
}

/// The groups of a pid directory: one per pid file, named after it (`worker-2.pid` is
/// `worker-2`: a leak in one instance shows), with the children of its process (nginx's
/// master and its workers; Redis' AOF rewrite while one runs). A pid file being rewritten by
/// a restart is skipped, one naming a process already gone reads as nothing, until the next
/// read.
pub fn pid_dir_groups(dir: &Path) -> Vec<ProcGroup> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(String, u32)> = entries
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            if path.extension()? != "pid" {
                return None;
            }
            let name = path.file_stem()?.to_str()?.to_owned();
            let pid = std::fs::read_to_string(&path).ok()?.trim().parse().ok()?;
            Some((name, pid))
        })
        .collect();
    files.sort();
    let parents = parent_pids();
    files
        .into_iter()
        .map(|(name, pid)| {
            let mut pids = vec![pid];
            pids.extend(children_of(&pids, &parents));
            ProcGroup { name, pids }
        })
        .collect()
}

/// Every process's parent, from `/proc/<pid>/stat` (field 4).
fn parent_pids() -> BTreeMap<u32, u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parse_ppid(&stat)?))
        })
        .collect()
}

/// Field 4 of `/proc/<pid>/stat`, counted after the last `)` like [`parse_stat`].
fn parse_ppid(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The descendants of `pids`, given every process's parent.
fn children_of(pids: &[u32], parents: &BTreeMap<u32, u32>) -> Vec<u32> {
    let mut found: BTreeSet<u32> = pids.iter().copied().collect();
    let mut out = Vec::new();
    loop {
        let next: Vec<u32> = parents
            .iter()
            .filter(|(pid, parent)| found.contains(parent) && !found.contains(pid))
            .map(|(pid, _)| *pid)
            .collect();
        if next.is_empty() {
            return out;
        }
        found.extend(&next);
        out.extend(next);
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
    fn pid_files_make_one_group_each() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        std::fs::write(dir.path().join("worker-1.pid"), format!("{me}\n")).unwrap();
        std::fs::write(dir.path().join("worker-2.pid"), "4194999").unwrap();
        std::fs::write(dir.path().join("redis.pid"), "").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "1").unwrap();
        let groups = pid_dir_groups(dir.path());
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["worker-1", "worker-2"], "{groups:?}");
        assert_eq!(groups[0].pids[0], me);
        assert_eq!(groups[1].pids, [4_194_999]);
        assert!(pid_dir_groups(&dir.path().join("missing")).is_empty());

        let watch = Watch {
            fixed: vec![format!("sims={me}").parse().unwrap()],
            pid_dir: Some(dir.path().to_path_buf()),
        };
        let read = watch.read();
        let names: Vec<(&str, bool)> = read.iter().map(|w| (w.name.as_str(), w.stack)).collect();
        assert_eq!(
            names,
            [("worker-1", true), ("worker-2", true), ("sims", false)]
        );
        // The live one is read; the gone one is not.
        assert_eq!(read[0].reading.pids(), BTreeSet::from([me]));
        assert_eq!(read[1].reading.sample.alive, 0);
    }

    #[test]
    fn children_are_found_through_every_generation() {
        let parents = BTreeMap::from([(10, 1), (11, 10), (12, 11), (20, 1), (30, 10)]);
        let mut kids = children_of(&[10], &parents);
        kids.sort_unstable();
        assert_eq!(kids, [11, 12, 30]);
        assert!(children_of(&[20], &parents).is_empty());
        assert_eq!(
            parse_ppid("4242 (we ird) (name)) S 77 4242 4242 0"),
            Some(77)
        );
        // This test runs as a child of its harness.
        let me = std::process::id();
        let parents = parent_pids();
        let parent = parents[&me];
        assert!(children_of(&[parent], &parents).contains(&me));
    }

    #[test]
    fn cpu_since_counts_a_restarted_process_from_zero() {
        let reading = |cpu: &[(u32, f64)]| GroupReading {
            sample: GroupSample::default(),
            cpu_by_pid: cpu.iter().copied().collect(),
            main: None,
        };
        let before = reading(&[(1, 10.0), (2, 5.0)]);
        // Process 2 was restarted as 3: 1 used 2 s, 3 used 0.5 s since it started.
        let after = reading(&[(1, 12.0), (3, 0.5)]);
        assert_eq!(after.cpu_since(&before), 2.5);
        assert_eq!(after.pids(), BTreeSet::from([1, 3]));
        let me = std::process::id();
        let read = ProcGroup {
            name: "self".into(),
            pids: vec![me, u32::MAX],
        }
        .read();
        assert_eq!(read.pids(), BTreeSet::from([me]));
        assert_eq!(read.sample.alive, 1);
        assert_eq!(read.main, Some(me));
        // A main process that could not be read is no main: its children are still read.
        let orphaned = ProcGroup {
            name: "gone".into(),
            pids: vec![u32::MAX, me],
        }
        .read();
        assert_eq!((orphaned.main, orphaned.sample.alive), (None, 1));
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
