//! `scripts/up.sh` itself, as an operator runs it: Redis, two workers, two gateways and
//! nginx (debug binaries, `PROFILE=debug`) in a fresh 0700 `RUN_DIR` on ports of their
//! own, against two in-process processor simulators. Payments are posted through nginx
//! while a worker and then a gateway are killed with `kill -9`; the supervisor must bring
//! each back and the stack must keep serving:
//! - every payment answered `202` is processed exactly once (stored by exactly one
//!   simulator, and our summary counts exactly what the simulators stored);
//! - nginx answers no `5xx` (and no request fails) except requests started within
//!   [`KILL_WINDOW`] after the gateway was killed — those in flight on, or sent over a
//!   kept-alive connection to, the process that just died. The worker's death costs no
//!   request anything;
//! - `/metrics` is on each process's own port and `404` on nginx's;
//! - SIGTERM stops everything, and nothing of the stack outlives up.sh.
//!
//! Skips itself, loudly, only when nginx is not installed (`scripts/test.sh` installs
//! `nginx-light`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paystream_load_tests::sim::{self, SimConfig};
use uuid::Uuid;

/// Requests started this long after a gateway's `kill -9` may fail (see the module doc).
const KILL_WINDOW: Duration = Duration::from_secs(1);
/// Bound on waiting for an event (start-up, a restart, the drain): a bound on a hang.
const DEADLINE: Duration = Duration::from_secs(120);

fn nginx_available() -> bool {
    Path::new("/usr/sbin/nginx").exists()
        || std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| dir.join("nginx").is_file())
        })
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The debug binaries of the gateway and worker. A workspace test run has built them next
/// to this test (the gateway's and worker's own tests need them): those are used as they
/// are. Rebuilding them there could swap a binary other tests are running (the worker's is
/// built with its `test-hooks` feature), so when they are missing (this crate's tests run
/// alone) they are built into a target directory of this test's own.
fn build_binaries() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // <target>/debug/deps/load-<hash>
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let present = |dir: &Path| {
        ["paystream-gateway", "paystream-worker"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if present(&profile_dir) {
        return profile_dir;
    }
    let own_target = profile_dir.parent().unwrap().join("up-sh");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(repo_root())
        .args([
            "build",
            "--locked",
            "-p",
            "paystream-gateway",
            "-p",
            "paystream-worker",
        ])
        .arg("--target-dir")
        .arg(&own_target)
        .status()
        .unwrap();
    assert!(status.success(), "cargo build of the binaries failed");
    own_target.join("debug")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `up.sh` running as a child; SIGTERM and a wait when dropped.
struct UpSh {
    child: Child,
    run_dir: PathBuf,
    log: PathBuf,
}

impl UpSh {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The running pid of a component (`worker-1`, `gateway-2`, `nginx`, `redis`).
    fn pid(&self, name: &str) -> Option<i32> {
        std::fs::read_to_string(self.run_dir.join("pids").join(format!("{name}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Waits until `name` runs under a pid other than `old`; returns it.
    async fn wait_restarted(&self, name: &str, old: i32) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(pid) = self.pid(name).filter(|&p| p != old && alive(p)) {
                return pid;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{name} was not restarted:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        signal(self.child.id() as i32, "TERM");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "up.sh did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for UpSh {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.terminate();
        }
    }
}

fn signal(pid: i32, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status();
}

fn alive(pid: i32) -> bool {
    // A zombie (dead, not yet reaped by its supervisor) counts as dead.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// One `POST /payments` through nginx: its id, when it started, its status (0 = no answer).
#[derive(Clone, Copy)]
struct Post {
    id: Uuid,
    started: Instant,
    status: u16,
}

/// Posts payments through `url` from `clients` loops until `stop` is set.
fn start_load(
    url: String,
    clients: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Arc<Mutex<Vec<Post>>>, tokio::task::JoinSet<()>) {
    let posts = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (url, stop, posts) = (url.clone(), stop.clone(), posts.clone());
        tasks.spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = Uuid::new_v4();
                let started = Instant::now();
                let status = client
                    .post(format!("{url}/payments"))
                    .header("content-type", "application/json")
                    .body(format!(r#"{{"correlationId":"{id}","amount":19.90}}"#))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                posts.lock().unwrap().push(Post {
                    id,
                    started,
                    status,
                });
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }
    (posts, tasks)
}

async fn get_status(url: &str) -> u16 {
    reqwest::get(url)
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_sh_restarts_what_dies_and_every_accepted_payment_is_processed_once() {
    if !nginx_available() {
        let bar = "!".repeat(78);
        eprintln!("{bar}\nSKIPPED: nginx is not installed (apt-get install nginx-light);\nthe up.sh supervision test did not run.\n{bar}");
        return;
    }
    let bin_dir = build_binaries();
    let default = sim::spawn(SimConfig::default_processor()).await.unwrap();
    let fallback = sim::spawn(SimConfig::fallback_processor()).await.unwrap();
    // tempfile makes a 0700 directory: nginx's workers must still reach the sockets in it.
    // Its name has a space and URL/sed metacharacters: RUN_DIR may be anywhere.
    let run_dir = tempfile::Builder::new()
        .prefix("paystream run #1 &")
        .tempdir()
        .unwrap();
    let (port, redis_port) = (free_port(), free_port());
    let gw_metrics = [free_port(), free_port()];
    let worker_metrics = free_port();
    let log = run_dir.path().join("up.log");
    let child = Command::new("bash")
        .arg(repo_root().join("scripts/up.sh"))
        .env("RUN_DIR", run_dir.path())
        .env("PROFILE", "debug")
        .env("BIN_DIR", &bin_dir)
        .env("PORT", port.to_string())
        .env("REDIS_PORT", redis_port.to_string())
        .env(
            "GATEWAY_METRICS_PORTS",
            format!("{} {}", gw_metrics[0], gw_metrics[1]),
        )
        .env("WORKER_METRICS_PORT_BASE", worker_metrics.to_string())
        .env("WORKERS", "2")
        .env("PROCESSOR_DEFAULT_URL", default.url())
        .env("PROCESSOR_FALLBACK_URL", fallback.url())
        // A dead worker's entries are taken over after this long.
        .env("WORKER_CLAIM_IDLE_MS", "1500")
        .env("WORKER_NICE", "0")
        // The load tests purge without an admin token.
        .env("PAYSTREAM_PROFILE", "contest")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::OpenOptions::new().append(true).open(&log).unwrap())
        .spawn()
        .unwrap();
    let mut up = UpSh {
        child,
        run_dir: run_dir.path().to_path_buf(),
        log,
    };
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while get_status(&format!("{base}/readyz")).await != 200 {
        assert!(
            up.child.try_wait().unwrap().is_none(),
            "up.sh exited:\n{}",
            up.log()
        );
        assert!(start.elapsed() < DEADLINE, "stack not ready:\n{}", up.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        up.log()
            .contains("starting with 0 stream entries (0 pending"),
        "up.sh does not say what it starts with:\n{}",
        up.log()
    );

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (posts, mut load) = start_load(base.clone(), 8, stop.clone());
    let posted = || posts.lock().unwrap().len();
    let wait_posts = |n: usize| async move {
        let start = Instant::now();
        while posted() < n {
            assert!(start.elapsed() < DEADLINE, "the load stopped");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    wait_posts(300).await;

    // kill -9 of a worker: the other keeps processing, the supervisor starts a new one.
    let worker = up.pid("worker-1").unwrap();
    signal(worker, "KILL");
    let new_worker = up.wait_restarted("worker-1", worker).await;
    assert!(
        up.log()
            .contains(&format!("worker-1 (pid {worker}) died: killed by signal 9")),
        "{}",
        up.log()
    );
    wait_posts(posted() + 300).await;

    // kill -9 of a gateway under load.
    let gateway = up.pid("gateway-1").unwrap();
    let killed_at = Instant::now();
    signal(gateway, "KILL");
    up.wait_restarted("gateway-1", gateway).await;
    assert!(
        up.log().contains(&format!(
            "gateway-1 (pid {gateway}) died: killed by signal 9"
        )),
        "{}",
        up.log()
    );
    wait_posts(posted() + 600).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    while load.join_next().await.is_some() {}
    let posts = posts.lock().unwrap().clone();

    // No failure outside the window right after the gateway's death.
    let mut tolerated = 0;
    for p in &posts {
        if p.status == 202 {
            continue;
        }
        let in_window = p.started + Duration::from_millis(100) >= killed_at
            && p.started <= killed_at + KILL_WINDOW;
        assert!(
            in_window,
            "POST answered {} ({} ms after the gateway's kill), outside the kill window",
            p.status,
            p.started.saturating_duration_since(killed_at).as_millis()
        );
        tolerated += 1;
    }
    let accepted: Vec<Uuid> = posts
        .iter()
        .filter(|p| p.status == 202)
        .map(|p| p.id)
        .collect();
    eprintln!(
        "{} posts, {} accepted, {tolerated} failed within {KILL_WINDOW:?} of the gateway's kill",
        posts.len(),
        accepted.len()
    );
    assert!(accepted.len() >= 1000, "too few payments got through");

    // Exactly once: every accepted payment stored by exactly one simulator, in the end.
    let start = Instant::now();
    loop {
        let missing = accepted
            .iter()
            .filter(|id| default.stored(id).is_none() && fallback.stored(id).is_none())
            .count();
        if missing == 0 {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{missing} accepted payments never processed:\n{}",
            up.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let posted_ids: HashSet<Uuid> = posts.iter().map(|p| p.id).collect();
    for id in &accepted {
        assert!(
            !(default.stored(id).is_some() && fallback.stored(id).is_some()),
            "{id} stored by both processors"
        );
    }
    // Nothing stored that was not posted; a payment whose POST failed at the kill may
    // have been accepted before the gateway died (its client would retry with the same
    // id), so the stored set lies between the accepted and the posted ones.
    let stored = default.stored_count() + fallback.stored_count();
    assert!(stored >= accepted.len() && stored <= posted_ids.len());
    // Our summary counts exactly what the simulators stored, once all is recorded.
    let start = Instant::now();
    loop {
        let summary: serde_json::Value = reqwest::get(format!("{base}/payments-summary"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ours = summary["default"]["totalRequests"].as_u64().unwrap()
            + summary["fallback"]["totalRequests"].as_u64().unwrap();
        if ours == stored as u64 {
            break;
        }
        assert!(
            ours < stored as u64,
            "summary counts {ours}, processors stored {stored}"
        );
        assert!(
            start.elapsed() < DEADLINE,
            "summary {ours} never reached {stored}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Metrics: on every process's own port, never on the public one. (A gateway restarted
    // a moment ago may have counted nothing yet: nginx rests a failed upstream for 10 s.)
    assert_eq!(get_status(&format!("{base}/metrics")).await, 404);
    let mut families = String::new();
    for p in gw_metrics
        .iter()
        .chain([worker_metrics, worker_metrics + 1].iter())
    {
        let start = Instant::now();
        loop {
            match reqwest::get(format!("http://127.0.0.1:{p}/metrics")).await {
                Ok(r) if r.status() == 200 => {
                    families.push_str(&r.text().await.unwrap());
                    break;
                }
                _ => {}
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no metrics on :{p}\n{}",
                up.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for family in [
        common::metrics::PAYMENTS_RECEIVED_TOTAL,
        common::metrics::PAYMENTS_PROCESSED_TOTAL,
    ] {
        assert!(
            families.contains(family),
            "{family} missing from every /metrics"
        );
    }

    // SIGTERM stops the stack, and nothing of it survives.
    let pids: Vec<i32> = [
        "redis",
        "worker-1",
        "worker-2",
        "gateway-1",
        "gateway-2",
        "nginx",
    ]
    .iter()
    .filter_map(|n| up.pid(n))
    .collect();
    assert!(pids.contains(&new_worker));
    let status = up.terminate();
    assert!(status.success(), "up.sh: {status}\n{}", up.log());
    for pid in pids {
        assert!(!alive(pid), "pid {pid} outlived up.sh:\n{}", up.log());
    }
}
