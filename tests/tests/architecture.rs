//! The architecture of `common/src`, checked: every module imports only from its own layer
//! or the layers below, and no two modules import each other. Read from the `crate::` paths
//! of each file (its test module aside), as rust-analyzer's tidy tests read the tree; see
//! ARCHITECTURE.md for what each layer owns.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first: the top-level modules of `common/src` in each. A module may
/// import from its own layer and the ones before it.
pub const LAYERS: &[(&str, &[&str])] = &[
    (
        "values and rules",
        &[
            "values",
            "retry",
            "egress",
            "telemetry",
            "metrics",
            "call",
            "mapping",
        ],
    ),
    (
        "the systems' clients and sources",
        &["van", "livevox", "catalogue"],
    ),
    ("the candidate", &["candidate", "validation"]),
    ("planning", &["planning"]),
    ("the ledger and its store ports", &["ledger", "ports"]),
    ("connections", &["connect"]),
    ("extensions", &["extensions"]),
    ("destinations", &["destinations"]),
    ("adapters of the ports", &["adapters"]),
    ("wiring", &["services"]),
    (
        "runs",
        &[
            "governor", "ingest", "fanout", "deliver", "report", "nightly",
        ],
    ),
    ("entry points", &["entrypoints", "decode_fuzz"]),
];

/// Imports that break the rule today, each with why it is still there. The test fails when
/// one more appears, and when one of these is gone (take it off the list).
const KNOWN: &[(&str, &str, &str)] = &[];

/// One `crate::` import: the file, its line, and the top-level module it names.
#[derive(Debug, Clone)]
struct Import {
    file: String,
    line: usize,
    target: String,
}

fn common_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("common/src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`destinations` for `destinations/http.rs`).
fn module_of(root: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(root).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib").then(|| name.to_owned())
}

/// The top-level modules a line names through `crate::`, in `crate::a::…` and
/// `crate::{a::…, b}` forms.
fn targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.push(group[start..i].to_owned());
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(group[start..i].to_owned());
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.push(rest.to_owned());
        }
    }
    out.iter()
        .map(|t| {
            t.trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|t| !t.is_empty())
        .collect()
}

/// Every import of every file, from its code: comments and the test module left out.
fn imports() -> BTreeMap<String, Vec<Import>> {
    let root = common_src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let mut out: BTreeMap<String, Vec<Import>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&root, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file
            .strip_prefix(root.parent().unwrap().parent().unwrap())
            .unwrap()
            .display()
            .to_string();
        let entry = out.entry(module.clone()).or_default();
        for (i, line) in text.lines().enumerate() {
            if line.trim() == "#[cfg(test)]" {
                break;
            }
            let code = line.split("//").next().unwrap_or_default();
            for target in targets(code) {
                if target != module {
                    entry.push(Import {
                        file: name.clone(),
                        line: i + 1,
                        target,
                    });
                }
            }
        }
    }
    out
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

/// The imports that break the rule: (from, to, where, why).
fn violations(imports: &BTreeMap<String, Vec<Import>>) -> Vec<(String, String, String, String)> {
    let edges: BTreeSet<(&str, &str)> = imports
        .iter()
        .flat_map(|(from, list)| list.iter().map(move |i| (from.as_str(), i.target.as_str())))
        .collect();
    let mut out = Vec::new();
    for (from, list) in imports {
        for import in list {
            let place = format!("{}:{}", import.file, import.line);
            let (Some(own), Some(theirs)) = (layer_of(from), layer_of(&import.target)) else {
                continue;
            };
            let why = if theirs > own {
                format!(
                    "imports `{}`, of {}, a layer above its own ({})",
                    import.target, LAYERS[theirs].0, LAYERS[own].0
                )
            } else if edges.contains(&(import.target.as_str(), from.as_str())) {
                format!("imports `{}`, which imports `{from}`", import.target)
            } else {
                continue;
            };
            out.push((from.clone(), import.target.clone(), place, why));
        }
    }
    out
}

#[test]
fn every_module_of_common_is_in_one_layer() {
    let imports = imports();
    let mut unplaced: Vec<&str> = imports
        .keys()
        .map(String::as_str)
        .filter(|m| layer_of(m).is_none())
        .collect();
    unplaced.sort();
    assert!(
        unplaced.is_empty(),
        "modules of common/src in no layer (add each to LAYERS in tests/tests/architecture.rs and to ARCHITECTURE.md): {unplaced:?}"
    );
    for (_, modules) in LAYERS {
        for m in *modules {
            assert!(
                imports.contains_key(*m),
                "LAYERS names {m}, which common/src does not have"
            );
        }
    }
}

#[test]
fn no_module_imports_a_layer_above_its_own_or_a_module_that_imports_it() {
    let found = violations(&imports());
    let unknown: Vec<String> = found
        .iter()
        // A known import also explains the circle it closes.
        .filter(|(from, to, _, _)| {
            !KNOWN
                .iter()
                .any(|(f, t, _)| (f == from && t == to) || (f == to && t == from))
        })
        .map(|(from, _, place, why)| format!("{place}: `{from}` {why}"))
        .collect();
    assert!(
        unknown.is_empty(),
        "imports against the layers (ARCHITECTURE.md):\n{}",
        unknown.join("\n")
    );
    for (from, to, _) in KNOWN {
        assert!(
            found.iter().any(|(f, t, _, _)| f == from && t == to),
            "`{from}` no longer imports `{to}`: take it off KNOWN in tests/tests/architecture.rs"
        );
    }
}

#[test]
fn the_check_finds_an_upward_import_and_a_circle() {
    let import = |file: &str, target: &str| Import {
        file: file.to_owned(),
        line: 1,
        target: target.to_owned(),
    };
    let mut imports: BTreeMap<String, Vec<Import>> = BTreeMap::new();
    imports.insert(
        "values".into(),
        vec![import("common/src/values.rs", "ledger")],
    );
    imports.insert(
        "deliver".into(),
        vec![import("common/src/deliver.rs", "fanout")],
    );
    imports.insert(
        "fanout".into(),
        vec![import("common/src/fanout.rs", "deliver")],
    );
    imports.insert(
        "nightly".into(),
        vec![import("common/src/nightly.rs", "ledger")],
    );
    let found = violations(&imports);
    let places: Vec<&str> = found.iter().map(|(_, _, p, _)| p.as_str()).collect();
    assert_eq!(
        places,
        [
            "common/src/deliver.rs:1",
            "common/src/fanout.rs:1",
            "common/src/values.rs:1"
        ]
    );
    assert!(
        found[2].3.contains("a layer above its own"),
        "{:?}",
        found[2]
    );
    assert_eq!(
        targets("use crate::{ledger::{A, B}, ports::C}; let x = crate::values::f();"),
        ["ledger", "ports", "values"]
    );
}
