//! The architecture as a test (rust-analyzer's `tidy`): the crate graph written in
//! ARCHITECTURE.md is compared with `cargo metadata`, every Rust module must open with a `//!`
//! doc, and the invariants a grep can check are checked — who calls `setns`, that only the CLI
//! prints, that `protocol` does no I/O, that no test asserts on wall-clock time, and that one
//! variable (`UPDATE_EXPECT`) rewrites every snapshot. Each check is a function of text, and the
//! `self_tests` module shows each one failing on a made-up violation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The workspace's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every Rust file of the workspace (outside `target/` and `node_modules/`), with its path
/// relative to the root and its text.
fn rust_files() -> Vec<(String, String)> {
    fn walk(root: &Path, directory: &Path, out: &mut Vec<(String, String)>) {
        let Ok(entries) = std::fs::read_dir(directory) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name == "target" || name == "node_modules" {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else if name.ends_with(".rs")
                && let Ok(text) = std::fs::read_to_string(&path)
            {
                let relative = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                out.push((relative, text));
            }
        }
    }
    let root = root();
    let mut files = Vec::new();
    for top in ["agent", "layer", "crates", "supervisor", "tests", "benches"] {
        walk(&root, &root.join(top), &mut files);
    }
    files.sort();
    // This file names every forbidden pattern in its rules and self-tests.
    files.retain(|(path, _)| path != "crates/cli/tests/architecture.rs");
    files
}

// ---------------------------------------------------------------------------------------------
// The crate graph.

/// Marks the table of ARCHITECTURE.md that states the crate graph.
const GRAPH_START: &str = "<!-- crate-graph -->";
const GRAPH_END: &str = "<!-- /crate-graph -->";

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The graph stated in ARCHITECTURE.md: rows `| \`crate\` | \`dep\`, \`dep\` |` between the
/// markers (`—` for none). Names are package names without `mirrord-`.
fn declared_graph(markdown: &str) -> Result<Graph, String> {
    let start = markdown
        .find(GRAPH_START)
        .ok_or("ARCHITECTURE.md has no crate-graph table")?;
    let end = markdown[start..]
        .find(GRAPH_END)
        .ok_or("the crate-graph table of ARCHITECTURE.md is not closed")?;
    let mut graph = Graph::new();
    for line in markdown[start..start + end].lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // `| crate | deps |` splits into ["", crate, deps, ""].
        let [_, name, dependencies, ..] = cells.as_slice() else {
            continue;
        };
        let Some(name) = name.strip_prefix('`').and_then(|n| n.strip_suffix('`')) else {
            continue;
        };
        let dependencies = dependencies
            .split(',')
            .map(|d| d.trim().trim_matches('`').to_owned())
            .filter(|d| !d.is_empty() && d != "—")
            .collect();
        if graph.insert(name.to_owned(), dependencies).is_some() {
            return Err(format!("`{name}` has two rows in the crate-graph table"));
        }
    }
    Ok(graph)
}

/// The workspace's graph from `cargo metadata --no-deps` output: each package's normal and build
/// dependencies on other packages of the workspace (dev-dependencies are for tests).
fn actual_graph(metadata: &Value) -> Graph {
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    let short = |name: &str| name.strip_prefix("mirrord-").unwrap_or(name).to_owned();
    let ours: BTreeSet<&str> = packages
        .iter()
        .filter_map(|package| package["name"].as_str())
        .collect();
    packages
        .iter()
        .map(|package| {
            let dependencies = package["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|dependency| dependency["kind"].as_str() != Some("dev"))
                .filter_map(|dependency| dependency["name"].as_str())
                .filter(|name| ours.contains(name))
                .map(short)
                .collect();
            (
                short(package["name"].as_str().unwrap_or_default()),
                dependencies,
            )
        })
        .collect()
}

/// Where the stated and the real graph differ.
fn graph_problems(declared: &Graph, actual: &Graph) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, dependencies) in actual {
        let Some(stated) = declared.get(name) else {
            problems.push(format!(
                "crate `{name}` is missing from ARCHITECTURE.md's crate graph"
            ));
            continue;
        };
        for dependency in dependencies.difference(stated) {
            problems.push(format!(
                "`{name}` depends on `{dependency}`, which ARCHITECTURE.md does not declare"
            ));
        }
        for dependency in stated.difference(dependencies) {
            problems.push(format!(
                "ARCHITECTURE.md says `{name}` depends on `{dependency}`, but it does not"
            ));
        }
    }
    for name in declared.keys().filter(|name| !actual.contains_key(*name)) {
        problems.push(format!(
            "ARCHITECTURE.md lists crate `{name}`, which the workspace does not have"
        ));
    }
    problems
}

/// External crates a package must never depend on directly, and why.
const FORBIDDEN_DEPENDENCIES: &[(&str, &str, &str)] = &[
    (
        "protocol",
        "tokio",
        "protocol does no I/O and has no async runtime",
    ),
    ("protocol", "socket2", "protocol does no I/O"),
    ("layer", "tokio", "the layer never depends on tokio"),
];

fn forbidden_dependencies(metadata: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or_default();
        let name = name.strip_prefix("mirrord-").unwrap_or(name);
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            if dependency["kind"].as_str() == Some("dev") {
                continue;
            }
            let dependency = dependency["name"].as_str().unwrap_or_default();
            for (package, forbidden, why) in FORBIDDEN_DEPENDENCIES {
                if name == *package && dependency == *forbidden {
                    problems.push(format!("`{name}` depends on `{forbidden}`: {why}"));
                }
            }
        }
    }
    problems
}

/// Crates that must not be in a package's build at all (its whole tree of normal dependencies, with
/// the features it asks for), and why.
const FORBIDDEN_IN_TREE: &[(&str, &str, &str)] = &[
    (
        "mirrord-layer",
        "schemars",
        "the preloaded layer reads only the resolved config (mirrord-config without `files`)",
    ),
    (
        "mirrord-layer",
        "toml",
        "the preloaded layer reads only the resolved config (mirrord-config without `files`)",
    ),
    (
        "mirrord-layer",
        "saphyr-parser",
        "the preloaded layer reads only the resolved config (mirrord-config without `files`)",
    ),
    (
        "mirrord-layer",
        "serde_yaml",
        "the preloaded layer reads only the resolved config",
    ),
    (
        "mirrord-supervisor",
        "schemars",
        "the supervisor reads only the resolved config (mirrord-config without `files`)",
    ),
    (
        "mirrord-supervisor",
        "toml",
        "the supervisor reads only the resolved config (mirrord-config without `files`)",
    ),
    (
        "mirrord-supervisor",
        "saphyr-parser",
        "the supervisor reads only the resolved config (mirrord-config without `files`)",
    ),
];

/// Forbidden crates in `tree`, the output of `cargo tree -p PACKAGE -e normal --prefix none`.
fn forbidden_in_tree(package: &str, tree: &str) -> Vec<String> {
    let names: BTreeSet<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    FORBIDDEN_IN_TREE
        .iter()
        .filter(|(owner, forbidden, _)| *owner == package && names.contains(forbidden))
        .map(|(_, forbidden, why)| format!("`{package}` links `{forbidden}`: {why}"))
        .collect()
}

/// `cargo tree -p PACKAGE -e normal`: the crates a build of `package` alone links.
fn dependency_tree(package: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(root())
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("cargo tree prints UTF-8")
}

#[test]
fn the_layer_and_the_supervisor_link_no_config_file_parsers() {
    let mut problems = Vec::new();
    for package in ["mirrord-layer", "mirrord-supervisor"] {
        let tree = dependency_tree(package);
        assert!(
            tree.lines().any(|line| line.starts_with("mirrord-config ")),
            "cargo tree -p {package} does not list mirrord-config:\n{tree}"
        );
        problems.extend(forbidden_in_tree(package, &tree));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

#[test]
fn the_crate_graph_is_the_one_architecture_md_states() {
    let markdown = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let declared = declared_graph(&markdown).unwrap_or_else(|error| panic!("{error}"));
    let metadata = metadata();
    let mut problems = graph_problems(&declared, &actual_graph(&metadata));
    problems.extend(forbidden_dependencies(&metadata));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// File sizes.

/// The most lines a Rust file outside tests may have: past it, split the file along its seams.
const MAX_LINES: usize = 800;

/// Whether `path` is test or benchmark code (integration tests, test crates, unit-test files).
fn is_test_code(path: &str) -> bool {
    path.starts_with("tests/")
        || path.starts_with("benches/")
        || path.contains("/tests/")
        || path.contains("/benches/")
        || path.ends_with("/tests.rs")
}

/// Files outside tests longer than [`MAX_LINES`].
fn oversized_files(files: &[(String, String)]) -> Vec<String> {
    files
        .iter()
        .filter(|(path, _)| !is_test_code(path))
        .filter_map(|(path, text)| {
            let lines = text.lines().count();
            (lines > MAX_LINES).then(|| {
                format!("{path} has {lines} lines (at most {MAX_LINES} outside tests): split it along its seams")
            })
        })
        .collect()
}

#[test]
fn no_file_outside_tests_is_over_800_lines() {
    let problems = oversized_files(&rust_files());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Module docs.

/// Files whose first non-blank line is not a `//!` doc.
fn missing_module_docs(files: &[(String, String)]) -> Vec<String> {
    files
        .iter()
        .filter(|(_, text)| {
            !text
                .lines()
                .find(|line| !line.trim().is_empty())
                .is_some_and(|line| line.trim_start().starts_with("//!"))
        })
        .map(|(path, _)| format!("{path} does not start with a `//!` doc saying what it is for"))
        .collect()
}

#[test]
fn every_module_says_what_it_is_for() {
    let problems = missing_module_docs(&rust_files());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Invariants a grep can check.

/// A text that may appear only in some files of a part of the tree.
struct Rule {
    /// The invariant, as ARCHITECTURE.md states it.
    invariant: &'static str,
    /// The files the rule covers (path prefixes).
    within: &'static [&'static str],
    /// Files it does not cover (parts of their paths: `/tests/`).
    except: &'static [&'static str],
    /// Texts that break it (in code, not comments).
    patterns: &'static [&'static str],
    /// Files where the pattern is the documented exception, with why.
    allowed: &'static [(&'static str, &'static str)],
}

const RULES: &[Rule] = &[
    Rule {
        invariant: "only agent/src/namespace.rs (its namespace thread) and agent/src/incoming/iptables.rs (an iptables child, before exec) call setns",
        within: &["agent/src/"],
        except: &[],
        patterns: &["setns("],
        allowed: &[
            (
                "agent/src/namespace.rs",
                "the one thread that joins the target's namespaces",
            ),
            (
                "agent/src/incoming/iptables.rs",
                "runs iptables in a child that joins the network namespace before exec",
            ),
        ],
    },
    Rule {
        invariant: "only the CLI prints (stdout belongs to the protocol or the user's output)",
        within: &[
            "agent/src/",
            "layer/src/",
            "crates/",
            "supervisor/src/",
            "tests/kube-fixture/src/",
            "tests/cluster/src/",
        ],
        except: &["crates/cli/", "/tests/", "/benches/", "/examples/"],
        patterns: &[
            "println!(",
            "print!(",
            "eprintln!(",
            "eprint!(",
            "dbg!(",
            "io::stdout()",
            "io::stderr()",
        ],
        allowed: &[
            (
                "agent/src/main.rs",
                "prints the line the session reads to learn the agent's address",
            ),
            (
                "crates/ide/src/stdio.rs",
                "the sidecar's stdout carries LSP",
            ),
            (
                "layer/src/net/incoming.rs",
                "the one warning the layer writes on the user's stderr (a port it could not subscribe)",
            ),
            (
                "tests/kube-fixture/src/main.rs",
                "the fixture prints its address for the tests",
            ),
        ],
    },
    Rule {
        invariant: "protocol does no I/O and has no async runtime",
        within: &["crates/protocol/src/"],
        except: &[],
        patterns: &[
            "std::fs::read",
            "std::fs::write",
            "std::fs::metadata(",
            "File::open",
            "File::create",
            "OpenOptions",
            "TcpStream",
            "TcpListener",
            "UdpSocket",
            "UnixStream",
            "UnixListener",
            "std::process",
            "tokio",
        ],
        allowed: &[],
    },
];

/// The text of `line` outside a `//` comment (a naive cut, enough for code).
fn code_of(line: &str) -> &str {
    let trimmed = line.trim_start();
    if trimmed.starts_with("//") {
        return "";
    }
    match line.find(" // ") {
        Some(comment) => &line[..comment],
        None => line,
    }
}

/// Whether `code` holds `pattern` as a whole name (`UdpSocket` is not in `UdpSocketId`).
fn contains_name(code: &str, pattern: &str) -> bool {
    let ends_in_name = pattern.ends_with(|c: char| c.is_alphanumeric() || c == '_');
    code.match_indices(pattern).any(|(at, _)| {
        !ends_in_name
            || !code[at + pattern.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
    })
}

/// The code of a file without its unit tests (`#[cfg(test)] mod tests` closes a file here).
fn without_unit_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    }
}

/// Every place a rule is broken.
fn rule_violations(files: &[(String, String)], rules: &[Rule]) -> Vec<String> {
    let mut problems = Vec::new();
    for rule in rules {
        for (path, text) in files {
            let covered = rule.within.iter().any(|prefix| path.starts_with(prefix))
                && !rule.except.iter().any(|part| path.contains(part));
            if !covered || rule.allowed.iter().any(|(allowed, _)| path == allowed) {
                continue;
            }
            for (number, line) in without_unit_tests(text).lines().enumerate() {
                let code = code_of(line);
                if let Some(pattern) = rule.patterns.iter().find(|p| contains_name(code, p)) {
                    problems.push(format!(
                        "{path}:{}: `{pattern}` breaks \"{}\"",
                        number + 1,
                        rule.invariant
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn grep_checked_invariants_hold() {
    let problems = rule_violations(&rust_files(), RULES);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `assert!`s that compare a measured duration: tests must not depend on the machine's speed
/// (bound a wait with a time limit of the harness and assert what happened instead).
fn wall_clock_asserts(files: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, text) in files {
        let mut search = 0;
        while let Some(found) = text[search..].find("assert") {
            let start = search + found;
            search = start + "assert".len();
            let Some(open) = text[start..].find("!(").map(|i| start + i + 2) else {
                break;
            };
            // Only `assert!(`, `assert_eq!(`, `debug_assert!(`… directly followed by `!(`.
            if !text[start..open - 2]
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_')
            {
                continue;
            }
            let mut depth = 1;
            let mut end = open;
            for (offset, c) in text[open..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = open + offset;
                    break;
                }
            }
            let call = &text[open..end];
            if call.contains(".elapsed()") {
                let line = text[..start].matches('\n').count() + 1;
                problems.push(format!("{path}:{line}: an assertion on elapsed time"));
            }
        }
    }
    problems
}

#[test]
fn no_test_asserts_on_wall_clock_time() {
    let problems = wall_clock_asserts(&rust_files());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The one variable that rewrites snapshots, goldens and fixtures.
const SNAPSHOT_VARIABLE: &str = "UPDATE_EXPECT";

/// Other `UPDATE_*` variables named in `files`.
fn other_snapshot_variables(files: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, text) in files {
        for (number, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(at) = rest.find("UPDATE_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                    .collect();
                if name != SNAPSHOT_VARIABLE && name.len() > "UPDATE_".len() {
                    problems.push(format!(
                        "{path}:{}: `{name}`; snapshots are rewritten with {SNAPSHOT_VARIABLE}=1",
                        number + 1
                    ));
                }
                rest = &rest[at + "UPDATE_".len()..];
            }
        }
    }
    problems
}

#[test]
fn one_variable_rewrites_every_snapshot() {
    let mut files = rust_files();
    for document in ["README.md", "crates/kube/README.md", "scripts/test"] {
        if let Ok(text) = std::fs::read_to_string(root().join(document)) {
            files.push((document.to_owned(), text));
        }
    }
    let problems = other_snapshot_variables(&files);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Each check fails on a made-up violation.
mod self_tests {
    use super::*;
    use serde_json::json;

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(path, text)| ((*path).to_owned(), (*text).to_owned()))
            .collect()
    }

    const MARKDOWN: &str = "intro\n<!-- crate-graph -->\n| crate | depends on |\n| --- | --- |\n| `protocol` | — |\n| `agent` | `protocol` |\n<!-- /crate-graph -->\n";

    fn package(name: &str, dependencies: &[(&str, Option<&str>)]) -> Value {
        json!({
            "name": name,
            "dependencies": dependencies
                .iter()
                .map(|(name, kind)| json!({ "name": name, "kind": kind }))
                .collect::<Vec<_>>(),
        })
    }

    #[test]
    fn an_undeclared_dependency_is_found() {
        let declared = declared_graph(MARKDOWN).unwrap();
        let agrees = json!({ "packages": [
            package("mirrord-protocol", &[("serde", None)]),
            package("mirrord-agent", &[("mirrord-protocol", None), ("tokio", None)]),
        ]});
        assert_eq!(
            graph_problems(&declared, &actual_graph(&agrees)),
            Vec::<String>::new()
        );
        let undeclared = json!({ "packages": [
            package("mirrord-protocol", &[]),
            package("mirrord-agent", &[("mirrord-protocol", None), ("mirrord-config", None)]),
            package("mirrord-config", &[("mirrord-protocol", Some("dev"))]),
        ]});
        let problems = graph_problems(&declared, &actual_graph(&undeclared));
        assert_eq!(
            problems,
            [
                "`agent` depends on `config`, which ARCHITECTURE.md does not declare",
                "crate `config` is missing from ARCHITECTURE.md's crate graph",
            ]
        );
        let gone = json!({ "packages": [package("mirrord-protocol", &[])] });
        assert_eq!(
            graph_problems(&declared, &actual_graph(&gone)),
            ["ARCHITECTURE.md lists crate `agent`, which the workspace does not have"]
        );
        let runtime = json!({ "packages": [package("mirrord-protocol", &[("tokio", None)])] });
        assert_eq!(forbidden_dependencies(&runtime).len(), 1);
    }

    #[test]
    fn a_config_file_parser_in_the_layer_is_found() {
        let clean = "mirrord-layer v0.1.0 (/w/layer)\nmirrord-config v0.1.0 (/w/crates/config)\nserde_json v1.0.1\nregex v1.13.0\n";
        assert_eq!(
            forbidden_in_tree("mirrord-layer", clean),
            Vec::<String>::new()
        );
        let parsers =
            format!("{clean}schemars v1.2.0\nschemars_derive v1.2.0 (proc-macro)\ntoml v1.2.0\n");
        assert_eq!(
            forbidden_in_tree("mirrord-layer", &parsers),
            [
                "`mirrord-layer` links `schemars`: the preloaded layer reads only the resolved config (mirrord-config without `files`)",
                "`mirrord-layer` links `toml`: the preloaded layer reads only the resolved config (mirrord-config without `files`)",
            ]
        );
        assert_eq!(
            forbidden_in_tree("mirrord-cli", &parsers),
            Vec::<String>::new(),
            "the CLI reads config files"
        );
    }

    #[test]
    fn a_file_over_800_lines_outside_tests_is_found() {
        let long = "//! long\n".to_owned() + &"fn f() {}\n".repeat(MAX_LINES);
        let exact = "fn f() {}\n".repeat(MAX_LINES);
        let tree = vec![
            ("layer/src/net/mod.rs".to_owned(), long.clone()),
            ("crates/ide/src/language.rs".to_owned(), exact),
            ("crates/cli/tests/exec.rs".to_owned(), long.clone()),
            ("agent/src/files/tests.rs".to_owned(), long.clone()),
            (
                "tests/cluster/src/bin/node_runner.rs".to_owned(),
                long.clone(),
            ),
            ("crates/cli/benches/incoming.rs".to_owned(), long),
        ];
        assert_eq!(
            oversized_files(&tree),
            [
                "layer/src/net/mod.rs has 801 lines (at most 800 outside tests): split it along its seams"
            ]
        );
    }

    #[test]
    fn a_forbidden_call_is_found() {
        let tree = files(&[
            (
                "agent/src/namespace.rs",
                "//! ns\nfn f() { libc::setns(fd, 0); }\n",
            ),
            (
                "agent/src/files.rs",
                "//! files\n// setns( in a comment is fine\nfn g() { unsafe { libc::setns(fd, 0) }; }\n",
            ),
            (
                "crates/kube/src/list.rs",
                "//! list\nfn h() { println!(\"hi\"); }\n",
            ),
            (
                "crates/cli/src/main.rs",
                "//! cli\nfn main() { println!(\"hi\"); }\n",
            ),
            (
                "crates/protocol/src/frame.rs",
                "//! frames\nuse std::net::SocketAddr;\nfn i() { std::fs::read(\"x\"); }\n#[cfg(test)]\nmod tests {\n    fn t() { std::fs::read(\"y\"); }\n}\n",
            ),
            (
                "crates/protocol/src/ids.rs",
                "//! ids\npub struct UdpSocketId(u64);\n",
            ),
        ]);
        let problems = rule_violations(&tree, RULES);
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems[0].starts_with("agent/src/files.rs:3: `setns(`"),
            "{}",
            problems[0]
        );
        assert!(
            problems[1].starts_with("crates/kube/src/list.rs:2: `println!(`"),
            "{}",
            problems[1]
        );
        assert!(
            problems[2].starts_with("crates/protocol/src/frame.rs:3: `std::fs::read`"),
            "{}",
            problems[2]
        );
    }

    #[test]
    fn a_wall_clock_assertion_is_found() {
        let tree = files(&[(
            "crates/x/tests/t.rs",
            "//! t\nfn t() {\n    assert_eq!(a, b);\n    assert!(\n        started.elapsed() < Duration::from_secs(2),\n        \"slow\"\n    );\n    assert!(Instant::now() < deadline);\n}\n",
        )]);
        assert_eq!(
            wall_clock_asserts(&tree),
            ["crates/x/tests/t.rs:4: an assertion on elapsed time"]
        );
    }

    #[test]
    fn a_module_without_a_doc_is_found() {
        let tree = files(&[
            ("a.rs", "\n//! documented\n"),
            ("b.rs", "// a comment\nfn f() {}\n"),
        ]);
        assert_eq!(
            missing_module_docs(&tree),
            ["b.rs does not start with a `//!` doc saying what it is for"]
        );
    }

    #[test]
    fn another_snapshot_variable_is_found() {
        let tree = files(&[(
            "t.rs",
            "//! t\nstd::env::var_os(\"UPDATE_EXPECT\"); std::env::var_os(\"UPDATE_GOLDEN\");\n",
        )]);
        assert_eq!(other_snapshot_variables(&tree).len(), 1);
    }
}
