//! End-to-end tests of `mirrord sandbox`: real namespaces, veths, routes, the pod's DNS server and
//! services, checked from the host and from inside the pod with ordinary tools (curl, nsenter,
//! getent, bash), and what a missing external program does. They need root, iproute2 (what the
//! sandbox itself needs) and, for the checks, util-linux, curl and bash.

use std::{
    io::{self, Read, Write},
    net::{SocketAddr, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::Duration,
};

use serde_json::Value;

const MIRRORD: &str = env!("CARGO_BIN_EXE_mirrord");

/// A sandbox name unique to this test process and call.
fn unique_name(label: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("t{}-{label}{count}", std::process::id() % 1_000_000)
}

fn mirrord(args: &[&str]) -> Output {
    Command::new(MIRRORD).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `program args` and returns its output, whatever the exit status.
fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("could not run {program}: {error}"))
}

/// Runs `command` inside the target's namespaces (`nsenter --target PID <namespaces>`).
fn in_pod(pid: u64, namespaces: &[&str], command: &[&str]) -> Output {
    let pid = pid.to_string();
    let mut args = vec!["--target", pid.as_str()];
    args.extend_from_slice(namespaces);
    args.push("--");
    args.extend_from_slice(command);
    run("nsenter", &args)
}

/// Takes the sandbox down when dropped, so a failing test leaves nothing behind.
struct SandboxGuard {
    name: String,
}

impl SandboxGuard {
    /// `mirrord sandbox up NAME --output json`, asserting success.
    fn up(name: &str) -> (Self, Value) {
        let guard = Self {
            name: name.to_owned(),
        };
        let output = mirrord(&["sandbox", "up", name, "--output", "json"]);
        assert!(
            output.status.success(),
            "up {name} failed: {}",
            text(&output.stderr)
        );
        let info: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(info["name"], name);
        (guard, info)
    }
}

impl Drop for SandboxGuard {
    fn drop(&mut self) {
        let _ = mirrord(&["sandbox", "down", &self.name]);
    }
}

fn field<'a>(info: &'a Value, key: &str) -> &'a str {
    info[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string field {key} in {info}"))
}

fn pids(info: &Value) -> Vec<u64> {
    ["http", "dns", "tcp_echo", "udp_echo"]
        .iter()
        .map(|service| info["pids"][service].as_u64().unwrap())
        .collect()
}

/// Whether `pid` is a live process (zombies count as gone).
fn is_alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
        !state.is_some_and(|rest| rest.starts_with('Z') || rest.starts_with('X'))
    })
}

/// A raw HTTP/1.1 exchange on an open connection: returns the head and the body.
fn http_exchange(stream: &mut TcpStream, path: &str) -> (String, String) {
    write!(stream, "GET {path} HTTP/1.1\r\nhost: sandbox\r\n\r\n").unwrap();
    let mut received = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        let read = stream.read(&mut buffer).unwrap();
        assert!(read > 0, "connection closed early");
        received.extend_from_slice(&buffer[..read]);
        let response = text(&received);
        if let Some((head, body)) = response.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .unwrap()
                .parse()
                .unwrap();
            if body.len() >= length {
                return (head.to_owned(), body.to_owned());
            }
        }
    }
}

/// Whether `error` is the host's answer for a network it has no route to.
fn is_unreachable(error: &io::Error) -> bool {
    const ENETUNREACH: i32 = 101;
    const EHOSTUNREACH: i32 = 113;
    matches!(error.raw_os_error(), Some(ENETUNREACH | EHOSTUNREACH))
}

/// Asserts the host cannot send to `address` (the db namespace) at all: the sandbox's
/// `unreachable` route makes TCP `connect` and UDP `send` fail locally instead of leaving for the
/// host's default gateway.
fn assert_unreachable_from_host(address: SocketAddr) {
    let error = TcpStream::connect_timeout(&address, Duration::from_secs(5))
        .expect_err("the host connected to the db namespace");
    assert!(is_unreachable(&error), "connect to {address}: {error:?}");
    let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
    let error = socket
        .send_to(b"ping", address)
        .expect_err("the host sent a datagram to the db namespace");
    assert!(is_unreachable(&error), "send to {address}: {error:?}");
}

/// The host's `unreachable` routes, as `ip route` prints them.
fn unreachable_routes() -> String {
    text(&run("ip", &["-4", "route", "show", "type", "unreachable"]).stdout)
}

/// Asserts nothing of sandbox `info` is left: processes, namespaces, interface, state.
fn assert_gone(info: &Value) {
    let name = field(info, "name");
    for pid in pids(info) {
        assert!(!is_alive(pid), "process {pid} of {name} is still running");
    }
    let netns = text(&run("ip", &["netns", "list"]).stdout);
    for namespace in [field(info, "netns"), field(info, "db_netns")] {
        assert!(
            !netns
                .lines()
                .any(|line| line.split_whitespace().next() == Some(namespace)),
            "namespace {namespace} is left:\n{netns}"
        );
    }
    let interface = field(info, "host_interface");
    assert!(
        !run("ip", &["link", "show", "dev", interface])
            .status
            .success(),
        "interface {interface} is left"
    );
    let state_dir = field(info, "state_dir");
    assert!(!Path::new(state_dir).exists(), "{state_dir} is left");
    let db_network = field(info, "db_ip").replace(".2", ".0/24");
    let routes = unreachable_routes();
    assert!(
        !routes.contains(&db_network),
        "the route to {db_network} is left:\n{routes}"
    );
}

#[test]
fn sandbox_is_a_pod_reachable_from_the_host_and_down_removes_everything() {
    let name = unique_name("pod");
    let (guard, info) = SandboxGuard::up(&name);
    let pid = info["target_pid"].as_u64().unwrap();
    assert_eq!(field(&info, "target"), format!("pid/{pid}"));
    let sandbox_ip = field(&info, "sandbox_ip");
    let db_ip = field(&info, "db_ip");

    // HTTP from the host, with a real client…
    let curl = run(
        "curl",
        &[
            "-sS",
            "-i",
            "--max-time",
            "5",
            &format!("http://{sandbox_ip}/orders/7?x=1"),
        ],
    );
    assert!(curl.status.success(), "{}", text(&curl.stderr));
    let response = text(&curl.stdout);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains(&format!("x-served-by: sandbox-{name}\r\n")),
        "{response}"
    );
    assert!(
        response.ends_with(&format!("\r\n\r\nsandbox {name}: GET /orders/7?x=1\n")),
        "{response}"
    );
    // …and two requests on one kept-alive connection.
    let mut stream = TcpStream::connect((sandbox_ip, 80)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for path in ["/first", "/second"] {
        let (head, body) = http_exchange(&mut stream, path);
        assert!(head.contains("connection: keep-alive"), "{head}");
        assert_eq!(body, format!("sandbox {name}: GET {path}\n"));
    }

    // Files exist only in the pod's mount namespace.
    let config = in_pod(pid, &["--mount"], &["cat", "/app/config.yaml"]);
    assert!(config.status.success(), "{}", text(&config.stderr));
    assert!(text(&config.stdout).contains(&format!("sandbox: {name}\n")));
    let expected_config = info["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|file| file["path"] == "/app/config.yaml")
        .unwrap()["contents"]
        .as_str()
        .unwrap();
    assert_eq!(text(&config.stdout), expected_config);
    let on_host = std::fs::read_to_string("/app/config.yaml").unwrap_or_default();
    assert!(
        !on_host.contains(&name),
        "the pod's config leaked to the host"
    );
    let through_proc_root = std::fs::read_to_string(format!("/proc/{pid}/root/app/config.yaml"));
    assert_eq!(through_proc_root.unwrap(), expected_config);
    let hostname = in_pod(
        pid,
        &["--mount", "--uts"],
        &["sh", "-c", "hostname; cat /etc/hostname"],
    );
    assert_eq!(text(&hostname.stdout), format!("{name}\n{name}\n"));
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    assert!(
        !host_resolv.contains("search sandbox.svc"),
        "the host's resolv.conf changed"
    );

    // DNS: the pod resolves cluster names through its own server and /etc/hosts; the host cannot.
    for (query, address) in [
        ("db.sandbox.svc", db_ip),
        ("db", db_ip),
        ("api.sandbox.svc", sandbox_ip),
        ("db.sandbox.local", db_ip),
    ] {
        // Over UDP, and over TCP (`use-vc`) for the names the pod's DNS server answers.
        for options in ["timeout:1", "use-vc"] {
            let lookup = in_pod(
                pid,
                &["--net", "--mount"],
                &[
                    "env",
                    &format!("RES_OPTIONS={options}"),
                    "getent",
                    "hosts",
                    query,
                ],
            );
            assert!(
                lookup.status.success(),
                "{query} did not resolve in the pod ({options})"
            );
            assert!(
                text(&lookup.stdout).starts_with(&format!("{address} ")),
                "{query} ({options}): {}",
                text(&lookup.stdout)
            );
        }
    }
    // A name nobody has is NXDOMAIN, answered at once (getent's exit status 2: not found).
    let missing = in_pod(
        pid,
        &["--net", "--mount"],
        &["getent", "hosts", "nobody.sandbox.svc"],
    );
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    let host_lookup = Command::new("getent")
        .args(["hosts", "db.sandbox.svc"])
        .env("RES_OPTIONS", "timeout:1 attempts:1")
        .output()
        .unwrap();
    assert!(
        !host_lookup.status.success(),
        "the host resolved db.sandbox.svc"
    );

    // Echo services answer inside the sandbox only.
    for protocol in ["tcp", "udp"] {
        let script =
            format!("exec 3<>/dev/{protocol}/{db_ip}/7; printf ping-{protocol} >&3; head -c8 <&3");
        let echo = in_pod(pid, &["--net"], &["timeout", "5", "bash", "-c", &script]);
        assert_eq!(
            text(&echo.stdout),
            format!("ping-{protocol}"),
            "{protocol} echo from the pod: {}",
            text(&echo.stderr)
        );
    }
    assert_unreachable_from_host(format!("{db_ip}:7").parse().unwrap());
    let route = text(&run("ip", &["route", "get", db_ip]).stdout);
    assert!(
        !route.contains(field(&info, "host_interface")),
        "the host routes to the db namespace: {route}"
    );

    // Environment: set for the target only, visible through /proc like in a real pod.
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ: Vec<String> = environ
        .split(|byte| *byte == 0)
        .map(text)
        .filter(|entry| !entry.is_empty())
        .collect();
    for entry in [
        format!("MIRRORD_SANDBOX={name}"),
        format!("SANDBOX_GREETING=hello from sandbox {name}"),
        "DATABASE_URL=postgres://db.sandbox.svc:5432/app".to_owned(),
    ] {
        assert!(environ.contains(&entry), "{entry} not in {environ:?}");
    }
    assert!(std::env::var_os("MIRRORD_SANDBOX").is_none());

    // The target runs in its own network, mount, UTS and PID namespaces; in the pod, /proc lists
    // the pod's processes only: the target, pid 1.
    for namespace in ["net", "mnt", "uts", "pid"] {
        let target = std::fs::read_link(format!("/proc/{pid}/ns/{namespace}")).unwrap();
        let own = std::fs::read_link(format!("/proc/self/ns/{namespace}")).unwrap();
        assert_ne!(
            target, own,
            "the target shares the host's {namespace} namespace"
        );
    }

    let proc = in_pod(pid, &["--mount"], &["ls", "/proc"]);
    let pids_in_pod: Vec<String> = text(&proc.stdout)
        .lines()
        .filter(|entry| entry.bytes().all(|byte| byte.is_ascii_digit()))
        .map(str::to_owned)
        .collect();
    assert_eq!(pids_in_pod, ["1"], "{}", text(&proc.stderr));

    // `up` again returns the same sandbox; `list` shows it.
    let (_again, again) = SandboxGuard::up(&name);
    assert_eq!(again, info);
    let list = mirrord(&["sandbox", "list", "--output", "json"]);
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert!(list.as_array().unwrap().iter().any(|entry| entry == &info));

    let down = mirrord(&["sandbox", "down", &name]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    assert_gone(&info);
    let again = mirrord(&["sandbox", "down", &name]);
    assert!(again.status.success(), "down of a missing sandbox failed");
    drop(guard);
}

#[test]
fn two_sandboxes_run_at_once_without_sharing_anything() {
    let names = [unique_name("a"), unique_name("b")];
    let ups: Vec<_> = names
        .iter()
        .map(|name| {
            let name = name.clone();
            thread::spawn(move || SandboxGuard::up(&name))
        })
        .collect();
    let sandboxes: Vec<(SandboxGuard, Value)> =
        ups.into_iter().map(|up| up.join().unwrap()).collect();
    let [(_, first), (_, second)] = &sandboxes[..] else {
        unreachable!()
    };
    for key in [
        "slot",
        "sandbox_ip",
        "db_ip",
        "host_interface",
        "netns",
        "target_pid",
    ] {
        assert_ne!(
            first[key], second[key],
            "both sandboxes have the same {key}"
        );
    }
    for info in [first, second] {
        let curl = run(
            "curl",
            &[
                "-sS",
                "--max-time",
                "5",
                &format!("http://{}/who", field(info, "sandbox_ip")),
            ],
        );
        assert_eq!(
            text(&curl.stdout),
            format!("sandbox {}: GET /who\n", field(info, "name"))
        );
    }
    let infos: Vec<Value> = sandboxes.iter().map(|(_, info)| info.clone()).collect();
    drop(sandboxes);
    for info in &infos {
        assert_gone(info);
    }
}

#[test]
fn bad_sandbox_names_are_usage_errors_that_create_nothing() {
    for name in ["Bad_Name", "abcdefghij0123456789x", "x-", "a.b", "../etc"] {
        let output = mirrord(&["sandbox", "up", name]);
        assert_eq!(output.status.code(), Some(2), "up {name}");
        let stderr = text(&output.stderr);
        assert!(
            stderr.starts_with(&format!("error: invalid sandbox name `{name}`: ")),
            "{stderr}"
        );
        assert!(stderr.contains("help: "), "{stderr}");
        assert!(!Path::new("/run/mirrord/sandbox").join(name).exists());
        let netns = text(&run("ip", &["netns", "list"]).stdout);
        assert!(!netns.contains(&format!("mirrord-sb-{name}")));
    }
}

#[test]
fn help_lists_the_commands_but_not_the_helpers() {
    let help = text(&mirrord(&["sandbox", "--help"]).stdout);
    for command in ["up", "down", "list"] {
        assert!(help.contains(&format!("  {command} ")), "{help}");
    }
    assert!(!help.contains("  serve "), "{help}");
}

#[test]
fn up_rebuilds_a_sandbox_whose_target_died() {
    let name = unique_name("heal");
    let (_guard, info) = SandboxGuard::up(&name);
    let pid = info["target_pid"].as_u64().unwrap();
    assert!(
        run("sh", &["-c", &format!("kill -KILL {pid}")])
            .status
            .success()
    );
    let (_guard, rebuilt) = SandboxGuard::up(&name);
    assert_ne!(rebuilt["target_pid"], info["target_pid"]);
    assert!(!is_alive(pid));
    let curl = run(
        "curl",
        &[
            "-sS",
            "--max-time",
            "5",
            &format!("http://{}/", field(&rebuilt, "sandbox_ip")),
        ],
    );
    assert_eq!(text(&curl.stdout), format!("sandbox {name}: GET /\n"));
}

#[test]
fn down_removes_namespaces_left_without_state() {
    // What a crash in the middle of `up` could leave: namespaces, no state directory.
    let name = unique_name("orphan");
    let _guard = SandboxGuard { name: name.clone() };
    for suffix in ["", "-db"] {
        let namespace = format!("mirrord-sb-{name}{suffix}");
        assert!(run("ip", &["netns", "add", &namespace]).status.success());
    }
    let down = mirrord(&["sandbox", "down", &name]);
    assert!(down.status.success(), "{}", text(&down.stderr));
    let netns = text(&run("ip", &["netns", "list"]).stdout);
    assert!(!netns.contains(&format!("mirrord-sb-{name}")), "{netns}");
}

#[test]
fn up_without_root_says_root_is_needed() {
    // A copy anyone can execute, wherever the build directory is.
    let binary = std::env::temp_dir().join(format!("mirrord-sandbox-test-{}", std::process::id()));
    std::fs::copy(MIRRORD, &binary).unwrap();
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&binary)
        .args(["sandbox", "up", &unique_name("user")])
        .output()
        .unwrap();
    std::fs::remove_file(&binary).unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with("error: sandbox pods need root"),
        "{stderr}"
    );
}

/// `tests/quickstart/without-programs.sh`: runs a command where the given programs are absent.
fn without_programs_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/quickstart/without-programs.sh")
}

#[test]
fn a_missing_program_is_named_at_once_and_nothing_is_made() {
    for (program, package) in mirrord_sandbox::REQUIRED_PROGRAMS {
        let name = unique_name("missing");
        let target = format!("sandbox/{name}");
        for command in [
            vec!["sandbox", "up", name.as_str()],
            vec!["exec", "--target", target.as_str(), "--", "true"],
        ] {
            // `timeout` bounds the wait: were the error late, its status would be 124, not 1.
            let output = Command::new(without_programs_script())
                .args([program, "--", "timeout", "2", MIRRORD])
                .args(&command)
                .output()
                .unwrap();
            let stderr = text(&output.stderr);
            assert_eq!(output.status.code(), Some(1), "{command:?}: {stderr}");
            let errors: Vec<&str> = stderr
                .lines()
                .filter(|line| line.starts_with("error:"))
                .collect();
            assert_eq!(errors.len(), 1, "{command:?}: {stderr}");
            assert!(
                errors[0].ends_with(&format!(
                    "`{program}` was not found on PATH (Debian package `{package}`)"
                )),
                "{command:?}: {stderr}"
            );
            assert_eq!(stderr.lines().last(), Some(errors[0]), "{stderr}");

            let list = text(&mirrord(&["sandbox", "list", "--output", "json"]).stdout);
            assert!(!list.contains(&format!("\"{name}\"")), "{list}");
            let netns = text(&run("ip", &["netns", "list"]).stdout);
            assert!(!netns.contains(&format!("mirrord-sb-{name}")), "{netns}");
            assert!(!Path::new("/run/mirrord/sandbox").join(&name).exists());
        }
    }
}
