//! Session start against a deployment target on the real control plane: `mirrord exec --target
//! deployment/api -- true` minus `true`, with a breakdown from mirrord's progress lines (connect,
//! resolve, Job created → pod scheduled → agent ready, port-forward and internal proxy, the user
//! process). Run as root after `cargo build --workspace` and `tests/cluster/build.sh`:
//! `cargo bench -p mirrord-test-cluster --bench session_start` (it uses the debug binaries in
//! `target/debug`, which the tests use too). Target: 2 s.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mirrord_test_cluster::{Backing, Cluster, ClusterOptions};

const RUNS: usize = 7;

fn debug_binary(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/debug")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` first",
        path.display()
    );
    path
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// The step a progress line stands for (its words before any name).
fn step(line: &str) -> String {
    let line = line.trim_start_matches("mirrord: ");
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["agent", "pod", _, state @ ..] => format!("agent pod: {}", state.join(" ")),
        ["target:", ..] => "target resolved".to_owned(),
        ["resolving", ..] => "resolving".to_owned(),
        _ => words.iter().take(4).copied().collect::<Vec<_>>().join(" "),
    }
}

fn main() {
    let mirrord = debug_binary("mirrord");
    // The harness finds the node runner and the agent next to this binary's directory.
    check_binary_dir();
    let _ = Command::new(&mirrord)
        .args(["sandbox", "down", "bench-start"])
        .output();
    let up = Command::new(&mirrord)
        .args(["sandbox", "up", "bench-start", "--output", "json"])
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "sandbox up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let cluster = Cluster::start(ClusterOptions::default());
    cluster.create_workloads(Backing::Sandbox("bench-start"), false);

    let mut baseline = Vec::new();
    let mut totals = Vec::new();
    let mut steps: Vec<(String, Vec<Duration>)> = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        assert!(Command::new("true").status().unwrap().success());
        baseline.push(started.elapsed());

        let started = Instant::now();
        let mut child = Command::new(&mirrord)
            .args(["exec", "--target", "deployment/api", "--", "true"])
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env_remove("MIRRORD_CONFIG_FILE")
            .current_dir(cluster.dir())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut seen = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            seen.push((step(&line), started.elapsed()));
        }
        let status = child.wait().unwrap();
        let total = started.elapsed();
        assert!(status.success(), "mirrord exec failed: {seen:?}");
        totals.push(total);
        for (name, at) in seen {
            match steps.iter_mut().find(|(n, _)| *n == name) {
                Some((_, times)) => times.push(at),
                None => steps.push((name, vec![at])),
            }
        }
    }
    let baseline = median(baseline);
    let total = median(totals);
    println!("session start against deployment/api, median of {RUNS} runs");
    println!("{:<48} {:>10}", "step (progress line seen at)", "ms");
    for (name, times) in steps {
        println!(
            "{:<48} {:>10.0}",
            name,
            median(times).as_secs_f64() * 1000.0
        );
    }
    println!(
        "{:<48} {:>10.0}",
        "process exited (mirrord exec … -- true)",
        total.as_secs_f64() * 1000.0
    );
    println!(
        "{:<48} {:>10.1}",
        "`true` alone",
        baseline.as_secs_f64() * 1000.0
    );
    let start = total.saturating_sub(baseline);
    println!(
        "session start: {:.0} ms (target 2000 ms; {:.2}× the target)",
        start.as_secs_f64() * 1000.0,
        start.as_secs_f64() / 2.0
    );
    drop(cluster);
    let _ = Command::new(&mirrord)
        .args(["sandbox", "down", "bench-start"])
        .output();
}

/// The harness looks for `mirrord-node-runner` and `mirrord-agent` beside the running binary's
/// directory; under `cargo bench` that is `target/release`, so point it at the debug build.
fn check_binary_dir() {
    assert!(
        std::env::var_os("MIRRORD_BINARY_DIR").is_some()
            || mirrord_test_cluster::binary_dir()
                .join("mirrord-node-runner")
                .exists(),
        "set MIRRORD_BINARY_DIR=target/debug (or build the workspace in this profile)"
    );
}
