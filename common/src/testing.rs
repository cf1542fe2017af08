//! Test support: a real `redis-server` on an ephemeral port with its own data directory,
//! killed when dropped. Never a shared 6379, never a mock.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A running `redis-server` owned by one test.
pub struct RedisServer {
    child: Option<Child>,
    /// TCP port; 0 = Unix socket only (see [`RedisServer::start_on_unix_socket`]).
    port: u16,
    dir: tempfile::TempDir,
    aof: bool,
}

impl RedisServer {
    /// Starts a server without persistence (fastest).
    pub fn start() -> Self {
        Self::start_with(false, false)
    }

    /// Starts a server with AOF on and `appendfsync always` (what the stack runs: a reply
    /// means the write is on disk), for restart tests.
    pub fn start_with_aof() -> Self {
        Self::start_with(true, false)
    }

    /// Like [`RedisServer::start_with_aof`], listening only on a Unix socket in its own
    /// data directory: a restart can never find its address taken by a parallel test.
    pub fn start_on_unix_socket() -> Self {
        Self::start_with(true, true)
    }

    fn start_with(aof: bool, unix_only: bool) -> Self {
        let mut dir = tempfile::Builder::new()
            .prefix("paystream-redis-")
            .tempdir()
            .unwrap();
        for _ in 0..10 {
            let port = if unix_only { 0 } else { free_port() };
            let mut server = Self {
                child: None,
                port,
                dir,
                aof,
            };
            if server.spawn() {
                return server;
            }
            dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
        }
        panic!("redis-server did not start after 10 tries (see its log in the data dir)");
    }

    fn spawn(&mut self) -> bool {
        let binary = redis_binary();
        let log = self.dir.path().join("redis.log");
        let child = Command::new(&binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--save", ""])
            .args(["--appendonly", if self.aof { "yes" } else { "no" }])
            .args(["--appendfsync", "always"])
            .arg("--unixsocket")
            .arg(self.socket())
            .args(["--unixsocketperm", "700"])
            .args(["--maxmemory-policy", "noeviction"])
            .args(["--protected-mode", "no"])
            .args(["--daemonize", "no"])
            .arg("--logfile")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None;
                    return false;
                }
            }
            if ping(self.port, &self.socket()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        false
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's URL: TCP, or its Unix socket when it has no port.
    pub fn url(&self) -> String {
        if self.port == 0 {
            format!("redis+unix://{}", self.socket().display())
        } else {
            format!("redis://127.0.0.1:{}", self.port)
        }
    }

    /// Path of the server's Unix socket (in its data directory).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// The process id, to freeze it (`SIGSTOP`) in tests.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, like a crash: no final AOF rewrite, no save.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same data directory.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not restart on port {}", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `redis-server` binary: `$REDIS_SERVER`, else the first on PATH, else Debian's path.
pub fn redis_binary() -> PathBuf {
    if let Ok(path) = std::env::var("REDIS_SERVER") {
        return PathBuf::from(path);
    }
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    for dir in candidates {
        let candidate = dir.join("redis-server");
        if candidate.is_file() {
            return candidate;
        }
    }
    let debian = PathBuf::from("/usr/bin/redis-server");
    if debian.is_file() {
        return debian;
    }
    panic!("redis-server not found: run ./scripts/test.sh (it installs it) or apt-get install redis-server");
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ping(port: u16, socket: &std::path::Path) -> bool {
    fn exchange(mut stream: impl Read + Write) -> bool {
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 16];
        matches!(stream.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
    }
    if port == 0 {
        let Ok(stream) = std::os::unix::net::UnixStream::connect(socket) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        return exchange(stream);
    }
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    exchange(stream)
}

/// A key prefix no other test in this process uses.
pub fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `binary` with `env` and checks it refuses to start: exit status 2 and one line on
/// stderr naming `var`.
pub fn assert_config_error(binary: &str, env: &[(&str, &str)], var: &str) {
    let output = Command::new(binary)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {binary}: {e}"));
    assert_eq!(output.status.code(), Some(2), "{var}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(var), "{var}: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}
