//! Benchmark of a Go `net/http` server stealing a pod's traffic on the system-call path, printed
//! as a ratio measured in one run (no asserts; the target from issue #14 is printed beside it):
//!
//! - direct: the Go server (`tests/e2e/go/probe.go serve`, static build) runs inside the sandbox
//!   pod's network namespace on port 8080;
//! - stolen: the same program runs on this machine under `mirrord exec --target sandbox/NAME`
//!   with `incoming.mode: steal`, receiving the pod's port 80;
//!
//! both hit by the same load generator (`probe load`: concurrent keep-alive GETs) running in the
//! sandbox's second namespace, "another service in the cluster", so requests reach the pod over
//! its network like a client's would. Direct and stolen rounds alternate; medians of three.
//!
//! Run as root: `cargo bench -p mirrord-cli --bench go_steal` (after `cargo build --workspace`,
//! which builds the agent beside `mirrord`). Target: stolen ≥ 70 % of direct requests/s.

#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

#[path = "../tests/support/mod.rs"]
mod support;

use std::{path::Path, process::Command};

use support::{
    MIRRORD, Sandbox,
    e2e::{Run, build_go_probe, run_bounded, spawn_until_ready},
};

const CONNECTIONS: &str = "16";
const SECONDS: &str = "5";
const DIRECT_PORT: u16 = 8080;

fn checked(command: Command, what: &str) -> Run {
    let run = run_bounded(command, std::time::Duration::from_secs(120));
    assert!(run.status.success(), "{what}: {}", run.describe());
    run
}

/// Requests/s the load generator reached against `url`.
fn requests_per_second(probe: &Path, netns: &str, url: &str) -> f64 {
    let mut load = Command::new("ip");
    load.args(["netns", "exec", netns])
        .arg(probe)
        .args(["load", url, CONNECTIONS, SECONDS]);
    let run = checked(load, "probe load");
    let text = run.stdout;
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("load: "))
        .unwrap_or_else(|| panic!("no load figure in {text}"));
    assert!(
        line.ends_with(" 0 failed)"),
        "requests failed against {url}: {line}"
    );
    line.split_whitespace()
        .next()
        .and_then(|rate| rate.parse().ok())
        .unwrap_or_else(|| panic!("no rate in {line}"))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("mirrord-go-steal-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let probe = scratch.join("go-probe-static");
    build_go_probe(&probe, true);
    let sandbox = Sandbox::up(&format!("bench-gs-{:03}", std::process::id() % 1000));
    let netns = sandbox.netns();
    let client_netns = sandbox.info["db_netns"].as_str().unwrap();
    let pod_ip = sandbox.address().ip();

    let mut direct_command = Command::new("ip");
    direct_command
        .args(["netns", "exec", &netns])
        .arg(&probe)
        .args(["serve", &format!("0.0.0.0:{DIRECT_PORT}")]);
    let _direct_server = spawn_until_ready(direct_command, "serving");

    let local_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = scratch.join("steal.json");
    std::fs::write(
        &config,
        format!(
            r#"{{ "feature": {{ "network": {{ "incoming": {{ "mode": "steal", "port_mapping": [[{local_port}, 80]] }} }} }} }}"#
        ),
    )
    .unwrap();
    let mut stolen_command = Command::new(MIRRORD);
    stolen_command
        .args(["exec", "--target", &format!("sandbox/{}", sandbox.name)])
        .arg("--config-file")
        .arg(&config)
        .arg("--")
        .arg(&probe)
        .args(["serve", &format!("127.0.0.1:{local_port}")]);
    let _stolen_server = spawn_until_ready(stolen_command, "serving");

    let direct_url = format!("http://{pod_ip}:{DIRECT_PORT}/hello");
    let stolen_url = format!("http://{pod_ip}:80/hello");
    let mut direct = Vec::new();
    let mut stolen = Vec::new();
    for _ in 0..3 {
        direct.push(requests_per_second(&probe, client_netns, &direct_url));
        stolen.push(requests_per_second(&probe, client_netns, &stolen_url));
    }
    let (direct, stolen) = (median(direct), median(stolen));
    println!(
        "Go net/http server, {CONNECTIONS} keep-alive connections, {SECONDS} s rounds (medians of 3):"
    );
    println!("  direct, inside the pod        {direct:8.0} requests/s");
    println!("  stolen, under mirrord exec    {stolen:8.0} requests/s");
    println!(
        "  ratio                         {:8.1} %   (target ≥ 70 %)",
        100.0 * stolen / direct
    );
    drop(sandbox);
    let _ = std::fs::remove_dir_all(&scratch);
}
