//! The workspace's shape, checked: in every crate, modules import each other without a
//! circle (in `common`, leaves such as `error`, `config`, `keys` import nothing back), and no
//! source file outgrows what one reader can hold (1 000 lines).
//!
//! An edge is a `crate::…`, `super::…`, `self::…` or child-module path in a module's code
//! (doc comments and `#[cfg(test)]` parts left out), resolved to the deepest module it
//! names.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 1_000;

/// Every `.rs` file under `dir`, with its module path (`store::summary::plan`; "" for lib.rs).
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                    parts.pop();
                }
                out.insert(parts.join("::"), path);
            }
        }
    }
    out
}

/// The code of a file: before its tests, without comment lines or string literals.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut out = String::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut in_str = false;
        let mut escaped = false;
        for c in line.chars() {
            match (in_str, escaped, c) {
                (true, true, _) => escaped = false,
                (true, false, '\\') => escaped = true,
                (_, false, '"') => in_str = !in_str,
                (true, _, _) => {}
                (false, _, c) => out.push(c),
            }
        }
        out.push('\n');
    }
    out
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths starting at `base` (a whole word followed by `::`): each as its segments, a
/// `{a, b::c}` group giving one path per member.
fn paths_from(code: &str, base: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let needle = format!("{base}::");
    let mut at = 0;
    while let Some(i) = code[at..].find(&needle) {
        let start = at + i;
        at = start + needle.len();
        if code[..start].chars().next_back().is_some_and(ident_char) {
            continue;
        }
        let rest = &code[at..];
        let mut segs = Vec::new();
        let mut pos = 0;
        loop {
            let len = rest[pos..]
                .find(|c: char| !ident_char(c))
                .unwrap_or(rest.len() - pos);
            if len == 0 {
                break;
            }
            segs.push(rest[pos..pos + len].to_string());
            pos += len;
            if rest[pos..].starts_with("::") {
                pos += 2;
            } else {
                break;
            }
        }
        if rest[pos..].starts_with('{') {
            let group = &rest[pos + 1..rest[pos..].find('}').map_or(rest.len(), |e| pos + e)];
            for member in group.split(',') {
                let first = member.trim().split("::").next().unwrap_or_default();
                if !first.is_empty() && first != "self" && first.chars().all(ident_char) {
                    let mut p = segs.clone();
                    p.push(first.to_string());
                    out.push(p);
                }
            }
        }
        out.push(segs);
    }
    out
}

/// Module -> the modules its code names.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules(src);
    let resolve = |parts: &[String]| -> Option<String> {
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|m| mods.contains_key(m))
    };
    let mut edges = BTreeMap::new();
    for (module, path) in &mods {
        let here: Vec<String> = if module.is_empty() {
            Vec::new()
        } else {
            module.split("::").map(str::to_owned).collect()
        };
        let code = code(&std::fs::read_to_string(path).unwrap());
        let mut bases: Vec<(String, Vec<String>)> = vec![
            ("crate".into(), Vec::new()),
            (
                "super".into(),
                here[..here.len().saturating_sub(1)].to_vec(),
            ),
            ("self".into(), here.clone()),
        ];
        // Child modules named by a relative path (`use types::X`).
        for child in mods.keys() {
            let prefix = if module.is_empty() {
                String::new()
            } else {
                format!("{module}::")
            };
            if let Some(name) = child.strip_prefix(&prefix) {
                if !name.is_empty() && !name.contains("::") {
                    let mut start = here.clone();
                    start.push(name.to_string());
                    bases.push((name.to_string(), start));
                }
            }
        }
        let mut to = BTreeSet::new();
        for (base, start) in &bases {
            for segs in paths_from(&code, base) {
                let mut full = start.clone();
                full.extend(segs);
                if let Some(target) = resolve(&full) {
                    if &target != module {
                        to.insert(target);
                    }
                }
            }
        }
        edges.insert(module.clone(), to);
    }
    edges
}

/// A circle in `g`, if any.
fn circle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        u: &str,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(u.to_string(), 1);
        stack.push(u.to_string());
        for v in g.get(u).into_iter().flatten() {
            match state.get(v) {
                Some(1) => {
                    let i = stack.iter().position(|s| s == v).unwrap();
                    let mut c = stack[i..].to_vec();
                    c.push(v.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(g, v, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(u.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for u in g.keys() {
        if !state.contains_key(u) {
            if let Some(c) = visit(g, u, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn modules_import_each_other_without_a_circle() {
    let g = graph(&src());
    let shown = |g: &BTreeMap<String, BTreeSet<String>>| {
        g.iter()
            .map(|(m, to)| format!("{m} -> {to:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(g["store"].contains("batch") && g["batch"].contains("error"));
    if let Some(c) = circle(&g) {
        panic!("circle {}\n{}", c.join(" -> "), shown(&g));
    }
    // The same at the level of the crate's own modules.
    let top = |m: &str| m.split("::").next().unwrap_or_default().to_string();
    let mut tops: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, to) in &g {
        let entry = tops.entry(top(m)).or_default();
        entry.extend(to.iter().map(|t| top(t)).filter(|t| *t != top(m)));
    }
    if let Some(c) = circle(&tops) {
        panic!("circle {}\n{}", c.join(" -> "), shown(&tops));
    }
    // The leaves import nothing of the crate that could lead back to them.
    for leaf in ["error", "config::env", "money", "time", "store::types"] {
        for to in &g[leaf] {
            assert!(
                ["time", "payment", "money"].contains(&to.as_str()),
                "{leaf} imports {to}"
            );
        }
    }
}

/// The `src` of every crate of the workspace.
fn workspace_srcs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    ["common", "gateway", "worker", "load-tests"]
        .iter()
        .map(|c| root.join(c).join("src"))
        .collect()
}

#[test]
fn every_crate_imports_its_modules_without_a_circle() {
    for src in workspace_srcs() {
        let g = graph(&src);
        assert!(g.len() > 5, "{}: modules not found", src.display());
        if let Some(c) = circle(&g) {
            panic!("{}: circle {}", src.display(), c.join(" -> "));
        }
    }
}

#[test]
fn no_source_file_of_the_workspace_outgrows_one_reader() {
    for src in workspace_srcs() {
        for (module, path) in modules(&src) {
            let lines = std::fs::read_to_string(&path).unwrap().lines().count();
            assert!(
                lines <= MAX_LINES,
                "{}: {module}: {lines} lines",
                src.display()
            );
        }
    }
}
