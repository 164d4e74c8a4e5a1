//! Incoming-traffic benchmarks, printed as figures and ratios measured in the same run (no
//! asserts; targets from DESIGN.md §4 are printed beside them):
//!
//! - bulk TCP through a stolen port vs. directly to a server in the sandbox (target ≥ 70%);
//! - per-request latency of filtered steal, p50 and p99, vs. direct (target: p50 added ≤ 150 µs);
//! - mirror under load: share of requests delivered intact to the local app (target ≥ 99.9%).
//!
//! Run as root with release binaries: `cargo build --release --workspace && cargo bench -p mirrord-cli --bench incoming`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mirrord_protocol::incoming::{HttpFilter, SubscriptionMode};
use support::{MIRRORD, Sandbox, keep_alive_requests, local_app, session, subscribe};

const BULK_BYTES: usize = 1 << 30;
const ECHO_PORT: u16 = 9000;

#[allow(clippy::print_stdout, reason = "a benchmark prints its figures")]
fn main() {
    let sandbox = Sandbox::up("bench-incoming");
    let echo_in_sandbox = sandbox_echo(&sandbox);

    let direct_bulk = bulk(SocketAddr::new(sandbox.address().ip(), ECHO_PORT));
    let session = session(&sandbox);
    let local_echo = local_echo_server();
    let subscription = subscribe(&session, ECHO_PORT, SubscriptionMode::Steal, local_echo);
    let stolen_bulk = bulk(SocketAddr::new(sandbox.address().ip(), ECHO_PORT));
    drop(subscription);
    println!("bulk echo of {} MiB:", BULK_BYTES >> 20);
    println!("  direct to the sandbox      {:8.1} MiB/s", direct_bulk);
    println!("  through a stolen port      {:8.1} MiB/s", stolen_bulk);
    println!(
        "  ratio                      {:8.1} %   (target ≥ 70 %)",
        100.0 * stolen_bulk / direct_bulk
    );

    const SAMPLES: usize = 2000;
    let direct = latencies(sandbox.address(), SAMPLES, false);
    let (app, _seen) = local_app();
    let filter = HttpFilter::Header("^x-mirrord-user: me$".to_owned());
    let filtered = subscribe(&session, 80, SubscriptionMode::StealHttp(filter), app);
    let passed_through = latencies(sandbox.address(), SAMPLES, false);
    let stolen = latencies(sandbox.address(), SAMPLES, true);
    drop(filtered);
    println!("per-request latency over {SAMPLES} keep-alive requests (µs):");
    println!("                              p50      p99");
    println!(
        "  direct                   {:7.0}  {:7.0}",
        direct.0, direct.1
    );
    println!(
        "  filtered, not matching   {:7.0}  {:7.0}   added p50 {:+.0} µs",
        passed_through.0,
        passed_through.1,
        passed_through.0 - direct.0
    );
    println!(
        "  filtered, stolen         {:7.0}  {:7.0}   added p50 {:+.0} µs (target ≤ 150 µs)",
        stolen.0,
        stolen.1,
        stolen.0 - direct.0
    );

    const MIRRORED: usize = 10_000;
    let (app, seen) = local_app();
    let mirror = subscribe(&session, 80, SubscriptionMode::Mirror, app);
    let started = Instant::now();
    let answered = load(sandbox.address(), MIRRORED, 32);
    let elapsed = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut delivered = 0;
    while delivered < MIRRORED && Instant::now() < deadline {
        if seen.recv_timeout(Duration::from_millis(200)).is_ok() {
            delivered += 1;
        }
    }
    drop(mirror);
    println!(
        "mirror under load ({MIRRORED} requests, 32 connections, {:.0} requests/s):",
        answered as f64 / elapsed.as_secs_f64()
    );
    println!("  answered by the sandbox    {answered}");
    println!(
        "  delivered to the local app {delivered}  ({:.2} %, target ≥ 99.9 %)",
        100.0 * delivered as f64 / MIRRORED as f64
    );
    drop(echo_in_sandbox);
}

/// A TCP echo server inside the sandbox's network namespace (the mirrord binary's own service).
fn sandbox_echo(sandbox: &Sandbox) -> KillOnDrop {
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &sandbox.netns(),
            MIRRORD,
            "sandbox",
            "serve",
            "tcp-echo",
            "--port",
            &ECHO_PORT.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the echo server in the sandbox");
    let address = SocketAddr::new(sandbox.address().ip(), ECHO_PORT);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    KillOnDrop(child)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn local_echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = stream.try_clone().unwrap();
                let mut writer = stream;
                let _ = std::io::copy(&mut reader, &mut writer);
            });
        }
    });
    address
}

/// MiB/s of echoing `BULK_BYTES` through `address` (writer and reader on two threads).
fn bulk(address: SocketAddr) -> f64 {
    let stream = TcpStream::connect(address).unwrap();
    let _ = stream.set_nodelay(true);
    let mut reader = stream.try_clone().unwrap();
    let mut writer = stream;
    let started = Instant::now();
    let sender = std::thread::spawn(move || {
        let chunk = vec![0x5a; 256 * 1024];
        let mut sent = 0;
        while sent < BULK_BYTES {
            writer.write_all(&chunk).unwrap();
            sent += chunk.len();
        }
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut buffer = vec![0; 256 * 1024];
    let mut received = 0;
    while received < BULK_BYTES {
        let read = reader.read(&mut buffer).unwrap();
        if read == 0 {
            break;
        }
        received += read;
    }
    sender.join().unwrap();
    (received as f64 / (1 << 20) as f64) / started.elapsed().as_secs_f64()
}

/// p50 and p99 in µs of `samples` sequential requests on one keep-alive connection.
fn latencies(address: SocketAddr, samples: usize, stolen: bool) -> (f64, f64) {
    use std::io::{BufRead, BufReader};
    let stream = TcpStream::connect(address).unwrap();
    let _ = stream.set_nodelay(true);
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let header = if stolen { "x-mirrord-user: me\r\n" } else { "" };
    let request = format!("GET /sample HTTP/1.1\r\nhost: sandbox\r\n{header}\r\n");
    let mut times: Vec<f64> = Vec::with_capacity(samples);
    for round in 0..samples + 50 {
        let started = Instant::now();
        writer.write_all(request.as_bytes()).unwrap();
        let mut content_length = 0;
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                content_length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body).unwrap();
        // The first 50 warm the path up.
        if round >= 50 {
            times.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

/// Sends `total` requests over `connections` keep-alive connections; returns how many got 200.
fn load(address: SocketAddr, total: usize, connections: usize) -> usize {
    let workers: Vec<_> = (0..connections)
        .map(|worker| {
            std::thread::spawn(move || {
                let count = total / connections + usize::from(worker < total % connections);
                let paths: Vec<String> =
                    (0..count).map(|i| format!("/load/{worker}/{i}")).collect();
                let batch: Vec<(&str, &[(&str, &str)])> =
                    paths.iter().map(|p| (p.as_str(), &[][..])).collect();
                keep_alive_requests(address, &batch).len()
            })
        })
        .collect();
    workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
}
