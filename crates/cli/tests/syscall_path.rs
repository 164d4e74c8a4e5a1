//! Acceptance tests of the system-call path: Go programs (built both ways from
//! `tests/e2e/go/probe.go` with this machine's Go) and static C programs (`gcc -static`) run under
//! `mirrord exec --target sandbox/NAME` and print what they see; the tests compare it with what the
//! pod holds.
//!
//! Needs root, the sandbox tools, Go and gcc with static libc (`.ci/run` checks for them), and the
//! agent built beside `mirrord` (`cargo build --workspace`). Go's build cache lives outside the
//! clone, under `/var/cache/mirrord-ci/go-build`, so only the first run on a machine compiles the
//! standard library.

use std::{
    io::Read,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

mod support;

use support::{
    GroupLeader, MIRRORD,
    e2e::{
        Pod, RUN_LIMIT, Run, build_go_probe, build_static_c, repo_root, run_bounded,
        spawn_until_ready,
    },
};

const PATH_LINE: &str = "takes the system-call path (seccomp user notification)";

fn scratch_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("syscall-path");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The Go probe, built once per test process: `static_build` with `CGO_ENABLED=0`.
fn go_probe(static_build: bool) -> &'static Path {
    static DYNAMIC: OnceLock<PathBuf> = OnceLock::new();
    static STATIC: OnceLock<PathBuf> = OnceLock::new();
    let (cell, name) = if static_build {
        (&STATIC, "go-probe-static")
    } else {
        (&DYNAMIC, "go-probe-dynamic")
    };
    cell.get_or_init(|| {
        let output = scratch_dir().join(name);
        build_go_probe(&output, static_build);
        output
    })
}

/// A C program from `tests/e2e/SOURCE`, linked statically.
fn static_c(name: &str, source: &str) -> PathBuf {
    let output = scratch_dir().join(name);
    build_static_c(&output, source);
    output
}

impl Pod {
    /// `mirrord sandbox up sc-LABEL-NNN`.
    fn up(label: &str) -> Self {
        Self::up_as("sc", label)
    }

    fn greeting(&self) -> String {
        format!("hello from sandbox {}", self.name)
    }

    /// `mirrord exec --target sandbox/NAME FLAGS -- PROGRAM ARGUMENTS`, bounded.
    fn exec_program(&self, flags: &[&str], program: &Path, arguments: &[&str]) -> Run {
        let mut command = vec![program.to_str().unwrap()];
        command.extend_from_slice(arguments);
        self.exec(flags, &command)
    }
}

/// The pod's files, directories and environment, seen by one Go build.
fn go_sees_the_pod(static_build: bool, label: &str, reason: &str) {
    assert!(
        !Path::new("/app/config.yaml").exists(),
        "this machine has /app/config.yaml"
    );
    let pod = Pod::up(label);
    let run = pod.exec_program(
        &[],
        go_probe(static_build),
        &[
            "file:/app/config.yaml",
            "file:/app/data/greeting.txt",
            "dir:/app",
            "dir:/app/data",
            "stat:/app/data",
            "env:SANDBOX_GREETING",
        ],
    );
    assert!(run.status.success(), "{}", run.describe());
    assert!(
        run.stderr.contains(PATH_LINE) && run.stderr.contains(reason),
        "mirrord says the program takes the system-call path because {reason}: {}",
        run.describe()
    );
    run.expect("file /app/config.yaml", pod.first_line("/app/config.yaml"));
    run.expect("file /app/data/greeting.txt", &pod.greeting());
    run.expect("dir /app", "README.txt,config.yaml,data");
    run.expect("dir /app/data", "greeting.txt");
    assert!(
        run.value("stat /app/data")
            .is_some_and(|line| line.ends_with(" dir")),
        "{}",
        run.describe()
    );
    run.expect("env SANDBOX_GREETING", &pod.greeting());
}

#[test]
fn a_dynamically_linked_go_program_reads_the_pods_files_and_directories_and_sees_its_env() {
    go_sees_the_pod(false, "godyn", "it is a Go program");
}

#[test]
fn a_static_go_program_reads_the_pods_files_and_directories_and_sees_its_env() {
    go_sees_the_pod(true, "gostat", "statically linked Go program");
}

#[test]
fn go_fs_modes_and_patterns_decide_as_for_the_layer() {
    let pod = Pod::up("gomode");
    let probe = go_probe(true);

    let local = pod.exec_program(&["--fs-mode", "local"], probe, &["file:/app/config.yaml"]);
    local.expect("file /app/config.yaml", "ERR ENOENT");

    let config = scratch_dir().join(format!("local-pattern-{}.json", std::process::id()));
    std::fs::write(
        &config,
        r#"{ "feature": { "fs": { "mode": "read", "local": ["^/app/config\\.yaml$"] } } }"#,
    )
    .unwrap();
    let pattern = pod.exec_program(
        &["--config-file", config.to_str().unwrap()],
        probe,
        &["file:/app/config.yaml", "file:/app/data/greeting.txt"],
    );
    pattern.expect("file /app/config.yaml", "ERR ENOENT");
    pattern.expect("file /app/data/greeting.txt", &pod.greeting());
    let _ = std::fs::remove_file(&config);

    let absent = || {
        !pod.in_mount_namespace("test -e /app/go-written")
            .status
            .success()
    };
    assert!(absent());
    let read_mode = pod.exec_program(
        &["--fs-mode", "read"],
        probe,
        &["write:/app/go-written=in read mode"],
    );
    assert!(
        read_mode.value("write /app/go-written").is_some(),
        "{}",
        read_mode.describe()
    );
    assert!(
        absent(),
        "a write in read mode reached the pod: {}",
        read_mode.describe()
    );

    let write_mode = pod.exec_program(
        &["--fs-mode", "write"],
        probe,
        &[
            "write:/app/go-written=through mirrord",
            "file:/app/go-written",
        ],
    );
    write_mode.expect("write /app/go-written", "ok");
    write_mode.expect("file /app/go-written", "through mirrord");
    let in_pod = pod.in_mount_namespace("cat /app/go-written");
    assert_eq!(in_pod.stdout, "through mirrord", "{}", in_pod.describe());
}

#[test]
fn a_static_c_program_reads_a_pod_file() {
    let pod = Pod::up("cstat");
    let probe = static_c("c-probe-static", "probe.c");
    let run = pod.exec_program(
        &[],
        &probe,
        &["file:/app/config.yaml", "env:SANDBOX_GREETING"],
    );
    assert!(
        run.stderr.contains(PATH_LINE) && run.stderr.contains("statically linked"),
        "{}",
        run.describe()
    );
    run.expect("file /app/config.yaml", pod.first_line("/app/config.yaml"));
    run.expect("env SANDBOX_GREETING", &pod.greeting());
}

#[test]
fn go_resolves_pod_names_and_reaches_pod_only_services_both_builds() {
    let pod = Pod::up("gonet");
    let db_ip = pod.info["db_ip"].as_str().unwrap().to_owned();
    for static_build in [false, true] {
        let run = pod.exec_program(
            &[],
            go_probe(static_build),
            &[
                "dns:db.sandbox.svc",
                "tcp:db.sandbox.svc:7",
                "udp:db.sandbox.svc:7",
                "http:http://api.sandbox.svc/",
                "hostname",
            ],
        );
        run.expect("dns db.sandbox.svc", &db_ip);
        run.expect("tcp db.sandbox.svc:7", "mirrord-e2e-ping");
        run.expect("udp db.sandbox.svc:7", "mirrord-e2e-ping");
        run.expect(
            "http http://api.sandbox.svc/",
            &format!("200 sandbox {}: GET /", pod.name),
        );
        run.expect("hostname", &pod.name);
    }
}

#[test]
fn datagrams_sent_with_an_address_from_unconnected_sockets_reach_pod_only_services() {
    let pod = Pod::up("udpto");
    let db_ip = pod.info["db_ip"].as_str().unwrap().to_owned();
    for static_build in [false, true] {
        let run = pod.exec_program(
            &[],
            go_probe(static_build),
            &["udpto:db.sandbox.svc:7", "udpmsgctl:db.sandbox.svc:7"],
        );
        run.expect("udpto db.sandbox.svc:7", "mirrord-e2e-ping");
        // WriteMsgUDP with a control message, as QUIC stacks send.
        run.expect("udpmsgctl db.sandbox.svc:7", "mirrord-e2e-ping");
    }
    let probe = static_c("c-probe-udpto", "probe.c");
    let to = format!("{db_ip}:7");
    // sendto, sendmsg (also with a control message) and sendmmsg (two datagrams, both sent).
    let sends = ["udpto", "udpmsg", "udpmsgctl", "udpmmsg"];
    let checks: Vec<String> = sends.iter().map(|send| format!("{send}:{to}")).collect();
    let checks: Vec<&str> = checks.iter().map(String::as_str).collect();
    let run = pod.exec_program(&[], &probe, &checks);
    for send in sends {
        run.expect(&format!("{send} {to}"), "mirrord-e2e-ping");
    }
}

#[test]
fn a_static_c_program_connects_to_the_pod_only_echo_service() {
    let pod = Pod::up("cnet");
    let db_ip = pod.info["db_ip"].as_str().unwrap().to_owned();
    let probe = static_c("c-probe-net", "probe.c");
    let check = format!("tcp:{db_ip}:7");
    let run = pod.exec_program(&[], &probe, &[&check, "hostname"]);
    run.expect(&format!("tcp {db_ip}:7"), "mirrord-e2e-ping");
    run.expect("hostname", &pod.name);
}

#[test]
fn two_hundred_goroutines_reading_different_pod_files_each_get_their_own() {
    let pod = Pod::up("gomany");
    let made = pod.in_mount_namespace(
        "mkdir -p /app/many && i=0; while [ $i -lt 200 ]; do echo \"file $i\" > /app/many/file-$i.txt; i=$((i+1)); done",
    );
    assert!(made.status.success(), "{}", made.describe());
    let run = pod.exec_program(&[], go_probe(true), &["many", "200", "/app/many"]);
    run.expect("many", "ok");
}

/// The supervisor's workers take turns at the kernel's queue of stopped calls (one waits in it at
/// a time); a call the supervisor itself waits on must hand that turn on, or the program's next
/// call is never served. Here the two opens of a FIFO (which `fs.mapping` sends to this machine,
/// so the supervisor makes them) wait for each other.
#[test]
fn two_threads_opening_a_mapped_fifo_from_both_ends_are_both_served() {
    let pod = Pod::up("fifo");
    let program = static_c("fifo-pair", "fifo_pair.c");
    let fifo = scratch_dir().join(format!("fifo-{}", std::process::id()));
    let _ = std::fs::remove_file(&fifo);
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo {}", fifo.display());
    let config = scratch_dir().join(format!("fifo-{}.json", std::process::id()));
    std::fs::write(
        &config,
        format!(
            r#"{{ "feature": {{ "fs": {{ "mode": "read", "mapping": {{ "^/app/pipe$": "{fifo}" }}, "local": ["^{fifo}$"] }} }} }}"#,
            fifo = fifo.display()
        ),
    )
    .unwrap();
    let run = pod.exec_program(
        &["--config-file", config.to_str().unwrap()],
        &program,
        &["/app/pipe"],
    );
    run.expect("fifo /app/pipe", "through the fifo");
    let _ = std::fs::remove_file(&config);
    let _ = std::fs::remove_file(&fifo);
}

#[test]
fn children_started_with_os_exec_keep_the_view() {
    let pod = Pod::up("goexec");
    let cat = pod.exec_program(&[], go_probe(true), &["exec", "cat", "/app/config.yaml"]);
    assert!(
        cat.stdout.starts_with(pod.first_line("/app/config.yaml")),
        "cat, started by the Go program, reads the pod's file: {}",
        cat.describe()
    );
    let static_child = static_c("c-probe-child", "probe.c");
    let child = pod.exec_program(
        &[],
        go_probe(false),
        &[
            "exec",
            static_child.to_str().unwrap(),
            "file:/app/config.yaml",
        ],
    );
    child.expect("file /app/config.yaml", pod.first_line("/app/config.yaml"));
}

#[test]
fn a_program_installing_its_own_seccomp_filter_afterwards_still_sees_the_pod() {
    let pod = Pod::up("ownflt");
    let program = static_c("own-filter", "own_filter.c");
    let run = pod.exec_program(&[], &program, &["/app/config.yaml"]);
    run.expect("filter", "installed");
    run.expect("mkdir", "ERR EPERM");
    run.expect("file /app/config.yaml", pod.first_line("/app/config.yaml"));
}

/// A Go HTTP server started under mirrord in the background; killed (with its group) on drop.
/// `lines` has what it prints after `serving` (one `request /peer from ADDRESS` per `/peer`).
struct Server {
    _group: GroupLeader,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Server {
    /// The next line the server prints, waiting at most 20 s.
    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|error| panic!("the Go server printed nothing more: {error}"))
    }
}

/// A TCP port nothing listens on now (the kernel's pick, released again).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Pod {
    /// Starts `probe serve ADDRESS` under mirrord with `config`, once it listens.
    fn serve(&self, config: &Path, address: &str) -> Server {
        let command = self.exec_command(
            &["--config-file", config.to_str().unwrap()],
            &[go_probe(true).to_str().unwrap(), "serve", address],
        );
        let (group, lines) = spawn_until_ready(command, "serving");
        Server {
            _group: group,
            lines,
        }
    }

    /// One HTTP/1.1 GET of `path` to `address` with `headers`: the client's own address and the
    /// response body.
    fn get_from(address: &str, path: &str, headers: &[(&str, &str)]) -> (SocketAddr, String) {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut request = format!("GET {path} HTTP/1.1\r\nhost: sandbox\r\nconnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or(response);
        (stream.local_addr().unwrap(), body)
    }

    /// One HTTP/1.1 GET /hello to the pod's port 80 with `headers`; the response body.
    fn get(&self, headers: &[(&str, &str)]) -> String {
        Self::get_from(&self.port_80(), "/hello", headers).1
    }

    fn port_80(&self) -> String {
        format!("{}:80", self.info["sandbox_ip"].as_str().unwrap())
    }
}

/// A config receiving the pod's port 80 in `mode` (`port_mapping` from local `port`), with
/// `extra` incoming keys.
fn incoming_config(label: &str, mode: &str, port: u16, extra: &str) -> PathBuf {
    support::e2e::incoming_config(&scratch_dir(), label, mode, port, extra)
}

/// A config stealing the pod's port 80 into local `port`, with `extra` incoming keys.
fn steal_config(label: &str, port: u16, extra: &str) -> PathBuf {
    incoming_config(label, "steal", port, extra)
}

#[test]
fn a_go_http_server_under_steal_answers_the_requests_sent_to_the_pod() {
    let pod = Pod::up("gosteal");
    let port = free_port();
    let pod_answer = format!("sandbox {}: GET /hello\n", pod.name);
    assert_eq!(
        pod.get(&[]),
        pod_answer,
        "the pod's own service answers first"
    );
    let config = steal_config("steal", port, "");
    let _server = pod.serve(&config, &format!("127.0.0.1:{port}"));
    assert_eq!(pod.get(&[]), "go server: GET /hello\n");
    let _ = std::fs::remove_file(&config);
}

#[test]
fn a_go_http_server_under_steal_with_a_header_filter_answers_only_matching_requests() {
    let pod = Pod::up("gofilter");
    let port = free_port();
    let pod_answer = format!("sandbox {}: GET /hello\n", pod.name);
    let config = steal_config(
        "filter",
        port,
        r#", "http_filter": { "header_filter": "^x-mirrord-test: go$" }"#,
    );
    let _server = pod.serve(&config, &format!("127.0.0.1:{port}"));
    assert_eq!(
        pod.get(&[("x-mirrord-test", "go")]),
        "go server: GET /hello\n"
    );
    assert_eq!(pod.get(&[("x-mirrord-test", "other")]), pod_answer);
    let _ = std::fs::remove_file(&config);
}

#[test]
fn a_go_server_sees_the_real_peer_of_stolen_and_mirrored_connections() {
    let pod = Pod::up("gopeer");
    for mode in ["steal", "mirror"] {
        let port = free_port();
        let config = incoming_config(&format!("peer-{mode}"), mode, port, "");
        let server = pod.serve(&config, &format!("127.0.0.1:{port}"));
        let (client, body) = Pod::get_from(&pod.port_80(), "/peer", &[]);
        if mode == "steal" {
            assert_eq!(body, "go server: GET /peer\n");
        } else {
            assert_eq!(body, format!("sandbox {}: GET /peer\n", pod.name));
        }
        assert_eq!(
            server.next_line(),
            format!("request /peer from {client}"),
            "{mode}: the Go server's RemoteAddr is the client that reached the pod"
        );
        let _ = std::fs::remove_file(&config);
    }
}

#[test]
fn a_go_server_stealing_from_a_local_target_holds_the_pods_own_connection() {
    let pod = Pod::up("gohand");
    let pod_ip = pod.info["sandbox_ip"].as_str().unwrap().to_owned();
    // With the agent's descriptor socket the stolen connection is handed over: the server's end
    // is the pod's; without it (`fs.native_fds` off) the intproxy relays it over loopback.
    for (label, feature, local_ip) in [
        ("handover", "", pod_ip.as_str()),
        ("relayed", r#""fs": { "native_fds": false }, "#, "127.0.0.1"),
    ] {
        let port = free_port();
        let config = scratch_dir().join(format!("hand-{label}-{}.json", std::process::id()));
        std::fs::write(
            &config,
            format!(
                r#"{{ "feature": {{ {feature}"network": {{ "incoming": {{ "mode": "steal", "port_mapping": [[{port}, 80]] }} }} }} }}"#
            ),
        )
        .unwrap();
        let server = pod.serve(&config, &format!("127.0.0.1:{port}"));
        for round in 0..3 {
            let (client, body) = Pod::get_from(&pod.port_80(), "/local", &[]);
            assert_eq!(body, "go server: GET /local\n", "{label}, request {round}");
            let line = server.next_line();
            let local = line
                .strip_prefix("request /local at ")
                .unwrap_or_else(|| panic!("{label}: unexpected line {line:?}"));
            let local: SocketAddr = local.parse().unwrap();
            assert_eq!(
                local.ip().to_string(),
                local_ip,
                "{label}: the server's end of the connection from {client}"
            );
        }
        let _ = std::fs::remove_file(&config);
    }
}

#[test]
fn listen_ports_moves_a_go_servers_local_port_and_the_pods_port_still_reaches_it() {
    let pod = Pod::up("golport");
    let port = free_port();
    let config = scratch_dir().join(format!("listen-ports-{}.json", std::process::id()));
    std::fs::write(
        &config,
        format!(
            r#"{{ "feature": {{ "network": {{ "incoming": {{ "mode": "steal", "listen_ports": [[80, {port}]] }} }} }} }}"#
        ),
    )
    .unwrap();
    let _server = pod.serve(&config, "127.0.0.1:80");
    assert_eq!(pod.get(&[]), "go server: GET /hello\n");
    let (_, direct) = Pod::get_from(&format!("127.0.0.1:{port}"), "/hello", &[]);
    assert_eq!(
        direct, "go server: GET /hello\n",
        "the server really listens on the listen_ports port"
    );
    let _ = std::fs::remove_file(&config);
}

#[test]
fn a_program_for_another_machine_gets_one_clear_error_and_exit_status_1() {
    let program = scratch_dir().join(format!("aarch64-program-{}", std::process::id()));
    let mut header = vec![0u8; 64];
    header[..4].copy_from_slice(b"\x7fELF");
    header[4] = 2;
    header[5] = 1;
    header[18..20].copy_from_slice(&183u16.to_le_bytes());
    std::fs::write(&program, header).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = Command::new(MIRRORD);
    command
        .args(["exec", "--target", "targetless", "--"])
        .arg(&program);
    let run = run_bounded(command, RUN_LIMIT);
    let _ = std::fs::remove_file(&program);
    assert_eq!(run.status.code(), Some(1), "{}", run.describe());
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|line| line.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", run.describe());
    assert!(
        errors[0].contains("aarch64") && errors[0].contains("x86_64"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_go_program_against_a_kubernetes_target_reads_the_pods_files_and_env() {
    use mirrord_test_cluster::{Backing, Cluster, ClusterOptions};
    let sandbox = support::Sandbox::up(&format!("sc-kube-{:03}", std::process::id() % 1000));
    // A real control plane whose `api` Deployment's pod is backed by the sandbox pod.
    let cluster = Cluster::start(ClusterOptions::default());
    cluster.create_workloads(Backing::Sandbox(&sandbox.name), false);
    let mut command = Command::new(MIRRORD);
    command
        .args(["exec", "--target", "deployment/api", "--"])
        .arg(go_probe(true))
        .args([
            "file:/app/data/greeting.txt",
            "dir:/app",
            "env:SANDBOX_GREETING",
        ])
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env_remove("MIRRORD_CONFIG_FILE")
        .current_dir(cluster.dir());
    let run = run_bounded(command, RUN_LIMIT);
    let greeting = sandbox.info["env"]["SANDBOX_GREETING"].as_str().unwrap();
    assert!(
        run.stderr.contains(PATH_LINE),
        "{}\ncluster:\n{}",
        run.describe(),
        cluster.logs()
    );
    run.expect("file /app/data/greeting.txt", greeting);
    run.expect("dir /app", "README.txt,config.yaml,data");
    run.expect("env SANDBOX_GREETING", greeting);
}

/// A tagged HTTP server on the unix socket `path` inside the pod's mount namespace, run by a
/// process of the pod (`tests/e2e/tagged_server.py`, given as text: the pod has its own `/tmp`).
fn pod_unix_server(pod: &Pod, path: &str, tag: &str) -> GroupLeader {
    let script = std::fs::read_to_string(repo_root().join("tests/e2e/tagged_server.py")).unwrap();
    let mut command = Command::new("nsenter");
    command
        .args([
            "--target",
            &pod.target_pid().to_string(),
            "--net",
            "--mount",
        ])
        .args(["--", "python3", "-c", &script, "unix", path, tag]);
    spawn_until_ready(command, "ready").0
}

#[test]
fn go_dials_the_pods_unix_socket_when_unix_streams_matches_both_builds() {
    let pod = Pod::up("gounix");
    let id = std::process::id();
    let served = format!("/run/mirrord-go-app-{id}.sock");
    let missing = format!("/run/mirrord-go-missing-{id}.sock");
    let _server = pod_unix_server(&pod, &served, "from-the-pod");
    assert!(!Path::new(&served).exists(), "this machine has {served}");
    let config = scratch_dir().join(format!("unix-{id}.json"));
    std::fs::write(
        &config,
        format!(
            r#"{{ "feature": {{ "network": {{ "outgoing": {{ "unix_streams": "^/run/mirrord-go-(app|missing)-{id}\\.sock$" }} }} }} }}"#
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let served_check = format!("unix:{served}");
    let missing_check = format!("unix:{missing}");
    for static_build in [false, true] {
        let run = pod.exec_program(
            &["--config-file", config],
            go_probe(static_build),
            &[&served_check, &missing_check],
        );
        run.expect(&format!("unix {served}"), "from-the-pod");
        // Matched, but nothing is there in the pod: the connect fails, it does not hang.
        run.expect(&format!("unix {missing}"), "ERR ENOENT");
        // Without `unix_streams` the path is this machine's, where nothing is.
        let local = pod.exec_program(&[], go_probe(static_build), &[&served_check]);
        local.expect(&format!("unix {served}"), "ERR ENOENT");
    }
}
