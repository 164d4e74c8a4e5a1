//! Benchmark of a Go `net/http` server stealing a pod's traffic on the system-call path, printed
//! as a ratio measured in one run (no asserts; the target from issue #14 is printed beside it):
//!
//! - direct: the Go server (`tests/e2e/go/probe.go serve`, static build) runs inside the sandbox
//!   pod's network namespace on port 8080;
//! - stolen: the same program runs on this machine under `mirrord exec --target sandbox/NAME`
//!   with `incoming.mode: steal`, receiving the pod's port 80 (the supervisor takes each stolen
//!   connection's own socket from the agent: a handover);
//! - for comparison, two steals whose bytes the agent relays through the intproxy: with
//!   `fs.native_fds` off (no descriptor socket, so no handover; pod port 81) and with an HTTP
//!   filter matching every request (the agent parses each one; pod port 82);
//!
//! all hit by the same load generator (`probe load`: concurrent keep-alive GETs) running in the
//! sandbox's second namespace, "another service in the cluster", so requests reach the pod over
//! its network like a client's would. The rounds alternate; medians of three.
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

    let steal = |pod_port: u16, extra_incoming: &str, extra_feature: &str| {
        let local_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = scratch.join(format!("steal-{pod_port}.json"));
        std::fs::write(
            &config,
            format!(
                r#"{{ "feature": {{ {extra_feature} "network": {{ "incoming": {{ "mode": "steal", "port_mapping": [[{local_port}, {pod_port}]] {extra_incoming} }} }} }} }}"#
            ),
        )
        .unwrap();
        let mut command = Command::new(MIRRORD);
        command
            .args(["exec", "--target", &format!("sandbox/{}", sandbox.name)])
            .arg("--config-file")
            .arg(&config)
            .arg("--")
            .arg(&probe)
            .args(["serve", &format!("127.0.0.1:{local_port}")]);
        spawn_until_ready(command, "serving")
    };
    let _stolen_server = steal(80, "", "");
    let _relayed_server = steal(81, "", r#""fs": { "native_fds": false },"#);
    let _filtered_server = steal(82, r#", "http_filter": { "path_filter": "^/hello$" }"#, "");

    let urls = [
        format!("http://{pod_ip}:{DIRECT_PORT}/hello"),
        format!("http://{pod_ip}:80/hello"),
        format!("http://{pod_ip}:81/hello"),
        format!("http://{pod_ip}:82/hello"),
    ];
    let mut rates = vec![Vec::new(); urls.len()];
    for _ in 0..3 {
        for (url, rates) in urls.iter().zip(&mut rates) {
            rates.push(requests_per_second(&probe, client_netns, url));
        }
    }
    let [direct, stolen, relayed, filtered] =
        [0, 1, 2, 3].map(|index| median(rates[index].clone()));
    let percent = |rate: f64| 100.0 * rate / direct;
    println!(
        "Go net/http server, {CONNECTIONS} keep-alive connections, {SECONDS} s rounds (medians of 3):"
    );
    println!("  direct, inside the pod                        {direct:8.0} requests/s");
    println!(
        "  stolen, under mirrord exec (handover)         {stolen:8.0} requests/s  {:6.1} %   (target ≥ 70 %)",
        percent(stolen)
    );
    println!(
        "  stolen, relayed (fs.native_fds off)           {relayed:8.0} requests/s  {:6.1} %",
        percent(relayed)
    );
    println!(
        "  stolen with an HTTP filter (relayed)          {filtered:8.0} requests/s  {:6.1} %",
        percent(filtered)
    );
    drop(sandbox);
    let _ = std::fs::remove_dir_all(&scratch);
}
