//! One source of truth: the scripts' headers (`KEYS`, `ARGV`, `Returns`) and their memory flag
//! (`#!lua flags=allow-oom`: run while memory is full) must be the ones the model was written
//! against ([`crate::scripts::CONTRACTS`]), and every modelled step must name its script.

use std::path::Path;

use crate::scripts::CONTRACTS;

/// The `-- KEYS…`, `-- ARGV…` and `-- Returns…` lines of a script's opening comment (from
/// the first `KEYS` line on), each section with its continuation lines, whitespace collapsed.
pub fn header(lua: &str) -> [String; 3] {
    let mut sections: [Vec<&str>; 3] = Default::default();
    let mut current = None;
    // A shebang line (`#!lua flags=...`) comes before the comment.
    for line in lua.lines().skip_while(|line| line.starts_with("#!")) {
        let Some(text) = line.strip_prefix("--") else {
            break;
        };
        let text = text.trim();
        if text.starts_with("KEYS") {
            current = Some(0);
        } else if current.is_none() {
            // Prose before the contract may mention ARGV too.
            continue;
        } else if text.starts_with("ARGV") {
            current = Some(1);
        } else if text.starts_with("Returns") {
            current = Some(2);
        }
        if let Some(k) = current {
            sections[k].push(text);
        }
    }
    sections.map(|lines| {
        lines
            .join(" ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    })
}

#[test]
fn script_headers_match_the_model() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scripts");
    let mut scripts: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|f| f.strip_suffix(".lua").map(str::to_owned))
        .collect();
    scripts.sort();
    let listed: Vec<&str> = CONTRACTS.iter().map(|c| c.script).collect();
    assert_eq!(
        scripts, listed,
        "every script in {dir:?} has a row in scripts::CONTRACTS"
    );
    let mut wrong = Vec::new();
    for c in CONTRACTS {
        let lua = std::fs::read_to_string(dir.join(format!("{}.lua", c.script))).unwrap();
        let [keys, argv, returns] = header(&lua);
        let allow_oom = lua
            .lines()
            .next()
            .is_some_and(|l| l.starts_with("#!") && l.contains("allow-oom"));
        if allow_oom != c.allow_oom {
            wrong.push(format!(
                "{}.lua allow-oom changed:\n  script: {allow_oom}\n  model:  {}",
                c.script, c.allow_oom
            ));
        }
        for (what, model, script) in [
            ("keys", c.keys, keys),
            ("argv", c.argv, argv),
            ("returns", c.returns, returns),
        ] {
            if model != script {
                wrong.push(format!(
                    "{}.lua {what} changed:\n  script: {script}\n  model:  {model}",
                    c.script
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "a script's contract changed: update the model (common/tests/model) with it\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_modelled_script_has_a_step_naming_it() {
    let sources = [
        include_str!("protocol/mod.rs"),
        include_str!("protocol/task.rs"),
        include_str!("protocol/ops.rs"),
        include_str!("protocol/upkeep.rs"),
        include_str!("scripts.rs"),
    ]
    .concat();
    for c in CONTRACTS.iter().filter(|c| c.modelled) {
        let path = format!("common/src/scripts/{}.lua", c.script);
        assert!(sources.contains(&path), "no model step names {path}");
        let function = format!("pub fn {}(", c.script);
        assert!(
            sources.contains(&function),
            "scripts.rs has no `{function}`"
        );
    }
}
