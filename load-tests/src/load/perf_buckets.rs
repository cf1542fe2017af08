//! `perf-buckets`: where one process' CPU goes, from `perf script` output (issue 10, scope 3:
//! parse, metrics, the script call, hyper).
//!
//! Comes after a `perf record --call-graph dwarf -p PID` of the process under a fixed
//! open-loop load (`scripts/bench.sh`, section `perf`) and a [`throughput`](super::throughput)
//! run's JSON, which gives the process' CPU µs per payment from `/proc`; writes
//! `<out>/<name>.json` and prints its own table, so nothing imports this back.
//!
//! Each sample is one call stack, leaf first, inlined frames included (the release profile
//! keeps line tables; `perf script -F ...,srcline --full-source-path` prints each frame's
//! source file). It goes to the [`Bucket`] of the first frame, from the leaf up, whose code
//! belongs to one: a sample whose leaf is in the kernel is `kernel` (split by the system call
//! it is in); otherwise the crate (or `common` module) of the frame's source file — or, when
//! it has none, of its symbol — decides: `serde_json` or `common::payment` is parsing,
//! `redis` or `common::store` is the script call, `hyper`/`http` is HTTP, and so on. Frames
//! that do not tell whose work it is — `core`/`alloc`/`std`, libc (`malloc`, `memcpy`),
//! `tokio::sync`/`tokio::io`/`tokio::net` (used by everyone), helper crates (`futures`,
//! `bytes`, `tokio_util`), unknown addresses — pass the sample on to their caller, so an
//! allocation made while parsing counts as parsing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// Where a sample's CPU went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    /// The request's JSON: `serde_json`, `common::payment` (the gateway's parse and
    /// validation), `common::entry` (the worker's stream entry decode).
    Parse,
    /// `metrics`, the Prometheus recorder and its storage.
    Metrics,
    /// The Redis client and the script calls: `redis`, `combine` (its parser),
    /// `common::store`, `common::batch`.
    Redis,
    /// HTTP: `hyper`, `hyper_util`, `http`, `httparse`, `http_body(_util)`; and `reqwest`.
    Http,
    /// Tower layers and their glue to hyper (`tower`, `tower_layer`, `tower_service`,
    /// `hyper_util::service`): only `serve-gateway --stack tower` has any.
    Tower,
    /// tokio's scheduler, timers and I/O driver (not `tokio::sync`/`tokio::io`, which pass to
    /// their caller).
    Runtime,
    /// `tracing` and its subscriber.
    Tracing,
    /// The process' own code: the gateway's router and handlers, the worker's pipeline,
    /// `common`'s other modules.
    Own,
    /// In the kernel: system calls (split by name), interrupts, page faults.
    Kernel,
    /// No frame of the stack says whose work it is (or unwinding failed).
    Other,
}

impl Bucket {
    pub const ALL: [Bucket; 10] = [
        Bucket::Parse,
        Bucket::Metrics,
        Bucket::Redis,
        Bucket::Http,
        Bucket::Tower,
        Bucket::Runtime,
        Bucket::Tracing,
        Bucket::Own,
        Bucket::Kernel,
        Bucket::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bucket::Parse => "parse",
            Bucket::Metrics => "metrics",
            Bucket::Redis => "redis",
            Bucket::Http => "http",
            Bucket::Tower => "tower",
            Bucket::Runtime => "runtime",
            Bucket::Tracing => "tracing",
            Bucket::Own => "own",
            Bucket::Kernel => "kernel",
            Bucket::Other => "other",
        }
    }

    /// What the bucket holds, for the table.
    pub fn describe(self) -> &'static str {
        match self {
            Bucket::Parse => "JSON parse/validation (serde_json, common::payment, common::entry)",
            Bucket::Metrics => "metrics (metrics, exporter, storage)",
            Bucket::Redis => "redis client + script call (redis, common::store, batch)",
            Bucket::Http => "hyper/http (server or client)",
            Bucket::Tower => "tower layers and their hyper glue",
            Bucket::Runtime => "tokio runtime/scheduling",
            Bucket::Tracing => "tracing",
            Bucket::Own => "own code (router, handlers, pipeline, rest of common)",
            Bucket::Kernel => "kernel (syscalls: read/write/epoll/...)",
            Bucket::Other => "unattributed (libc/unknown only)",
        }
    }
}

/// One frame of a stack as `perf script` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Demangled symbol without the `+0x..` offset; `[unknown]` when perf had none. An
    /// inlined frame's is the function's short name (`poll_next<..>`): its source says more.
    pub symbol: String,
    /// The object it is in: a path, `[kernel.kallsyms]`, `[unknown]`; `inlined` for a frame
    /// inlined into the next.
    pub dso: String,
    /// Its source file and line (`srcline`), when perf printed one.
    pub source: Option<String>,
}

impl Frame {
    fn in_kernel(&self) -> bool {
        self.dso.starts_with("[kernel")
    }
}

/// One sample: its weight (the event period, e.g. ns of `cpu-clock`) and its stack, leaf
/// first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerfSample {
    pub period: u64,
    pub frames: Vec<Frame>,
}

/// Parses one frame line (`\t ffffffff81000130 entry_SYSCALL_64+0x76 ([kernel.kallsyms])`;
/// an inlined frame has no object, or `(inlined)` in its place).
pub fn parse_frame(line: &str) -> Option<Frame> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let (rest, dso) = match line.strip_suffix(" (inlined)") {
        Some(rest) => (rest, "inlined"),
        None => match line.rfind(" (") {
            Some(i) if line.ends_with(')') && line[i + 2..].starts_with(['/', '[']) => {
                (&line[..i], &line[i + 2..line.len() - 1])
            }
            _ => (line, "inlined"),
        },
    };
    let rest = rest.trim();
    // The address, when there is one, is the first word and pure hex.
    let symbol = match rest.split_once(' ') {
        Some((addr, sym)) if addr.chars().all(|c| c.is_ascii_hexdigit()) => sym.trim(),
        None if rest.chars().all(|c| c.is_ascii_hexdigit()) => "[unknown]",
        _ => rest,
    };
    // `name+0x1f` → `name`, but not inside generics (`<T as Add>`): only a trailing offset.
    let symbol = match symbol.rfind("+0x") {
        Some(i) if symbol[i + 3..].chars().all(|c| c.is_ascii_hexdigit()) => &symbol[..i],
        _ => symbol,
    };
    Some(Frame {
        symbol: symbol.to_owned(),
        dso: dso.to_owned(),
        source: None,
    })
}

/// The period of a header line (`comm  1234/1240  8204.867300:    1001001 cpu-clock: `):
/// the number before the event name; 1 when the header has none.
fn header_period(line: &str) -> u64 {
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .iter()
        .rposition(|w| w.ends_with(':') && w.trim_end_matches(':').parse::<f64>().is_err())
        .and_then(|event| event.checked_sub(1))
        .and_then(|i| words[i].parse().ok())
        .unwrap_or(1)
}

/// Every sample of a `perf script` text (samples are separated by blank lines; a header
/// line starts at column 0, its frames are indented by a tab, and a frame's source line, when
/// asked for, follows it indented by spaces).
pub fn parse_perf_script(text: &str) -> Vec<PerfSample> {
    let mut samples = Vec::new();
    let mut current: Option<PerfSample> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            samples.extend(current.take());
        } else if line.starts_with('\t') {
            if let (Some(s), Some(f)) = (current.as_mut(), parse_frame(line)) {
                s.frames.push(f);
            }
        } else if line.starts_with(' ') {
            let source = line.trim();
            let source = source.strip_suffix(" (inlined)").unwrap_or(source);
            if let Some(f) = current.as_mut().and_then(|s| s.frames.last_mut()) {
                f.source = Some(source.to_owned());
            }
        } else {
            samples.extend(current.take());
            current = Some(PerfSample {
                period: header_period(line),
                frames: Vec::new(),
            });
        }
    }
    samples.extend(current);
    samples
}

/// The crate path a symbol names: `<hyper::proto::h1::Conn<..> as Trait>::poll` →
/// `hyper::proto::h1::Conn`, `tokio::runtime::park::Inner::park` as is.
fn subject(symbol: &str) -> &str {
    let s = symbol.trim_start_matches(['<', '&', '*']);
    let s = s.strip_prefix("dyn ").unwrap_or(s);
    let s = s.strip_prefix("mut ").unwrap_or(s);
    let s = s.strip_prefix("const ").unwrap_or(s);
    let end = s.find(['<', ' ', '(', '>']).unwrap_or(s.len());
    &s[..end]
}

/// Whose code a source file is, as a Rust path: `.../registry/src/<index>/redis-1.8.1/src/
/// aio/mod.rs:12` → `redis::aio`, `.../library/core/src/ptr/mod.rs` → `core::ptr`,
/// `<workspace>/common/src/payment.rs:40` → `paystream_common::payment`. `None` when the file
/// says nothing (libc's own sources, `??:0`, the kernel, the vDSO).
pub fn source_owner(source: &str) -> Option<String> {
    let file = source.rsplit_once(':').map_or(source, |(f, _)| f);
    let module = |rest: &str| -> String {
        let rest = rest.strip_prefix("src/").unwrap_or(rest);
        let rest = rest.strip_suffix(".rs").unwrap_or(rest);
        rest.split('/')
            .filter(|p| !matches!(*p, "mod" | "lib" | "main" | ""))
            .collect::<Vec<_>>()
            .join("::")
    };
    let join = |krate: &str, rest: &str| {
        let m = module(rest);
        if m.is_empty() {
            krate.to_owned()
        } else {
            format!("{krate}::{m}")
        }
    };
    for marker in ["/registry/src/", "/git/checkouts/"] {
        if let Some((_, after)) = file.split_once(marker) {
            // <index or repo>/<crate>-<version>/src/...
            let mut parts = after.splitn(3, '/');
            let (_, dir, rest) = (parts.next()?, parts.next()?, parts.next().unwrap_or(""));
            let krate = match dir.rfind('-') {
                Some(i) if dir[i + 1..].starts_with(|c: char| c.is_ascii_digit()) => &dir[..i],
                _ => dir,
            };
            return Some(join(&krate.replace('-', "_"), rest));
        }
    }
    if let Some((_, after)) = file.split_once("/library/") {
        let (krate, rest) = after.split_once('/')?;
        return Some(join(krate, rest));
    }
    for (dir, krate) in [
        ("/common/src/", "paystream_common"),
        ("/gateway/src/", "paystream_gateway"),
        ("/worker/src/", "paystream_worker"),
        ("/load-tests/src/", "paystream_load_tests"),
    ] {
        if let Some((_, rest)) = file.rsplit_once(dir) {
            return Some(join(krate, rest));
        }
    }
    None
}

/// The bucket of one user-space frame — by its source file when known, else by its symbol —
/// or `None` when the frame passes to its caller.
pub fn frame_bucket(frame: &Frame) -> Option<Bucket> {
    match frame.source.as_deref().and_then(source_owner) {
        Some(owner) => path_bucket(&owner),
        None => path_bucket(&frame.symbol),
    }
}

/// The bucket of the code a Rust path (a symbol or [`source_owner`]'s answer) names.
pub fn path_bucket(symbol: &str) -> Option<Bucket> {
    let path = subject(symbol);
    let (krate, rest) = path.split_once("::").unwrap_or((path, ""));
    let common = |module: &str| rest == module || rest.starts_with(&format!("{module}::"));
    Some(match krate {
        "serde_json" | "serde" => Bucket::Parse,
        "paystream_common" | "common" if common("payment") || common("entry") => Bucket::Parse,
        "metrics"
        | "metrics_exporter_prometheus"
        | "metrics_util"
        | "quanta"
        | "sketches_ddsketch" => Bucket::Metrics,
        "redis" | "combine" => Bucket::Redis,
        "paystream_common" | "common" if common("store") || common("batch") => Bucket::Redis,
        "tower" | "tower_layer" | "tower_service" => Bucket::Tower,
        "hyper_util" if rest == "service" || rest.starts_with("service::") => Bucket::Tower,
        "hyper" | "hyper_util" | "http" | "httparse" | "http_body" | "http_body_util"
        | "httpdate" | "reqwest" | "h2" => Bucket::Http,
        "tokio"
            if ["sync", "io", "net"]
                .iter()
                .any(|m| rest == *m || rest.starts_with(&format!("{m}::"))) =>
        {
            return None
        }
        "tokio" | "mio" => Bucket::Runtime,
        "tracing" | "tracing_core" | "tracing_subscriber" => Bucket::Tracing,
        "paystream_gateway"
        | "paystream_worker"
        | "paystream_common"
        | "gateway"
        | "worker"
        | "common"
        | "governor"
        | "paystream_load_tests" => Bucket::Own,
        _ => return None,
    })
}

/// The system call a kernel stack is in: from the kernel's entry point (`__x64_sys_write` →
/// `write`), else from the libc wrapper that made it (`__GI___writev` → `writev`; a thread
/// rescheduled on its way out of a call shows no entry point), else `irq/fault/other`.
fn syscall(frames: &[Frame]) -> String {
    let kernel = frames.iter().take_while(|f| f.in_kernel()).find_map(|f| {
        ["__x64_sys_", "__do_sys_", "__se_sys_", "ksys_"]
            .iter()
            .find_map(|p| f.symbol.strip_prefix(p))
    });
    let libc = || {
        let f = frames.iter().find(|f| !f.in_kernel())?;
        f.dso.contains("libc").then(|| {
            let name = f.symbol.trim_start_matches("__GI_");
            let name = name.strip_prefix("__libc_").unwrap_or(name);
            name.trim_start_matches('_')
                .trim_end_matches("_nocancel")
                .to_owned()
        })
    };
    kernel
        .map(str::to_owned)
        .or_else(libc)
        .unwrap_or_else(|| "irq/fault/other".to_owned())
}

/// The code a frame names, for the breakdown inside a bucket: its source's module path, or
/// its symbol's first three path segments.
fn owner(frame: &Frame) -> String {
    frame
        .source
        .as_deref()
        .and_then(source_owner)
        .unwrap_or_else(|| {
            subject(&frame.symbol)
                .split("::")
                .take(3)
                .collect::<Vec<_>>()
                .join("::")
        })
}

/// A sample's bucket, and what inside it: for the kernel the system call, otherwise the
/// module of the frame that decided (for [`Bucket::Other`], the leaf symbol).
pub fn classify(sample: &PerfSample) -> (Bucket, String) {
    if sample.frames.first().is_some_and(Frame::in_kernel) {
        return (Bucket::Kernel, syscall(&sample.frames));
    }
    let found = sample
        .frames
        .iter()
        .filter(|f| !f.in_kernel())
        .find_map(|f| frame_bucket(f).map(|b| (b, owner(f))));
    found.unwrap_or_else(|| {
        let leaf = sample
            .frames
            .first()
            .map_or_else(|| "[no stack]".to_owned(), |f| f.symbol.clone());
        (Bucket::Other, leaf)
    })
}

/// One bucket's share of the process' CPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BucketShare {
    pub bucket: Bucket,
    pub description: &'static str,
    pub samples: u64,
    /// Share of the process' CPU (sample periods), %.
    pub percent: f64,
    /// `percent` × the process' CPU µs per payment.
    pub us_per_payment: Option<f64>,
    /// What weighs most in it, with its %, heaviest first: the module of the deciding frame
    /// (for `kernel`, the system call; for `other`, the leaf symbol).
    pub top: Vec<(String, f64)>,
}

/// Groups samples into buckets; `cpu_us_per_payment` (from `/proc`) gives each bucket its µs.
pub fn bucketize(samples: &[PerfSample], cpu_us_per_payment: Option<f64>) -> Vec<BucketShare> {
    let total: u64 = samples.iter().map(|s| s.period).sum::<u64>().max(1);
    let mut weight: BTreeMap<Bucket, (u64, u64, BTreeMap<String, u64>)> = BTreeMap::new();
    for s in samples {
        let (bucket, leaf) = classify(s);
        let entry = weight.entry(bucket).or_default();
        entry.0 += s.period;
        entry.1 += 1;
        *entry.2.entry(leaf).or_default() += s.period;
    }
    let pct = |w: u64| (w as f64 * 1000.0 / total as f64).round() / 10.0;
    Bucket::ALL
        .iter()
        .map(|&bucket| {
            let (w, n, leaves) = weight.remove(&bucket).unwrap_or_default();
            let mut top: Vec<(String, u64)> = leaves.into_iter().collect();
            top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let share = w as f64 / total as f64;
            BucketShare {
                bucket,
                description: bucket.describe(),
                samples: n,
                percent: pct(w),
                us_per_payment: cpu_us_per_payment.map(|c| (c * share * 10.0).round() / 10.0),
                top: top
                    .into_iter()
                    .take(6)
                    .map(|(s, w)| (shorten(&s), pct(w)))
                    .collect(),
            }
        })
        .collect()
}

/// A symbol cut to a readable length (Rust generics can run to kilobytes).
fn shorten(symbol: &str) -> String {
    const MAX: usize = 120;
    if symbol.len() <= MAX {
        return symbol.to_owned();
    }
    let mut end = MAX;
    while !symbol.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &symbol[..end])
}

/// The part of a `throughput` report this reads: the watched processes' CPU per payment.
#[derive(Deserialize)]
struct LoadFile {
    name: String,
    processes: Vec<ProcessFile>,
    #[serde(default)]
    load_average: super::procstat::LoadAverages,
}

#[derive(Deserialize)]
struct ProcessFile {
    name: String,
    cpu_us_per_payment: Option<f64>,
}

/// A process group's CPU µs per payment in a `throughput` report's JSON text.
pub fn group_cpu_us(text: &str, group: &str) -> anyhow::Result<(String, Option<f64>)> {
    let load: LoadFile = serde_json::from_str(text).context("not a throughput report")?;
    let p = load
        .processes
        .iter()
        .find(|p| p.name == group)
        .with_context(|| format!("no process group {group:?} in {}", load.name))?;
    Ok((load.load_average.to_string(), p.cpu_us_per_payment))
}

/// What `perf-buckets` reads and where it writes.
#[derive(Debug, Clone)]
pub struct PerfBucketsConfig {
    /// `perf script` output of the profiled process.
    pub script: PathBuf,
    /// A `throughput` report of an unprofiled run at the same rate: the CPU per payment.
    pub load: PathBuf,
    /// The report of the profiled run itself, for its CPU (perf's own overhead shows there).
    pub profiled_load: Option<PathBuf>,
    /// The process group of those reports (`--pid NAME=...`).
    pub group: String,
    pub out_dir: Option<PathBuf>,
    pub name: String,
}

/// Everything `perf-buckets` found: written as `<out>/<name>.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerfBucketsReport {
    pub name: String,
    pub group: String,
    pub script: String,
    pub samples: usize,
    /// The group's CPU µs per payment in the unprofiled run (what the buckets divide).
    pub cpu_us_per_payment: Option<f64>,
    pub load_average: String,
    /// The same in the profiled run (higher: perf's unwinding is charged to the process).
    pub profiled_cpu_us_per_payment: Option<f64>,
    pub buckets: Vec<BucketShare>,
    pub notes: Vec<String>,
    pub files: Vec<String>,
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Reads, groups, writes `<out>/<name>.json`.
pub fn run_perf_buckets(cfg: &PerfBucketsConfig) -> anyhow::Result<PerfBucketsReport> {
    let samples = parse_perf_script(&read(&cfg.script)?);
    anyhow::ensure!(
        !samples.is_empty(),
        "no samples in {}",
        cfg.script.display()
    );
    let (load_average, cpu) = group_cpu_us(&read(&cfg.load)?, &cfg.group)?;
    let profiled = match &cfg.profiled_load {
        Some(p) => group_cpu_us(&read(p)?, &cfg.group)?.1,
        None => None,
    };
    let mut report = PerfBucketsReport {
        name: cfg.name.clone(),
        group: cfg.group.clone(),
        script: cfg.script.display().to_string(),
        samples: samples.len(),
        cpu_us_per_payment: cpu,
        load_average,
        profiled_cpu_us_per_payment: profiled,
        buckets: bucketize(&samples, cpu),
        notes: vec![
            "a sample goes to the first frame from the leaf up whose crate (or common module) \
             has a bucket; core/alloc/std, libc, tokio::sync/io and unknown frames pass to \
             their caller; a leaf in the kernel is kernel, by system call."
                .into(),
            "µs per payment = share of the samples × the group's CPU µs per payment of the \
             unprofiled run (utime + stime from /proc)."
                .into(),
        ],
        files: Vec::new(),
    };
    super::report::write_report(cfg.out_dir.as_deref(), &cfg.name, &mut report, |r| {
        &mut r.files
    })?;
    Ok(report)
}

impl PerfBucketsReport {
    /// The human table: one line per bucket, heaviest leaves beside it.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}: {} samples of {}; CPU {} µs/payment (profiled: {}); load average {}",
            self.name,
            self.samples,
            self.group,
            self.cpu_us_per_payment
                .map_or_else(|| "n/a".into(), |c| format!("{c:.1}")),
            self.profiled_cpu_us_per_payment
                .map_or_else(|| "n/a".into(), |c| format!("{c:.1}")),
            self.load_average
        );
        for b in &self.buckets {
            let top: Vec<String> = b
                .top
                .iter()
                .take(3)
                .map(|(s, p)| format!("{p:.1} % {}", shorten_for_table(s)))
                .collect();
            let _ = writeln!(
                out,
                "  {:<8} {:>5.1} % {:>7} µs  {}",
                b.bucket.name(),
                b.percent,
                b.us_per_payment
                    .map_or_else(|| "n/a".into(), |u| format!("{u:.1}")),
                top.join("; ")
            );
        }
        out
    }
}

fn shorten_for_table(symbol: &str) -> String {
    let mut s = shorten(symbol);
    if s.len() > 60 {
        let mut end = 60;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SCRIPT: &str = "\
paystream-gatew  4242/4242  8204.867300:    1001001 cpu-clock: 
\tffffffff821c2f02 __lock_text_start+0x12 ([kernel.kallsyms])
\tffffffff821ef691 __x64_sys_write+0x19 ([kernel.kallsyms])
\tffffffff81000130 entry_SYSCALL_64_after_hwframe+0x76 ([kernel.kallsyms])
\t    7f0c1a2b3c4d __GI___libc_write+0x4d (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t    55d5c1e5a3f4 hyper::proto::h1::io::Buffered<T,B>::poll_flush+0x54 (/w/paystream-gateway)

paystream-gatew  4242/4242  8204.868301:    1001001 cpu-clock: 
\t    7f0c1a2b0000 malloc+0x20 (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t    55d5c1e50000 alloc::raw_vec::RawVec<T,A>::grow_one+0x10 (/w/paystream-gateway)
\t    55d5c1e51000 serde_json::de::Deserializer<R>::parse_str+0x30 (/w/paystream-gateway)
\t    55d5c1e52000 paystream_common::payment::ValidPayment::parse+0x40 (/w/paystream-gateway)
\t    55d5c1e53000 paystream_gateway::router::handle::{{closure}}+0x50 (/w/paystream-gateway)

paystream-gatew  4242/4242  8204.869302:    2002002 cpu-clock: 
\t    55d5c1e54000 <redis::aio::multiplexed_connection::PipelineSink<T> as futures_sink::Sink<SinkItem>>::start_send+0x10 (/w/paystream-gateway)
\t    55d5c1e55000 tokio::runtime::task::harness::Harness<T,S>::poll+0x10 (/w/paystream-gateway)

paystream-gatew  4242/4242  8204.870303:    1001001 cpu-clock: 
\t    55d5c1e56000 tokio::sync::oneshot::Sender<T>::send+0x10 (/w/paystream-gateway)
\t    55d5c1e57000 paystream_common::batch::deliver+0x10 (/w/paystream-gateway)
\t    55d5c1e58000 tokio::runtime::scheduler::current_thread::CoreGuard::block_on+0x10 (/w/paystream-gateway)

paystream-gatew  4242/4242  8204.871304:    1001001 cpu-clock: 
\t    55d5c1e59000 tokio::runtime::scheduler::current_thread::Context::park+0x10 (/w/paystream-gateway)

paystream-gatew  4242/4242  8204.872305:    1001001 cpu-clock: 
\t    7f0c1a2b1111 __memmove_avx_unaligned_erms+0x11 (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t               0 [unknown] ([unknown])
";

    #[test]
    fn parses_headers_frames_and_inlined_frames() {
        let samples = parse_perf_script(SCRIPT);
        assert_eq!(samples.len(), 6);
        assert_eq!(samples[0].period, 1_001_001);
        assert_eq!(samples[2].period, 2_002_002);
        assert_eq!(samples[0].frames.len(), 5);
        assert_eq!(
            samples[0].frames[1],
            Frame {
                symbol: "__x64_sys_write".into(),
                dso: "[kernel.kallsyms]".into(),
                source: None,
            }
        );
        assert_eq!(
            samples[5].frames[1],
            Frame {
                symbol: "[unknown]".into(),
                dso: "[unknown]".into(),
                source: None,
            }
        );
        let inlined =
            parse_frame("\t 55d5 hyper::proto::h1::role::parse_headers+0x3 (inlined)").unwrap();
        assert_eq!(inlined.symbol, "hyper::proto::h1::role::parse_headers");
        assert_eq!(inlined.dso, "inlined");
        // With `-F ...,srcline`, an inlined frame has no object at all; a symbol ending in a
        // parenthesis is not mistaken for one.
        let bare = parse_frame("\t 1cb4da {closure#1}<(u8, u16)>::f (x)").unwrap();
        assert_eq!(
            (bare.symbol.as_str(), bare.dso.as_str()),
            ("{closure#1}<(u8, u16)>::f (x)", "inlined")
        );
        // A generic's `+` is not an offset.
        let g = parse_frame("\t 1f <T as core::ops::Add>::add+0x1f (/bin)").unwrap();
        assert_eq!(g.symbol, "<T as core::ops::Add>::add");
        assert_eq!(header_period("comm 1/1 1.0: cycles:"), 1);
    }

    #[test]
    fn each_sample_goes_to_the_first_frame_that_says_whose_work_it_is() {
        let samples = parse_perf_script(SCRIPT);
        let buckets: Vec<(Bucket, String)> = samples.iter().map(classify).collect();
        assert_eq!(buckets[0], (Bucket::Kernel, "write".into()));
        assert_eq!(buckets[1].1, "serde_json::de::Deserializer");
        assert_eq!(buckets[2].1, "redis::aio::multiplexed_connection");
        // malloc and RawVec pass to serde_json: parsing.
        assert_eq!(buckets[1].0, Bucket::Parse);
        // A trait impl is the implementing type's crate.
        assert_eq!(buckets[2].0, Bucket::Redis);
        // tokio::sync passes to the batcher that called it.
        assert_eq!(buckets[3].0, Bucket::Redis);
        assert_eq!(buckets[4].0, Bucket::Runtime);
        assert_eq!(buckets[5].0, Bucket::Other);
        assert_eq!(buckets[5].1, "__memmove_avx_unaligned_erms");
        // Rescheduled on the way out of a call: no entry point in the kernel stack, the libc
        // wrapper names it.
        let frame = |symbol: &str, dso: &str| Frame {
            symbol: symbol.into(),
            dso: dso.into(),
            source: None,
        };
        let out_of_writev = PerfSample {
            period: 1,
            frames: vec![
                frame("__schedule", "[kernel.kallsyms]"),
                frame("do_syscall_64", "[kernel.kallsyms]"),
                frame("__GI___writev", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
            ],
        };
        assert_eq!(classify(&out_of_writev), (Bucket::Kernel, "writev".into()));
        let interrupted = PerfSample {
            period: 1,
            frames: vec![
                frame("asm_exc_page_fault", "[kernel.kallsyms]"),
                frame("f", "/bin"),
            ],
        };
        assert_eq!(classify(&interrupted).1, "irq/fault/other");
    }

    /// `perf script -F comm,tid,period,event,ip,sym,dso,srcline --full-source-path`.
    const SCRIPT_WITH_SOURCES: &str = "\
paystream-gatew 25308    1001001 cpu-clock: 
\t           97c24 _int_malloc (/usr/lib/x86_64-linux-gnu/libc.so.6)
  ./malloc/./malloc/malloc.c:3929
\t          1cb4da <std::alloc::System as core::alloc::global::GlobalAlloc>::alloc
  /rustc/5980761/library/std/src/sys/alloc/unix.rs:14 (inlined)
\t          1cb4da {closure#1}<combine::stream::easy::Stream<combine::stream::MaybePartialStream<&[u8]>>>
  /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/redis-1.8.1/src/parser.rs:125 (inlined)
\t          1c96d8 combine::parser::ParseMode::parse_committed (/w/paystream-gateway)
  /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/combine-4.6.9/src/parser/mod.rs:314

paystream-gatew 25308    1001001 cpu-clock: 
\t          3a0000 parse<serde_json::read::SliceRead>
  /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/serde_json-1.0.140/src/de.rs:2466 (inlined)
\t          3a0000 parse
  /work/wt-perf/common/src/payment.rs:210 (inlined)
\t          3a0100 paystream_gateway::router::handle::{{closure}} (/w/paystream-gateway)
  /work/wt-perf/gateway/src/router.rs:66

paystream-gatew 25308    1001001 cpu-clock: 
\t          3b0000 poll_read<mio::net::tcp::stream::TcpStream>
  /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.47.1/src/io/poll_evented.rs:120 (inlined)
\t          3b0100 {closure#0}
  /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/hyper-1.7.0/src/proto/h1/io.rs:210 (inlined)
\t          3b0200 paystream_gateway::main (/w/paystream-gateway)
  ??:0
";

    #[test]
    fn source_files_name_the_code_of_inlined_frames() {
        let samples = parse_perf_script(SCRIPT_WITH_SOURCES);
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].period, 1_001_001);
        assert_eq!(
            samples[0].frames[2].source.as_deref(),
            Some("/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/redis-1.8.1/src/parser.rs:125")
        );
        let buckets: Vec<Bucket> = samples.iter().map(|s| classify(s).0).collect();
        // malloc, then std: passed on; the closure is redis' parser's.
        assert_eq!(buckets, [Bucket::Redis, Bucket::Parse, Bucket::Http]);
        assert_eq!(source_owner("??:0"), None);
        assert_eq!(source_owner("./malloc/./malloc/malloc.c:3929"), None);
        assert_eq!(
            source_owner(
                "/root/.cargo/registry/src/i/hyper-util-0.1.21/src/server/conn/auto/mod.rs:9"
            )
            .as_deref(),
            Some("hyper_util::server::conn::auto")
        );
        assert_eq!(
            source_owner("/rustc/abc/library/core/src/ptr/mod.rs:1").as_deref(),
            Some("core::ptr")
        );
        assert_eq!(
            source_owner("/work/wt-perf/gateway/src/handlers/payments.rs:55").as_deref(),
            Some("paystream_gateway::handlers::payments")
        );
        assert_eq!(
            source_owner("/src/common/src/lib.rs:3").as_deref(),
            Some("paystream_common")
        );
    }

    #[test]
    fn frames_map_to_buckets_by_crate_and_common_module() {
        let cases = [
            (
                "paystream_common::payment::Cents::parse",
                Some(Bucket::Parse),
            ),
            (
                "paystream_common::entry::StreamEntry::decode",
                Some(Bucket::Parse),
            ),
            (
                "paystream_common::store::Store::accept_batch_on::{{closure}}",
                Some(Bucket::Redis),
            ),
            ("paystream_common::keys::Keys::payment", Some(Bucket::Own)),
            (
                "<metrics_exporter_prometheus::recorder::Handle as metrics::CounterFn>::increment",
                Some(Bucket::Metrics),
            ),
            (
                "<&mut serde_json::de::Deserializer<R> as serde::Deserializer>::deserialize_map",
                Some(Bucket::Parse),
            ),
            ("httparse::parse_headers_iter_uninit", Some(Bucket::Http)),
            (
                "<tower::load_shed::LoadShed<S> as tower_service::Service<Req>>::call",
                Some(Bucket::Tower),
            ),
            (
                "hyper_util::service::oneshot::Oneshot<S,Req>::poll",
                Some(Bucket::Tower),
            ),
            (
                "hyper_util::server::conn::auto::Builder::serve",
                Some(Bucket::Http),
            ),
            ("tokio::io::poll_evented::PollEvented<E>::poll_read", None),
            ("tokio::net::tcp::stream::TcpStream::poll_write_priv", None),
            (
                "tokio::runtime::io::driver::Driver::turn",
                Some(Bucket::Runtime),
            ),
            ("futures_util::future::future::Map<Fut,F>::poll", None),
            ("mio::poll::Poll::poll", Some(Bucket::Runtime)),
            (
                "core::ptr::drop_in_place<hyper::proto::h1::conn::Conn<I,B,T>>",
                None,
            ),
            ("alloc::sync::Arc<T,A>::drop_slow", None),
            ("[unknown]", None),
            (
                "paystream_worker::pipeline::run::{{closure}}",
                Some(Bucket::Own),
            ),
            (
                "tracing_core::dispatcher::get_default",
                Some(Bucket::Tracing),
            ),
        ];
        for (symbol, bucket) in cases {
            assert_eq!(path_bucket(symbol), bucket, "{symbol}");
        }
    }

    #[test]
    fn shares_add_up_and_turn_into_microseconds() {
        let samples = parse_perf_script(SCRIPT);
        let b = bucketize(&samples, Some(70.0));
        assert_eq!(b.len(), Bucket::ALL.len());
        let total: f64 = b.iter().map(|s| s.percent).sum();
        assert!((total - 100.0).abs() < 0.2, "{total}");
        let redis = b.iter().find(|s| s.bucket == Bucket::Redis).unwrap();
        // 3 of 7 periods (one sample weighs two).
        assert_eq!(redis.samples, 2);
        assert_eq!(redis.percent, 42.9);
        assert_eq!(redis.us_per_payment, Some(30.0));
        let kernel = b.iter().find(|s| s.bucket == Bucket::Kernel).unwrap();
        assert_eq!(kernel.top, vec![("write".to_owned(), 14.3)]);
        assert_eq!(bucketize(&samples, None)[0].us_per_payment, None);
    }

    #[test]
    fn reads_the_group_cpu_of_a_throughput_report() {
        let json = r#"{"name":"perf-gateway-load","processes":[
            {"name":"load-generator","cpu_us_per_payment":40.0},
            {"name":"gateway","cpu_us_per_payment":22.5}],
            "load_average":{"start":{"one":1.0,"five":2.0,"fifteen":3.0},"end":null}}"#;
        let (load, cpu) = group_cpu_us(json, "gateway").unwrap();
        assert_eq!(cpu, Some(22.5));
        assert_eq!(load, "1.00, 2.00, 3.00 → n/a");
        assert!(group_cpu_us(json, "worker").is_err());
    }

    #[test]
    fn writes_its_json_and_table() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("perf.txt");
        let load = dir.path().join("load.json");
        std::fs::write(&script, SCRIPT).unwrap();
        std::fs::write(
            &load,
            r#"{"name":"l","processes":[{"name":"gateway","cpu_us_per_payment":70.0}]}"#,
        )
        .unwrap();
        let r = run_perf_buckets(&PerfBucketsConfig {
            script,
            load: load.clone(),
            profiled_load: Some(load),
            group: "gateway".into(),
            out_dir: Some(dir.path().to_path_buf()),
            name: "perf-gateway".into(),
        })
        .unwrap();
        assert_eq!(r.samples, 6);
        assert_eq!(r.profiled_cpu_us_per_payment, Some(70.0));
        let written = std::fs::read_to_string(dir.path().join("perf-gateway.json")).unwrap();
        assert!(written.contains("\"bucket\": \"redis\""));
        let table = r.table();
        assert!(table.contains("kernel"), "{table}");
        assert!(table.contains("14.3 % write"), "{table}");
    }
}
