//! The configuration tables of `docs/operations.md` against the code: every variable a
//! process reads is listed, nothing else is, and each listed default is the one the code
//! applies (setting a variable to its documented default changes nothing).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use common::config::Env;
use gateway::GatewayConfig;
use load_tests::sim::ServeConfig;
use paystream_worker::WorkerConfig;

/// An environment that remembers every variable asked for.
struct Recording {
    values: HashMap<String, String>,
    asked: Mutex<BTreeSet<String>>,
}

impl Recording {
    fn new(values: &[(&str, &str)]) -> Self {
        Self {
            values: values
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            asked: Mutex::new(BTreeSet::new()),
        }
    }

    fn asked(&self) -> BTreeSet<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl Env for Recording {
    fn get(&self, name: &str) -> Option<String> {
        self.asked.lock().unwrap().insert(name.to_string());
        self.values.get(name).cloned()
    }
}

/// One row of a configuration table.
#[derive(Debug)]
struct Row {
    variable: String,
    /// `None`: documented as unset.
    default: Option<String>,
    used_by: String,
}

/// The rows of the table under `heading` (up to the next heading).
fn table(doc: &str, heading: &str) -> Vec<Row> {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("docs/operations.md has no {heading:?}"));
    let section = &doc[start + heading.len()..];
    let section = &section[..section.find("\n#").unwrap_or(section.len())];
    section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let unquote = |cell: &str| {
                cell.strip_prefix('`')
                    .and_then(|c| c.strip_suffix('`'))
                    .map(str::to_string)
            };
            Row {
                variable: unquote(cells[1]).unwrap_or_else(|| panic!("row {line}")),
                default: unquote(cells[2]),
                used_by: cells[3].to_string(),
            }
        })
        .collect()
}

fn operations() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operations.md");
    std::fs::read_to_string(path).unwrap()
}

/// What each process needs set for the comparison to be stable: a gateway needs a token,
/// a worker's default consumer name is random.
const GATEWAY_BASE: [(&str, &str); 1] = [("ADMIN_TOKEN", "t")];
const WORKER_BASE: [(&str, &str); 1] = [("WORKER_CONSUMER_NAME", "docs")];

fn gateway(extra: &[(&str, &str)]) -> (String, BTreeSet<String>) {
    let env = Recording::new(&[&GATEWAY_BASE[..], extra].concat());
    let config = GatewayConfig::from_env(&env).unwrap_or_else(|e| panic!("{e}"));
    (format!("{config:?}"), env.asked())
}

fn worker(extra: &[(&str, &str)]) -> (String, BTreeSet<String>) {
    let env = Recording::new(&[&WORKER_BASE[..], extra].concat());
    let config = WorkerConfig::from_env(&env).unwrap_or_else(|e| panic!("{e}"));
    (format!("{config:?}"), env.asked())
}

fn simulator(extra: &[(&str, &str)]) -> (String, BTreeSet<String>) {
    let env = Recording::new(extra);
    let config = ServeConfig::from_env(&env, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    (format!("{config:?}"), env.asked())
}

#[test]
fn the_configuration_tables_list_what_the_code_reads_with_its_defaults() {
    let doc = operations();
    let main = table(&doc, "## Configuration");
    let sim = table(&doc, "### Processor simulator");
    assert!(main.len() > 40 && sim.len() >= 5, "tables not found");

    // Read by the logger set-up (`common::telemetry::init`, which installs the process'
    // global subscriber and so is not called here).
    let logging = BTreeSet::from(["LOG_FORMAT".to_string(), "RUST_LOG".to_string()]);
    let mut read: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    read.insert("gateway", gateway(&[]).1);
    read.insert("worker", worker(&[]).1);
    read.insert("processor-sim", simulator(&[]).1);

    let documented = |rows: &[Row], who: &[&str]| -> BTreeSet<String> {
        rows.iter()
            .filter(|r| {
                who.iter()
                    .any(|w| r.used_by == *w || (r.used_by == "both" && *w != "processor-sim"))
            })
            .map(|r| r.variable.clone())
            .collect()
    };
    for who in ["gateway", "worker"] {
        let listed: BTreeSet<String> = documented(&main, &[who])
            .difference(&logging)
            .cloned()
            .collect();
        assert_eq!(
            listed, read[who],
            "{who}: docs/operations.md lists the left, the code reads the right"
        );
    }
    assert_eq!(documented(&sim, &["processor-sim"]), read["processor-sim"]);

    // Each documented default, set explicitly, gives the configuration the code's default
    // gives.
    for row in main.iter().chain(&sim) {
        let Some(default) = row.default.as_deref() else {
            continue;
        };
        let set = [(row.variable.as_str(), default)];
        let mut checked = false;
        for (who, parse) in [
            ("gateway", gateway as fn(&[(&str, &str)]) -> _),
            ("worker", worker),
            ("processor-sim", simulator),
        ] {
            let applies = row.used_by == who || (row.used_by == "both" && who != "processor-sim");
            if !applies || !read[who].contains(&row.variable) {
                continue;
            }
            assert_eq!(
                parse(&set).0,
                parse(&[]).0,
                "{who}: {} documented default {default:?} is not the code's",
                row.variable
            );
            checked = true;
        }
        assert!(
            checked || logging.contains(&row.variable),
            "{}: no process reads it",
            row.variable
        );
    }
}
