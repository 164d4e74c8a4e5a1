//! Outgoing traffic to the target's own localhost and unix sockets, end to end: curl, python and
//! node run under `mirrord exec --target sandbox/NAME`, while two servers with the same address
//! answer with different tags — one inside the pod (its loopback, or its `/run`), one on this
//! machine — so each client's output says which one it reached.
//!
//! Needs root, the sandbox tools, python3, node and curl, and the agent and layer built beside the
//! `mirrord` binary (`cargo build --workspace`).

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{MIRRORD, Sandbox};

/// How long one client may run before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(60);

const POD_TAG: &str = "from-the-pod";
const HOST_TAG: &str = "from-this-machine";

fn repo_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn tagged_server_script() -> String {
    repo_root()
        .join("tests/e2e/tagged_server.py")
        .to_string_lossy()
        .into_owned()
}

/// A sandbox name unique to this test process (sandbox names are at most 20 characters).
fn pod_name(label: &str) -> String {
    format!("og-{label}-{:05}", std::process::id() % 100_000)
}

/// A port of this test process, free on this machine's and the pods' loopbacks.
fn test_port(offset: u16) -> u16 {
    20_000 + (std::process::id() % 20_000) as u16 + offset
}

/// A server started by a test, killed (with its process group) on drop.
struct Server(Child);

impl Server {
    /// Starts `command` and waits for its `ready` line.
    fn start(mut command: Command) -> Server {
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
        let stdout = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let ready = lines.by_ref().map_while(Result::ok).any(|l| l == "ready");
            let _ = ready_tx.send(ready);
            for _ in lines {}
        });
        let server = Server(child);
        assert_eq!(
            ready_rx.recv_timeout(Duration::from_secs(20)),
            Ok(true),
            "{command:?} never said it was ready"
        );
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.wait();
    }
}

/// A tagged TCP server on this machine's `127.0.0.1:port`.
fn host_tcp_server(port: u16, tag: &str) -> Server {
    let mut command = Command::new("python3");
    command.args([
        &tagged_server_script(),
        "tcp",
        "127.0.0.1",
        &port.to_string(),
        tag,
    ]);
    Server::start(command)
}

/// `nsenter` into the pod's network (and, with `mount`, mount) namespace.
fn in_pod(pod: &Sandbox, mount: bool) -> Command {
    let mut command = Command::new("nsenter");
    command
        .arg("--target")
        .arg(pod.target_pid().to_string())
        .arg("--net");
    if mount {
        command.arg("--mount");
    }
    command.arg("--");
    command
}

/// A tagged TCP server on the pod's own `127.0.0.1:port`, run by a process of the pod.
fn pod_tcp_server(pod: &Sandbox, port: u16, tag: &str) -> Server {
    let mut command = in_pod(pod, false);
    command.args([
        "python3",
        &tagged_server_script(),
        "tcp",
        "127.0.0.1",
        &port.to_string(),
        tag,
    ]);
    Server::start(command)
}

/// A finished client: exit status and output.
struct Run {
    what: String,
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "{}\n  success: {}\n  stdout: {}\n  stderr: {}",
            self.what, self.success, self.stdout, self.stderr
        )
    }
}

/// Runs `command` with no stdin, killing it (and failing) after [`RUN_LIMIT`].
fn run(mut command: Command) -> Run {
    let what = format!("{command:?}");
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {what}: {error}"));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let status = status.unwrap_or_else(|| child.wait().unwrap());
    let run = Run {
        what,
        success: status.success(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    assert!(
        Instant::now() <= deadline,
        "killed after {RUN_LIMIT:?}: {}",
        run.describe()
    );
    run
}

/// `mirrord exec --target sandbox/NAME [--config-file CONFIG] -- PROGRAM ARGS…`.
fn exec(pod: &Sandbox, config: Option<&str>, program: &[&str]) -> Run {
    let mut command = Command::new(MIRRORD);
    command.args(["exec", "--target", &format!("sandbox/{}", pod.name)]);
    let config_file = config.map(|config| {
        let path = std::env::temp_dir().join(format!(
            "mirrord-outgoing-test-{}-{}.json",
            std::process::id(),
            pod.name
        ));
        std::fs::write(&path, config).unwrap();
        path
    });
    if let Some(path) = &config_file {
        command.arg("--config-file").arg(path);
    }
    command.arg("--").args(program);
    let run = run(command);
    if let Some(path) = config_file {
        let _ = std::fs::remove_file(path);
    }
    run
}

/// The three HTTP clients: each prints the response body, or `ERR …`.
fn http_clients(url: &str) -> Vec<(&'static str, Vec<String>)> {
    vec![
        (
            "curl",
            ["curl", "-sS", "--max-time", "10", url]
                .map(str::to_owned)
                .to_vec(),
        ),
        (
            "python",
            [
                "python3",
                "-c",
                "import sys, urllib.request\n\
                 try:\n    print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())\n\
                 except Exception as error:\n    print('ERR', error)",
                url,
            ]
            .map(str::to_owned)
            .to_vec(),
        ),
        (
            "node",
            [
                "node",
                "-e",
                "require('http').get(process.argv[1], (response) => { let body = ''; \
                 response.on('data', (chunk) => body += chunk); \
                 response.on('end', () => console.log(body)); })\
                 .on('error', (error) => console.log('ERR ' + error.code));",
                url,
            ]
            .map(str::to_owned)
            .to_vec(),
        ),
    ]
}

fn answer_of(run: &Run) -> &str {
    run.stdout.trim()
}

#[test]
fn loopback_reaches_the_targets_localhost_unless_ignore_localhost() {
    let pod = Sandbox::up(&pod_name("lo"));
    let port = test_port(0);
    let _pod_server = pod_tcp_server(&pod, port, POD_TAG);
    let _host_server = host_tcp_server(port, HOST_TAG);
    let url = format!("http://127.0.0.1:{port}/");
    let ignore = r#"{"feature": {"network": {"outgoing": {"ignore_localhost": true}}}}"#;
    for (client, program) in http_clients(&url) {
        let program: Vec<&str> = program.iter().map(String::as_str).collect();
        let by_default = exec(&pod, None, &program);
        assert_eq!(
            answer_of(&by_default),
            POD_TAG,
            "{client} reaches the pod's own localhost by default: {}",
            by_default.describe()
        );
        let ignored = exec(&pod, Some(ignore), &program);
        assert_eq!(
            answer_of(&ignored),
            HOST_TAG,
            "{client} stays on this machine with ignore_localhost: {}",
            ignored.describe()
        );
    }
}

/// A python program that listens on `127.0.0.1:PORT` (the port the pod's loopback server has
/// too), then connects to itself, and has a child process (its own layer) connect as well.
const TALKS_TO_ITSELF: &str = r#"
import socket, subprocess, sys, threading
port = int(sys.argv[1])
listener = socket.socket()
listener.bind(("127.0.0.1", port))
listener.listen(8)
def answer():
    while True:
        connection, _ = listener.accept()
        with connection:
            connection.recv(4096)
            connection.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nitself")
threading.Thread(target=answer, daemon=True).start()
with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
    client.sendall(b"GET / HTTP/1.0\r\n\r\n")
    print("own:", client.recv(4096).split(b"\r\n\r\n", 1)[-1].decode())
child = subprocess.run(["curl", "-sS", "--max-time", "10", f"http://127.0.0.1:{port}/"],
                       capture_output=True, text=True)
print("child:", child.stdout.strip() or child.stderr.strip())
"#;

#[test]
fn a_program_that_listens_locally_keeps_reaching_itself_and_its_children_reach_it_too() {
    let pod = Sandbox::up(&pod_name("self"));
    let port = test_port(1);
    let _pod_server = pod_tcp_server(&pod, port, POD_TAG);
    // Incoming off: a plain local listener. Incoming mirror (the default): the listener is also
    // subscribed for the target's port.
    for config in [
        r#"{"feature": {"network": {"incoming": "off"}}}"#,
        r#"{"feature": {"network": {"incoming": "mirror"}}}"#,
    ] {
        let run = exec(
            &pod,
            Some(config),
            &["python3", "-c", TALKS_TO_ITSELF, &port.to_string()],
        );
        assert!(
            run.stdout.contains("own: itself") && run.stdout.contains("child: itself"),
            "with {config}: {}",
            run.describe()
        );
    }
}

/// A unix socket path of this test process, used both inside the pod and on this machine.
fn socket_path() -> String {
    format!("/run/mirrord-test-app-{}.sock", std::process::id())
}

/// Clients of the unix socket at `path`: each prints the body or `ERR …`.
fn unix_clients(path: &str) -> Vec<(&'static str, Vec<String>)> {
    vec![
        (
            "curl",
            [
                "curl",
                "-sS",
                "--max-time",
                "10",
                "--unix-socket",
                path,
                "http://app/",
            ]
            .map(str::to_owned)
            .to_vec(),
        ),
        (
            "python",
            [
                "python3",
                "-c",
                "import socket, sys\n\
                 try:\n    s = socket.socket(socket.AF_UNIX)\n    s.settimeout(10)\n    s.connect(sys.argv[1])\n    \
                 s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n    data = b''\n    \
                 while chunk := s.recv(4096):\n        data += chunk\n    \
                 print(data.split(b'\\r\\n\\r\\n', 1)[-1].decode())\n\
                 except Exception as error:\n    print('ERR', error)",
                path,
            ]
            .map(str::to_owned)
            .to_vec(),
        ),
    ]
}

#[test]
fn unix_streams_reach_a_socket_served_inside_the_target_only_when_they_match() {
    let pod = Sandbox::up(&pod_name("unix"));
    let path = socket_path();
    let mut in_pod = in_pod(&pod, true);
    // The pod's mount namespace has its own /tmp, where a clone of this repository may live: give
    // python the script's text rather than its path.
    let script = std::fs::read_to_string(tagged_server_script()).expect("tagged_server.py");
    in_pod.args(["python3", "-c", &script, "unix", &path, POD_TAG]);
    let _pod_server = Server::start(in_pod);
    let mut on_host = Command::new("python3");
    on_host.args([&tagged_server_script(), "unix", &path, HOST_TAG]);
    let _host_server = Server::start(on_host);
    let cleanup = scopeguard_path(&path);

    let matching = format!(
        r#"{{"feature": {{"network": {{"outgoing": {{"unix_streams": "^/run/mirrord-test-app-{}\\.sock$"}}}}}}}}"#,
        std::process::id()
    );
    let other =
        r#"{"feature": {"network": {"outgoing": {"unix_streams": ["^/var/run/docker\\.sock$"]}}}}"#;
    for (client, program) in unix_clients(&path) {
        let program: Vec<&str> = program.iter().map(String::as_str).collect();
        let matched = exec(&pod, Some(&matching), &program);
        assert_eq!(
            answer_of(&matched),
            POD_TAG,
            "{client} reaches the pod's socket when unix_streams matches: {}",
            matched.describe()
        );
        for config in [None, Some(other)] {
            let local = exec(&pod, config, &program);
            assert_eq!(
                answer_of(&local),
                HOST_TAG,
                "{client} stays local with {config:?}: {}",
                local.describe()
            );
        }
    }
    drop(cleanup);
}

/// Removes this machine's copy of the socket file when dropped.
struct RemoveOnDrop(String);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn scopeguard_path(path: &str) -> RemoveOnDrop {
    RemoveOnDrop(path.to_owned())
}
