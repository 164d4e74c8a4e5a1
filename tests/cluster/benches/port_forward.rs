//! Work through the real port-forward (kube-apiserver → kwok → the agent) against the same work
//! done inside the pod, measured in one run; no thresholds, it prints figures and ratios.
//!
//! `deployment/api` runs on a sandbox pod; a small server (echo, request/response and a byte
//! sink) runs in the sandbox's second namespace, which only the pod reaches (as a service in the
//! cluster would be). The same python client runs once under `mirrord exec --target
//! deployment/api` and once inside the pod (nsenter into its mount and network namespaces), and
//! times inside the process, so session start is not counted:
//!   - reading a 100 MiB file of the pod (made in its `/app`) in 1 MiB reads, MB/s;
//!   - an outgoing request: connect + 64-byte request + 64-byte response + close, p50 and p99;
//!   - a 64-byte echo round trip on one connection, p50 and p99;
//!   - bulk: 64 MiB sent to the sink, which answers with the byte count, MB/s.
//!
//! For comparison, the same client (without the file) runs through `kubectl port-forward` to a
//! pod whose forwarded port kwok sends to a copy of the server on this machine: the port-forward
//! alone, with nothing of mirrord on the way.
//!
//! Each way runs [`RUNS`] times; the table shows the median of each figure. Run as root after
//! building the workspace in the bench's profile and `tests/cluster/build.sh`:
//! `cargo build --release --workspace && cargo bench -p mirrord-test-cluster --bench port_forward`
//! (`MIRRORD_BINARY_DIR` points it at other binaries, e.g. `target/debug`).

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mirrord_test_cluster::{Backing, Cluster, ClusterOptions, IDLE_IMAGE, workspace_binary};
use serde_json::Value;

const RUNS: usize = 3;
const FILE_MIB: u64 = 100;
const BULK_MIB: u64 = 64;
const REQUESTS: usize = 400;
const ECHOES: usize = 3000;
const SANDBOX: &str = "bench-pf";
const FILE: &str = "/app/bench-port-forward.bin";

/// Serves on (argv[1], any port) and prints the port: first byte `r` → a 64-byte request gets a
/// 64-byte answer and the connection closes; `e` → echoes 64-byte messages; `s` + a big-endian
/// u64 N → reads N bytes, answers the count and closes (no half-close: kubectl's port-forward does
/// not pass one on).
const SERVER: &str = r#"
import socket, sys, threading
listener = socket.socket()
listener.bind((sys.argv[1], 0))
listener.listen(256)
def exactly(connection, size):
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data
def serve(connection):
    with connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        kind = connection.recv(1)
        if kind == b"r":
            if exactly(connection, 63) is not None:
                connection.sendall(b"a" * 64)
        elif kind == b"e":
            while (data := exactly(connection, 64)) is not None:
                connection.sendall(data)
        elif kind == b"s":
            size = int.from_bytes(exactly(connection, 8), "big")
            total = 0
            while total < size and (chunk := connection.recv(min(1 << 20, size - total))):
                total += len(chunk)
            connection.sendall(str(total).encode())
print(listener.getsockname()[1], flush=True)
while True:
    connection, _ = listener.accept()
    threading.Thread(target=serve, args=(connection,), daemon=True).start()
"#;

/// `CLIENT FILE HOST PORT REQUESTS ECHOES BULK_MIB`: prints one JSON object of figures (FILE `-`:
/// no file is read).
const CLIENT: &str = r#"
import json, socket, sys, time
path, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
requests, echoes, bulk = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]) << 20
address = (host, port)
def exactly(connection, size):
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise SystemExit(f"the server closed the connection after {len(data)} of {size} bytes")
        data += chunk
    return data
def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]
figures = {}
if path != "-":
    started = time.perf_counter()
    total = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(1 << 20):
            total += len(chunk)
    figures["read_bytes"] = total
    figures["read_seconds"] = time.perf_counter() - started
latencies = []
for _ in range(requests):
    started = time.perf_counter()
    with socket.create_connection(address, timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"r" + b"x" * 63)
        exactly(s, 64)
    latencies.append(time.perf_counter() - started)
figures["request_p50"] = percentile(latencies, 0.5)
figures["request_p99"] = percentile(latencies, 0.99)
latencies = []
message = b"y" * 64
with socket.create_connection(address, timeout=10) as s:
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"e")
    for _ in range(echoes):
        started = time.perf_counter()
        s.sendall(message)
        exactly(s, 64)
        latencies.append(time.perf_counter() - started)
figures["echo_p50"] = percentile(latencies, 0.5)
figures["echo_p99"] = percentile(latencies, 0.99)
block = b"z" * (1 << 20)
started = time.perf_counter()
with socket.create_connection(address, timeout=30) as s:
    s.sendall(b"s" + bulk.to_bytes(8, "big"))
    sent = 0
    while sent < bulk:
        s.sendall(block)
        sent += len(block)
    # The count, read by its expected length: kubectl's port-forward does not pass the server's
    # close on.
    answer = exactly(s, len(str(bulk)))
figures["bulk_seconds"] = time.perf_counter() - started
figures["bulk_bytes"] = sent
if int(answer) != sent:
    raise SystemExit(f"the sink counted {answer!r} bytes, {sent} were sent")
print("FIGURES " + json.dumps(figures), flush=True)
"#;

fn run(command: &mut Command, what: &str) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The figures line a client run printed.
fn figures(output: &Output, what: &str) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("FIGURES "))
        .unwrap_or_else(|| panic!("{what} printed no figures:\n{stdout}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: bad figures {line:?}: {e}"))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A server (or `kubectl port-forward`); killed on drop.
struct Server(Child);

impl Server {
    /// Starts [`SERVER`] and returns it with the port it printed.
    fn start(command: &mut Command) -> (Server, u16) {
        let mut server = Server(
            command
                .stdout(Stdio::piped())
                .spawn()
                .expect("the server starts"),
        );
        let mut port = String::new();
        BufReader::new(server.0.stdout.take().expect("piped"))
            .read_line(&mut port)
            .expect("the server prints its port");
        let port = port
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the server printed {port:?}, not its port"));
        (server, port)
    }
}

/// The port-forward alone, for comparison: an idle pod whose port 9000 kwok forwards to a second
/// server on this machine's loopback, reached through `kubectl port-forward` (API server → kwok,
/// as mirrord's agent connection is). Returns kubectl and its local port once a request passes.
fn port_forward_alone(cluster: &Cluster, python: &str) -> ((Server, Server), u16) {
    let (server, port) = Server::start(Command::new(python).args(["-c", SERVER, "127.0.0.1"]));
    cluster.apply(&format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "port-forward-alone"}},
          "spec": {{"terminationGracePeriodSeconds": 0, "containers": [{{"name": "main", "image": "{IDLE_IMAGE}"}}]}}}}"#
    ));
    cluster.wait_for(
        &[
            "pod",
            "port-forward-alone",
            "-o",
            "jsonpath={.status.phase}",
        ],
        "Running",
        Duration::from_secs(60),
    );
    cluster.apply(&format!(
        r#"{{"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "PortForward", "metadata": {{"name": "port-forward-alone"}},
          "spec": {{"forwards": [{{"ports": [9000], "target": {{"address": "127.0.0.1", "port": {port}}}}}]}}}}"#
    ));
    // kwok learns of the PortForward object through its watch, and kubectl exits when a stream
    // fails: start it again until a request passes.
    let log = cluster.dir().join("kubectl-port-forward.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // kubectl writes a line for each connection: its stdout goes to a file, not a pipe that
        // would be closed once the port is read.
        let out = cluster.dir().join("kubectl-port-forward.out");
        let kubectl = Server(
            cluster
                .kubectl()
                .args(["port-forward", "pod/port-forward-alone", ":9000"])
                .stdout(std::fs::File::create(&out).expect("a log file"))
                .stderr(std::fs::File::create(&log).expect("a log file"))
                .spawn()
                .expect("kubectl runs"),
        );
        let mut line = String::new();
        while Instant::now() < deadline {
            let printed = std::fs::read_to_string(&out).unwrap_or_default();
            if let Some(first) = printed.lines().next() {
                line = first.to_owned();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // "Forwarding from 127.0.0.1:PORT -> 9000"
        let local_port: Option<u16> = line
            .split_whitespace()
            .nth(2)
            .and_then(|address| address.rsplit(':').next()?.parse().ok());
        let answered = local_port
            .ok_or_else(|| std::io::Error::other(format!("kubectl printed {line:?}")))
            .and_then(|port| {
                let mut s = TcpStream::connect(("127.0.0.1", port))?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                s.write_all(&[b'r'; 64])?;
                let mut answer = [0; 64];
                s.read_exact(&mut answer)?;
                Ok(port)
            });
        match answered {
            Ok(local_port) => return ((server, kubectl), local_port),
            Err(error) if Instant::now() > deadline => panic!(
                "no answer through kubectl port-forward after 30 s: {error}; kubectl:\n{}\nkwok:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default(),
                cluster.log("kwok")
            ),
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The sandbox pod; removed on drop.
struct Sandbox {
    mirrord: std::path::PathBuf,
    info: Value,
}

impl Sandbox {
    fn up(mirrord: &std::path::Path) -> Sandbox {
        let _ = Command::new(mirrord)
            .args(["sandbox", "down", SANDBOX])
            .output();
        let output = run(
            Command::new(mirrord).args(["sandbox", "up", SANDBOX, "--output", "json"]),
            "mirrord sandbox up",
        );
        Sandbox {
            mirrord: mirrord.to_owned(),
            info: serde_json::from_slice(&output.stdout).expect("sandbox up's JSON"),
        }
    }

    fn field(&self, key: &str) -> String {
        match &self.info[key] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => panic!("sandbox up's JSON has no {key}: {other}"),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = Command::new(&self.mirrord)
            .args(["sandbox", "down", SANDBOX])
            .output();
    }
}

fn main() {
    let mirrord = workspace_binary("mirrord");
    let python = Command::new("python3")
        .args([
            "-c",
            "import os, sys; print(os.path.realpath(sys.executable))",
        ])
        .output()
        .expect("python3 runs");
    let python = String::from_utf8_lossy(&python.stdout).trim().to_owned();

    let sandbox = Sandbox::up(&mirrord);
    let pid = sandbox.field("target_pid");
    let db_ip = sandbox.field("db_ip");
    run(
        Command::new("nsenter").args([
            "--target",
            &pid,
            "--mount",
            "--",
            "dd",
            "if=/dev/urandom",
            &format!("of={FILE}"),
            "bs=1M",
            &format!("count={FILE_MIB}"),
            "status=none",
        ]),
        "making the pod's file",
    );
    let (server, port) = Server::start(
        Command::new("ip")
            .args(["netns", "exec", &sandbox.field("db_netns"), &python, "-c"])
            .args([SERVER, &db_ip]),
    );

    let cluster = Cluster::start(ClusterOptions::default());
    cluster.create_workloads(Backing::Sandbox(SANDBOX), false);
    let (forward, local_port) = port_forward_alone(&cluster, &python);

    let client = |file: &str, host: &str, port: u16| {
        let mut args = vec!["-c".to_owned(), CLIENT.to_owned(), file.to_owned()];
        args.extend([host.to_owned(), port.to_string()]);
        args.extend([REQUESTS, ECHOES, BULK_MIB as usize].map(|n| n.to_string()));
        args
    };
    let mut through = Vec::new();
    let mut inside = Vec::new();
    let mut alone = Vec::new();
    for _ in 0..RUNS {
        let output = run(
            Command::new(&mirrord)
                .args(["exec", "--target", "deployment/api", "--", &python])
                .args(client(FILE, &db_ip, port))
                .env("KUBECONFIG", &cluster.kubeconfig)
                .env_remove("MIRRORD_CONFIG_FILE")
                .current_dir(cluster.dir()),
            "the client under mirrord exec --target deployment/api",
        );
        through.push(figures(&output, "the client through mirrord"));
        let output = run(
            Command::new("nsenter")
                .args(["--target", &pid, "--mount", "--net", "--", &python])
                .args(client(FILE, &db_ip, port)),
            "the client inside the pod",
        );
        inside.push(figures(&output, "the client inside the pod"));
        let output = run(
            Command::new(&python).args(client("-", "127.0.0.1", local_port)),
            "the client through kubectl port-forward",
        );
        alone.push(figures(&output, "the client through kubectl port-forward"));
    }

    let of =
        |runs: &[Value], key: &str| median(runs.iter().map(|f| f[key].as_f64().unwrap()).collect());
    let rate = |runs: &[Value], bytes: &str, seconds: &str| {
        median(
            runs.iter()
                .map(|f| f[bytes].as_f64().unwrap() / f[seconds].as_f64().unwrap() / 1e6)
                .collect(),
        )
    };
    println!(
        "mirrord exec --target deployment/api (through the real port-forward) vs the same client inside the pod, and vs kubectl port-forward alone; binaries in {}; median of {RUNS} runs",
        mirrord_test_cluster::binary_dir().display()
    );
    println!(
        "{:<42} {:>13} {:>13} {:>13} {:>10} {:>10}",
        "figure", "mirrord", "in the pod", "kubectl p-f", "vs pod", "vs p-f"
    );
    let read = (
        rate(&through, "read_bytes", "read_seconds"),
        rate(&inside, "read_bytes", "read_seconds"),
    );
    println!(
        "{:<42} {:>8.0} MB/s {:>8.0} MB/s {:>13} {:>8.1} % {:>10}",
        format!("read a {FILE_MIB} MiB pod file (1 MiB reads)"),
        read.0,
        read.1,
        "-",
        read.0 / read.1 * 100.0,
        "-"
    );
    for (name, key) in [
        ("outgoing request p50 (connect+64 B+close)", "request_p50"),
        ("outgoing request p99", "request_p99"),
        ("64-byte echo round trip p50", "echo_p50"),
        ("64-byte echo round trip p99", "echo_p99"),
    ] {
        let (a, b, c) = (
            of(&through, key) * 1e6,
            of(&inside, key) * 1e6,
            of(&alone, key) * 1e6,
        );
        println!(
            "{name:<42} {a:>10.0} us {b:>10.0} us {c:>10.0} us {:>8.1} × {:>8.2} ×",
            a / b,
            a / c
        );
    }
    let bulk = (
        rate(&through, "bulk_bytes", "bulk_seconds"),
        rate(&inside, "bulk_bytes", "bulk_seconds"),
        rate(&alone, "bulk_bytes", "bulk_seconds"),
    );
    println!(
        "{:<42} {:>8.0} MB/s {:>8.0} MB/s {:>8.0} MB/s {:>8.1} % {:>8.0} %",
        format!("bulk {BULK_MIB} MiB to the service"),
        bulk.0,
        bulk.1,
        bulk.2,
        bulk.0 / bulk.1 * 100.0,
        bulk.0 / bulk.2 * 100.0
    );
    drop(forward);
    drop(cluster);
    drop(server);
    drop(sandbox);
}
