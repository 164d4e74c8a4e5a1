//! Acceptance tests of the system-call path's addresses: what a static C server's blocking
//! `accept`/`accept4` and `getpeername` report about a client that connected to the pod (under
//! steal and mirror), and the source that `recvfrom`/`ReadFrom` report for the answer to a
//! datagram sent from an unconnected socket to a pod-only service (Go both builds, static C).
//!
//! Needs root, the sandbox tools, Go, gcc with static libc and python3 (the client in the
//! sandbox's second network namespace, "another service of the cluster").

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

mod support;

use support::e2e::{
    Pod, RUN_LIMIT, build_go_probe, build_static_c, incoming_config, run_bounded, spawn_until_ready,
};

/// x86_64's numbers of `accept` and `accept4`.
const SYS_ACCEPT: i64 = 43;
const SYS_ACCEPT4: i64 = 288;

fn scratch_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("syscall-peer");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A C program from `tests/e2e/SOURCE`, linked statically.
fn static_c(name: &str, source: &str) -> PathBuf {
    let output = scratch_dir().join(name);
    build_static_c(&output, source);
    output
}

/// A TCP port nothing listens on now (the kernel's pick, released again).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (at most 20 s) until process `pid` is in system call `number` (`/proc/PID/syscall`):
/// there, or parked for the supervisor in it.
fn wait_in_system_call(pid: &str, number: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let current = || std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
    while !current().starts_with(&format!("{number} ")) {
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} never entered system call {number}: {}",
            current()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP/1.1 GET of /peer to the pod's port 80 from the sandbox's second network namespace:
/// the client's own address and what came back.
fn get_from_second_namespace(pod: &Pod) -> (String, String) {
    const CLIENT: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], 80), timeout=10)
print("%s:%d" % s.getsockname())
s.sendall(b"GET /peer HTTP/1.1\r\nhost: sandbox\r\nconnection: close\r\n\r\n")
answer = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    answer += chunk
print(answer.decode(errors="replace").split("\r\n\r\n", 1)[-1], end="")
"#;
    let mut client = Command::new("ip");
    client
        .args([
            "netns",
            "exec",
            pod.field("db_netns"),
            "python3",
            "-c",
            CLIENT,
        ])
        .arg(pod.field("sandbox_ip"));
    let run = run_bounded(client, RUN_LIMIT);
    run.assert_success();
    let (address, answer) = run.stdout.split_once('\n').unwrap();
    (address.to_owned(), answer.to_owned())
}

#[test]
fn a_static_c_servers_blocking_accept_and_getpeername_see_the_client_that_reached_the_pod() {
    let pod = Pod::up_as("sp", "caccept");
    let server_program = static_c("accept-server", "accept_server.c");
    for mode in ["steal", "mirror"] {
        let port = free_port();
        let config = incoming_config(&scratch_dir(), &format!("accept-{mode}"), mode, port, "");
        let command = pod.exec_command(
            &["--config-file", config.to_str().unwrap()],
            &[
                server_program.to_str().unwrap(),
                "127.0.0.1",
                &port.to_string(),
            ],
        );
        let (mut server, lines) = spawn_until_ready(command, "serving");
        let next_line = || {
            lines
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|error| {
                    panic!("{mode}: the C server printed nothing more: {error}")
                })
        };
        let pid = next_line();
        let pid = pid.strip_prefix("pid ").unwrap_or_else(|| panic!("{pid}"));
        for call in ["accept", "accept4"] {
            let (client, answer) = get_from_second_namespace(&pod);
            assert!(
                client.starts_with(pod.field("db_ip")),
                "the client is in the second namespace: {client}"
            );
            if mode == "steal" {
                assert_eq!(answer, "c server\n");
            } else {
                assert_eq!(answer, format!("sandbox {}: GET /peer\n", pod.name));
            }
            assert_eq!(
                next_line(),
                format!("{call} from {client}"),
                "{mode}: {call} wrote the address of the client that reached the pod"
            );
            assert_eq!(
                next_line(),
                format!("getpeername {client}"),
                "{mode}: getpeername after {call}"
            );
            if call == "accept" && mode == "steal" {
                // The server waits in accept4 now: a signal with a handler (no SA_RESTART)
                // interrupts it as it would without mirrord.
                wait_in_system_call(pid, SYS_ACCEPT4);
                let signal = Command::new("kill").args(["-USR1", pid]).status().unwrap();
                assert!(signal.success());
                assert_eq!(next_line(), "accept: ERR EINTR", "{mode}: SIGUSR1");
            }
        }
        // A server blocked in accept still ends on SIGTERM, and mirrord with it.
        wait_in_system_call(pid, SYS_ACCEPT);
        let terminate = Command::new("kill").args(["-TERM", pid]).status().unwrap();
        assert!(terminate.success());
        let exited = support::e2e::wait_until(
            &mut server.0,
            std::time::Instant::now() + Duration::from_secs(20),
        );
        assert_eq!(
            exited.and_then(|status| status.code()),
            Some(128 + 15),
            "{mode}: mirrord exec ends with the server's SIGTERM"
        );
        let _ = std::fs::remove_file(&config);
    }
}

/// Read with `recvfrom` (Go's `ReadFrom`), `recvmsg` (Go's `ReadMsgUDP`; C with two buffers and
/// an `IP_PKTINFO` control message) or `recvmmsg`, the answer's source is the pod-only service,
/// not the relay.
#[test]
fn the_answer_to_a_datagram_from_an_unconnected_socket_comes_from_the_pod_only_service() {
    let pod = Pod::up_as("sp", "udpfrom");
    let db_ip = pod.field("db_ip").to_owned();
    for static_build in [false, true] {
        let probe = scratch_dir().join(if static_build {
            "go-probe-static"
        } else {
            "go-probe-dynamic"
        });
        build_go_probe(&probe, static_build);
        let run = pod.exec(
            &[],
            &[
                probe.to_str().unwrap(),
                "udpfrom:db.sandbox.svc:7",
                "udpmsgfrom:db.sandbox.svc:7",
            ],
        );
        for read in ["udpfrom", "udpmsgfrom"] {
            run.expect(
                &format!("{read} db.sandbox.svc:7"),
                &format!("mirrord-e2e-ping from {db_ip}:7"),
            );
        }
    }
    let probe = static_c("c-probe-udpfrom", "probe.c");
    let to = format!("{db_ip}:7");
    let run = pod.exec(
        &[],
        &[
            probe.to_str().unwrap(),
            &format!("udpfrom:{to}"),
            &format!("udprecvmsg:{to}"),
            &format!("udprecvmmsg:{to}"),
        ],
    );
    run.expect(
        &format!("udpfrom {to}"),
        &format!("mirrord-e2e-ping from {to}"),
    );
    run.expect(
        &format!("udprecvmsg {to}"),
        &format!("mirrord-e2e-ping from {to} with pktinfo"),
    );
    run.expect(
        &format!("udprecvmmsg {to}"),
        &format!("mirrord-e2e-ping from {to}"),
    );
}
