//! The deployment files, checked by reading them (no container engine runs where the tests
//! do): `docker-compose.yml` keeps the contest's limits and wiring (docs/protocol.md §5), the
//! simulators' compose file creates the network it joins, the `Dockerfile` has one
//! non-root target per binary, and `scripts/up.sh` can still rewrite `nginx.conf`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use yaml_rust2::{Yaml, YamlLoader};

const SERVICES: [&str; 5] = ["nginx", "gateway-1", "gateway-2", "redis", "worker"];
const GATEWAYS: [&str; 2] = ["gateway-1", "gateway-2"];
const MAX_CPUS: f64 = 1.5;
const MAX_MEMORY_MB: f64 = 350.0;

fn repo_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn yaml(path: &str) -> Yaml {
    let mut docs = YamlLoader::load_from_str(&repo_file(path))
        .unwrap_or_else(|e| panic!("{path} is not valid YAML: {e}"));
    assert_eq!(docs.len(), 1, "{path}: one YAML document");
    docs.remove(0)
}

/// A scalar as compose reads it: strings, numbers and booleans all become text.
fn text(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `environment:` as a map or as a list of `NAME=value`.
fn env(service: &Yaml, name: &str) -> Option<String> {
    let environment = &service["environment"];
    if let Some(list) = environment.as_vec() {
        return list.iter().filter_map(Yaml::as_str).find_map(|entry| {
            let (key, value) = entry.split_once('=')?;
            (key == name).then(|| value.to_string())
        });
    }
    text(&environment[name])
}

fn strings(value: &Yaml) -> Vec<String> {
    value
        .as_vec()
        .map(|v| v.iter().filter_map(text).collect())
        .unwrap_or_default()
}

/// The networks a service joins (list or map form).
fn networks(service: &Yaml) -> BTreeSet<String> {
    match &service["networks"] {
        Yaml::Array(list) => list.iter().filter_map(text).collect(),
        Yaml::Hash(map) => map.keys().filter_map(text).collect(),
        _ => BTreeSet::new(),
    }
}

/// Compose memory units (`b`, `k`, `m`, `g`, optionally followed by `b`; binary multiples)
/// in MiB, the unit the contest's "350 MB" is counted in.
fn memory_mb(value: &str) -> f64 {
    let lower = value.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let number: f64 = number
        .parse()
        .unwrap_or_else(|_| panic!("memory {value:?}"));
    let bytes = match unit.trim() {
        "" | "b" => number,
        "k" | "kb" => number * 1024.0,
        "m" | "mb" => number * 1024.0 * 1024.0,
        "g" | "gb" => number * 1024.0 * 1024.0 * 1024.0,
        other => panic!("memory {value:?}: unknown unit {other:?}"),
    };
    bytes / (1024.0 * 1024.0)
}

fn services(compose: &Yaml) -> Vec<(String, &Yaml)> {
    compose["services"]
        .as_hash()
        .expect("a services map")
        .iter()
        .map(|(name, service)| (text(name).unwrap(), service))
        .collect()
}

#[test]
fn memory_units_parse() {
    assert_eq!(memory_mb("20M"), 20.0);
    assert_eq!(memory_mb("20MB"), 20.0);
    assert_eq!(memory_mb("0.5g"), 512.0);
    assert_eq!(memory_mb("1024k"), 1.0);
}

#[test]
fn compose_stays_within_the_contest_limits() {
    let compose = yaml("docker-compose.yml");
    let services = services(&compose);
    let names: BTreeSet<&str> = services.iter().map(|(n, _)| n.as_str()).collect();
    for expected in SERVICES {
        assert!(names.contains(expected), "service {expected} missing");
    }
    let (mut cpus, mut memory) = (0.0, 0.0);
    for (name, service) in &services {
        let limits = &service["deploy"]["resources"]["limits"];
        let cpu = text(&limits["cpus"])
            .unwrap_or_else(|| panic!("{name}: deploy.resources.limits.cpus missing"));
        cpus += cpu.parse::<f64>().unwrap();
        let mem = text(&limits["memory"])
            .unwrap_or_else(|| panic!("{name}: deploy.resources.limits.memory missing"));
        memory += memory_mb(&mem);

        assert!(service["privileged"].is_badvalue(), "{name}: privileged");
        assert!(
            service["network_mode"].is_badvalue(),
            "{name}: network_mode"
        );
        assert!(
            service["deploy"]["replicas"].is_badvalue(),
            "{name}: replicas"
        );
        assert!(service["scale"].is_badvalue(), "{name}: scale");
    }
    assert!(cpus <= MAX_CPUS + 1e-9, "{cpus} CPUs > {MAX_CPUS}");
    assert!(memory <= MAX_MEMORY_MB, "{memory} MB > {MAX_MEMORY_MB}");
}

#[test]
fn only_nginx_publishes_port_9999() {
    let compose = yaml("docker-compose.yml");
    for (name, service) in services(&compose) {
        let ports = strings(&service["ports"]);
        if name == "nginx" {
            assert_eq!(ports, ["9999:9999"]);
        } else {
            assert!(
                !ports.iter().any(|p| p.contains("9999")),
                "{name} publishes {ports:?}"
            );
        }
    }
    let nginx = &compose["services"]["nginx"];
    assert_eq!(nginx["image"].as_str(), Some("nginx:1.27-alpine"));
    assert!(
        strings(&nginx["volumes"]).contains(&"./nginx.conf:/etc/nginx/nginx.conf:ro".to_string()),
        "nginx must mount the repo's nginx.conf"
    );
}

#[test]
fn networks_are_bridged_and_processors_external() {
    let compose = yaml("docker-compose.yml");
    let nets = &compose["networks"];
    assert_eq!(nets["backend"]["driver"].as_str(), Some("bridge"));
    assert_eq!(
        nets["payment-processor"]["name"].as_str(),
        Some("payment-processor")
    );
    assert_eq!(nets["payment-processor"]["external"].as_bool(), Some(true));

    let s = &compose["services"];
    let joined = |name: &str| networks(&s[name]);
    assert!(joined("worker").contains("payment-processor"));
    for name in SERVICES {
        assert!(joined(name).contains("backend"), "{name} is not on backend");
    }
    // Everything the services join is declared at the top level.
    for (name, service) in services(&compose) {
        for net in networks(service) {
            assert!(
                !nets[net.as_str()].is_badvalue(),
                "{name}: undeclared {net}"
            );
        }
    }
}

#[test]
fn services_are_wired_to_each_other() {
    let compose = yaml("docker-compose.yml");
    let s = &compose["services"];
    let worker = &s["worker"];
    assert_eq!(
        env(worker, "PROCESSOR_DEFAULT_URL").as_deref(),
        Some("http://payment-processor-default:8080")
    );
    assert_eq!(
        env(worker, "PROCESSOR_FALLBACK_URL").as_deref(),
        Some("http://payment-processor-fallback:8080")
    );
    assert_eq!(
        env(worker, "REDIS_URL").as_deref(),
        Some("redis://redis:6379")
    );
    assert_eq!(worker["build"]["target"].as_str(), Some("worker"));
    for name in GATEWAYS {
        let gateway = &s[name];
        assert_eq!(
            env(gateway, "GATEWAY_LISTEN").as_deref(),
            Some("0.0.0.0:8080")
        );
        assert_eq!(
            env(gateway, "REDIS_URL").as_deref(),
            Some("redis://redis:6379")
        );
        assert_eq!(gateway["build"]["target"].as_str(), Some("gateway"));
        // A deployment's admin endpoints need the operator's token; open is the contest's.
        assert_eq!(
            env(gateway, "ADMIN_TOKEN").as_deref(),
            Some("${ADMIN_TOKEN:-}"),
            "{name}"
        );
        assert_eq!(
            env(gateway, "PAYSTREAM_ALLOW_UNAUTHENTICATED_ADMIN"),
            None,
            "{name}: admin endpoints open by default"
        );
    }
    let redis = &s["redis"];
    assert_eq!(redis["image"].as_str(), Some("redis:7.2-alpine"));
    let command = strings(&redis["command"]).join(" ");
    for flag in [
        "--appendonly yes",
        // A 2xx means the payment is on disk (docs/protocol.md §2): Redis answers after the fsync.
        "--appendfsync always",
        "--maxmemory-policy noeviction",
    ] {
        assert!(
            command.contains(flag),
            "redis command lacks {flag}: {command}"
        );
    }
}

#[test]
fn simulators_create_the_processor_network() {
    let compose = yaml("load-tests/compose/docker-compose.yml");
    let net = &compose["networks"]["payment-processor"];
    assert_eq!(net["name"].as_str(), Some("payment-processor"));
    assert!(net["external"].as_bool() != Some(true), "created here");
    let s = &compose["services"];
    for (name, fee, port) in [
        ("payment-processor-default", "0.05", "8001:8080"),
        ("payment-processor-fallback", "0.15", "8002:8080"),
    ] {
        let sim = &s[name];
        assert_eq!(env(sim, "TRANSACTION_FEE").as_deref(), Some(fee), "{name}");
        assert_eq!(env(sim, "PORT").as_deref(), Some("8080"), "{name}");
        assert_eq!(strings(&sim["ports"]), [port], "{name}");
        assert!(networks(sim).contains("payment-processor"), "{name}");
        assert_eq!(sim["build"]["target"].as_str(), Some("processor-sim"));
        assert_eq!(sim["build"]["context"].as_str(), Some("../.."));
    }
}

#[test]
fn dockerfile_has_a_non_root_target_per_binary() {
    let dockerfile = repo_file("Dockerfile");
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
    assert!(lines.contains(&"FROM rust:1-bookworm AS builder"));
    assert!(lines
        .iter()
        .any(|l| l.contains("cargo build --release --locked")));
    assert!(lines.contains(&"FROM debian:bookworm-slim AS runtime"));
    // The runtime base switches to a numeric non-root user.
    let user = lines
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(
        !user.starts_with("root") && !user.starts_with("0"),
        "USER {user}"
    );

    for (stage, binary) in [
        ("gateway", "paystream-gateway"),
        ("worker", "paystream-worker"),
        ("processor-sim", "processor-sim"),
    ] {
        let from = format!("FROM runtime AS {stage}");
        let start = lines
            .iter()
            .position(|l| *l == from)
            .unwrap_or_else(|| panic!("no stage {stage}"));
        let body: Vec<&str> = lines[start + 1..]
            .iter()
            .take_while(|l| !l.starts_with("FROM "))
            .copied()
            .collect();
        let entrypoint = format!(r#"ENTRYPOINT ["/usr/local/bin/{binary}"]"#);
        assert!(body.contains(&entrypoint.as_str()), "{stage}: {entrypoint}");
        assert!(
            body.iter().all(|l| !l.starts_with("USER")),
            "{stage} must not change user"
        );
    }
    let ignore = repo_file(".dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "target/"));
}

/// The literal text a `sed` expression of up.sh replaces: `s/X/…/` or `s#X#…#`.
fn sed_patterns(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    for piece in script.split("-e \"s").skip(1) {
        let Some(delim) = piece.chars().next() else {
            continue;
        };
        if let Some(pattern) = piece[1..].split(delim).next() {
            out.push(pattern.to_string());
        }
    }
    out
}

#[test]
fn up_sh_can_rewrite_the_repo_nginx_conf() {
    let up = repo_file("scripts/up.sh");
    let nginx = repo_file("nginx.conf");
    // up.sh runs from the repo root and reads its nginx.conf.
    assert!(up.contains(r#"cd "$(dirname "$0")/..""#));
    assert!(
        up.lines()
            .any(|l| l.trim_start().starts_with("nginx.conf >")),
        "up.sh no longer feeds the repo's nginx.conf to sed"
    );
    let patterns = sed_patterns(&up);
    for required in [
        "server gateway-1:8080;",
        "server gateway-2:8080;",
        "listen 9999 ",
    ] {
        assert!(
            patterns.iter().any(|p| p == required),
            "up.sh no longer rewrites {required:?}: {patterns:?}"
        );
    }
    for pattern in &patterns {
        let found = match pattern.strip_prefix('^') {
            Some(anchored) => nginx.lines().any(|l| l.starts_with(anchored)),
            None => nginx.contains(pattern.as_str()),
        };
        assert!(
            found,
            "up.sh rewrites {pattern:?}, which nginx.conf does not contain"
        );
    }
}

#[test]
fn the_contest_profile_is_the_only_open_admin() {
    // Compose: the override file opens the admin endpoints of every gateway, nothing else.
    let contest = yaml("docker-compose.contest.yml");
    let services = services(&contest);
    let names: BTreeSet<&str> = services.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, BTreeSet::from(GATEWAYS));
    for (name, service) in services {
        assert_eq!(
            env(service, "PAYSTREAM_ALLOW_UNAUTHENTICATED_ADMIN").as_deref(),
            Some("true"),
            "{name}"
        );
    }
}

/// Runs `scripts/up.sh` with `env` (and nothing of ours inherited that matters).
fn up_sh(env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new("bash")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/up.sh"))
        .env_remove("ADMIN_TOKEN")
        .env_remove("PAYSTREAM_PROFILE")
        .env_remove("PAYSTREAM_ALLOW_UNAUTHENTICATED_ADMIN")
        .envs(env.iter().copied())
        // Whatever gets past the admin check must not start a stack: an unusable WORKERS
        // stops it at the next check.
        .env("WORKERS", "0")
        .output()
        .unwrap()
}

#[test]
fn up_sh_refuses_to_start_without_a_token_or_the_contest_profile() {
    let refused = up_sh(&[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("ADMIN_TOKEN is required"), "{stderr}");
    let bad = up_sh(&[("PAYSTREAM_PROFILE", "demo")]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("PAYSTREAM_PROFILE"));
    // With a token, or in the contest profile, it gets past the check (to WORKERS).
    for env in [[("ADMIN_TOKEN", "t")], [("PAYSTREAM_PROFILE", "contest")]] {
        let passed = up_sh(&env);
        let stderr = String::from_utf8_lossy(&passed.stderr);
        assert!(!stderr.contains("ADMIN_TOKEN"), "{stderr}");
        assert!(stderr.contains("WORKERS must be"), "{stderr}");
    }
}

#[test]
fn every_stack_runs_redis_with_a_durable_2xx() {
    // docs/protocol.md §2: a 2xx means durably in Redis. With `everysec` Redis answers before the
    // write reaches the disk and a host crash loses about the last second of accepted
    // payments; `always` answers after the fsync. The local stack defaults to it too.
    let up = repo_file("scripts/up.sh");
    assert!(
        up.contains(r#"--appendonly "${REDIS_AOF:-yes}""#),
        "up.sh: AOF must default to on"
    );
    assert!(
        up.contains(r#"--appendfsync "${REDIS_APPENDFSYNC:-always}""#),
        "up.sh: appendfsync must default to always"
    );
}

/// The port of a `host:port` address.
fn port_of(addr: &str) -> &str {
    addr.rsplit_once(':').map(|(_, p)| p).unwrap_or(addr)
}

#[test]
fn metrics_are_scraped_per_instance_never_through_nginx() {
    // nginx answers 404 for /metrics on the public port, before any proxying.
    let nginx = repo_file("nginx.conf");
    let block = nginx
        .split("location = /metrics")
        .nth(1)
        .expect("nginx.conf has no `location = /metrics` block");
    let block = &block[..block.find('}').unwrap()];
    assert!(block.contains("return 404;"), "{block}");
    assert!(!block.contains("proxy_pass"), "{block}");

    // Each instance has its own metrics listener, which Prometheus scrapes directly.
    let compose = yaml("docker-compose.yml");
    let prometheus = yaml("prometheus.yml");
    let targets: BTreeSet<String> = prometheus["scrape_configs"]
        .as_vec()
        .expect("scrape_configs")
        .iter()
        .flat_map(|job| job["static_configs"].as_vec().cloned().unwrap_or_default())
        .flat_map(|c| strings(&c["targets"]))
        .collect();
    let mut instances = Vec::new();
    for gateway in GATEWAYS {
        instances.push((gateway, "GATEWAY_METRICS_ADDR"));
    }
    instances.push(("worker", "WORKER_METRICS_ADDR"));
    for (service, var) in instances {
        let addr = env(&compose["services"][service], var)
            .unwrap_or_else(|| panic!("{service} does not set {var}"));
        let public = env(&compose["services"][service], "GATEWAY_LISTEN").unwrap_or_default();
        assert_ne!(
            port_of(&addr),
            port_of(&public),
            "{service}: metrics on the public port"
        );
        let target = format!("{service}:{}", port_of(&addr));
        assert!(
            targets.contains(&target),
            "prometheus.yml does not scrape {target}: {targets:?}"
        );
    }
}

#[test]
fn up_sh_gives_every_process_its_own_metrics_port() {
    // Each gateway and each worker gets its own listener (load-tests' up_sh test scrapes
    // every one of them through a real up.sh).
    let up = repo_file("scripts/up.sh");
    for needle in [
        "GATEWAY_METRICS_PORTS",
        "GATEWAY_METRICS_ADDR=$metrics",
        "WORKER_METRICS_PORT_BASE",
        "WORKER_METRICS_ADDR=$metrics",
    ] {
        assert!(up.contains(needle), "up.sh no longer has {needle:?}");
    }
}

/// Bytes of a queued payment in Redis (its status hash and stream entry; docs/operations.md,
/// "Memory sizing").
const QUEUED_PAYMENT_BYTES: f64 = 253.0;

#[test]
fn compose_sizes_the_backlog_within_redis_memory() {
    // A full backlog must fit under the gateways' high-water mark with room to spare for
    // what finishes (records, retained statuses), or accepts would stop at memory, not at
    // BACKLOG_LIMIT, and the limit would be a promise the memory cannot keep.
    let compose = yaml("docker-compose.yml");
    let command = strings(&compose["services"]["redis"]["command"]);
    let at = command
        .iter()
        .position(|a| a == "--maxmemory")
        .expect("redis runs with a maxmemory");
    let maxmemory_mb = memory_mb(&command[at + 1]);
    for name in GATEWAYS {
        let gateway = &compose["services"][name];
        let backlog: f64 = env(gateway, "BACKLOG_LIMIT")
            .expect("BACKLOG_LIMIT set to what Redis can hold")
            .parse()
            .unwrap();
        let high_water: f64 = env(gateway, "MEMORY_HIGH_WATER")
            .map(|v| v.parse().unwrap())
            .unwrap_or(90.0);
        let backlog_mb = backlog * QUEUED_PAYMENT_BYTES / (1024.0 * 1024.0);
        assert!(
            backlog_mb <= maxmemory_mb * high_water / 100.0 / 2.0,
            "{name}: a full backlog ({backlog_mb:.0} MB) takes over half of Redis' usable {maxmemory_mb} MB"
        );
        assert!(
            env(gateway, "PAYMENT_RETENTION").is_some(),
            "{name}: retention sized"
        );
    }
    assert!(env(&compose["services"]["worker"], "PAYMENT_RETENTION").is_some());
}
