//! Acceptance tests of the core runtime, end to end: real programs (python3, node, curl, a C
//! program, java) run under `mirrord exec --target sandbox/NAME` and print, one line per check,
//! what they see (`tests/e2e/probe.*`); the tests compare that with what the sandbox pod holds.
//! A few tests talk to `mirrord-agent` directly with the protocol crate (authentication, the
//! target's root).
//!
//! Needs root, the sandbox tools (see `tests/sandbox.rs`), python3, node, curl, cc, java, and the
//! agent and layer built beside the `mirrord` binary: run `cargo build --workspace` first (plain
//! `cargo test -p mirrord-cli` builds neither).
//!
//! Every test has its own sandbox, taken down by a guard even when the test fails; the guard
//! also kills whatever the test started through mirrord (found by a marker variable in their
//! environment). Every child process is killed after a time limit, so a bug never hangs CI.

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpStream},
    os::{
        linux::net::SocketAddrExt,
        unix::{
            net::{SocketAddr as UnixAddr, UnixStream},
            process::CommandExt,
        },
    },
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{OnceLock, mpsc},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use mirrord_protocol::{
    AgentRequest, AgentResponse, AgentToClient, ClientKind, ClientToAgent, Hello, HelloReply,
    RemoteError, RemoteResult, RequestId, SessionToken,
    fd_channel::{FdReply, FdRequest},
    files::{FileRequest, FileResponse, OpenFlags},
    read_frame, write_frame,
};
use serde_json::{Value, json};

mod support;

use support::{
    MIRRORD,
    e2e::{
        MARKER_ENV, Pod, RUN_LIMIT, Run, collect, indent, kill_group, kill_pid, repo_root, run,
        run_bounded, wait_until,
    },
};

/// What the probes send to the echo services.
const ECHO_PAYLOAD: &str = "mirrord-e2e-ping";

/// The checks every probe runs to show it sees the target: a file only the pod has, an env var
/// only the pod has, a name only the pod resolves, the pod-only TCP and UDP echo, the hostname.
const TARGET_CHECKS: &[&str] = &[
    "file:/app/config.yaml",
    "env:SANDBOX_GREETING",
    "dns:db.sandbox.svc",
    "tcp:db.sandbox.svc:7",
    "udp:db.sandbox.svc:7",
    "hostname",
];

// ---------------------------------------------------------------------------------------------
// Running programs, bounded.

/// A file next to the `mirrord` binary, which must have been built.
fn built(file_name: &str) -> PathBuf {
    let path = Path::new(MIRRORD).with_file_name(file_name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` before these tests",
        path.display()
    );
    path
}

/// A probe program in `tests/e2e/`.
fn probe(file_name: &str) -> String {
    repo_root()
        .join("tests/e2e")
        .join(file_name)
        .to_string_lossy()
        .into_owned()
}

/// The real python3 interpreter (not a version manager's shim script), found once.
fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let found = run(
            "python3",
            &[
                "-c",
                "import os, sys; print(os.path.realpath(sys.executable))",
            ],
        );
        found.assert_success();
        found.stdout.trim().to_owned()
    })
}

fn unix_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A directory for one test's files, removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Under the build directory, which the sandbox pods see too.
    fn new(label: &str) -> Self {
        Self::under(Path::new(env!("CARGO_TARGET_TMPDIR")), label)
    }

    /// Under this machine's `/tmp`, which the pods do not see (each has its own `/tmp`).
    fn host_only(label: &str) -> Self {
        Self::under(&std::env::temp_dir(), label)
    }

    fn under(base: &Path, label: &str) -> Self {
        let path = base.join(format!("mirrord-e2e-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Escapes `text` for use inside a regular expression.
fn regex_escape(text: &str) -> String {
    let mut escaped = String::new();
    for character in text.chars() {
        if "\\.+*?()|[]{}^$".contains(character) {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

// ---------------------------------------------------------------------------------------------
// Sandbox pods.

impl Pod {
    /// `mirrord sandbox up e2e-LABEL-NNN`; LABEL must be unique among the tests of this file.
    fn up(label: &str) -> Self {
        Self::up_as("e2e", label)
    }

    /// Runs the python probe under mirrord.
    fn python(&self, flags: &[&str], probe_args: &[&str]) -> Run {
        let script = probe("probe.py");
        let mut command = vec![python(), script.as_str()];
        command.extend_from_slice(probe_args);
        self.exec(flags, &command)
    }
}

// ---------------------------------------------------------------------------------------------
// Expectations on probe output.

/// Compares a probe's lines with what the user should see, collecting every mismatch so that
/// one failure report lists every check that failed for a program.
struct Expect<'a> {
    run: &'a Run,
    failures: Vec<String>,
}

impl<'a> Expect<'a> {
    fn new(run: &'a Run) -> Self {
        Self {
            run,
            failures: Vec::new(),
        }
    }

    fn line(&mut self, key: &str, expected: &str) {
        match self.run.value(key) {
            Some(actual) if actual == expected => {}
            actual => self
                .failures
                .push(format!("`{key}`: expected `{expected}`, got {actual:?}")),
        }
    }

    fn line_that(&mut self, key: &str, what: &str, predicate: impl Fn(&str) -> bool) {
        match self.run.value(key) {
            Some(actual) if predicate(actual) => {}
            actual => self
                .failures
                .push(format!("`{key}`: expected {what}, got {actual:?}")),
        }
    }

    fn that(&mut self, holds: bool, what: &str) {
        if !holds {
            self.failures.push(what.to_owned());
        }
    }

    /// The lines of [`TARGET_CHECKS`] show the pod.
    fn target_view(&mut self, pod: &Pod) {
        self.line("file /app/config.yaml", pod.first_line("/app/config.yaml"));
        self.line(
            "env SANDBOX_GREETING",
            &format!("hello from sandbox {}", pod.name),
        );
        self.line("dns db.sandbox.svc", pod.db_ip());
        self.line("tcp db.sandbox.svc:7", ECHO_PAYLOAD);
        self.line("udp db.sandbox.svc:7", ECHO_PAYLOAD);
        self.line("hostname", &pod.name);
    }

    fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} check(s) failed:\n  - {}\n{}",
            self.failures.len(),
            self.failures.join("\n  - "),
            self.run.describe()
        );
    }
}

fn errno_failure(value: &str) -> bool {
    value.starts_with("ERR E")
}

// ---------------------------------------------------------------------------------------------
// Files, environment, DNS and outgoing traffic, as each program sees them.

#[test]
fn python_sees_the_targets_files_env_dns_and_network() {
    // What the host itself sees: none of the pod's names or files.
    let host_lookup = {
        let mut getent = Command::new("getent");
        getent
            .args(["hosts", "db.sandbox.svc"])
            .env("RES_OPTIONS", "timeout:1 attempts:1");
        run_bounded(getent, RUN_LIMIT)
    };
    assert!(
        !host_lookup.status.success(),
        "the host itself resolves db.sandbox.svc, so this test proves nothing: {}",
        host_lookup.describe()
    );
    assert!(!Path::new("/app/config.yaml").exists());

    let pod = Pod::up("py");
    let mut checks = TARGET_CHECKS.to_vec();
    checks.extend([
        "file:/app/data/greeting.txt",
        "dir:/app",
        "env:DATABASE_URL",
        "dns:api.sandbox.svc",
    ]);
    let run = pod.python(&[], &checks);
    let mut expect = Expect::new(&run);
    expect.that(run.status.success(), "the probe exits with 0");
    expect.that(
        run.stderr.contains(&format!(
            "mirrord: running in the context of {}",
            pod.target()
        )),
        "mirrord says which target the process runs in",
    );
    expect.target_view(&pod);
    expect.line(
        "file /app/data/greeting.txt",
        &format!("hello from sandbox {}", pod.name),
    );
    expect.line("dir /app", "README.txt,config.yaml,data");
    expect.line("env DATABASE_URL", "postgres://db.sandbox.svc:5432/app");
    expect.line("dns api.sandbox.svc", pod.field("sandbox_ip"));
    expect.finish();
}

#[test]
fn no_outgoing_makes_connections_from_this_machine_so_no_echo_comes_back() {
    let pod = Pod::up("noout");
    let run = pod.python(
        &["--no-outgoing"],
        &[
            "dns:db.sandbox.svc",
            "tcp:db.sandbox.svc:7",
            "udp:db.sandbox.svc:7",
        ],
    );
    let mut expect = Expect::new(&run);
    expect.that(run.status.success(), "the probe exits with 0");
    // Names still resolve through the target; only the traffic stays local, where the db
    // namespace is unreachable (a transparent proxy may accept the TCP connect, but nothing
    // echoes).
    expect.line("dns db.sandbox.svc", pod.db_ip());
    for key in ["tcp db.sandbox.svc:7", "udp db.sandbox.svc:7"] {
        expect.line_that(key, "no echo (ERR …)", |value| value.starts_with("ERR"));
    }
    expect.finish();
}

#[test]
fn node_sees_the_target() {
    let pod = Pod::up("node");
    let script = probe("probe.js");
    let mut command = vec!["node", script.as_str()];
    command.extend_from_slice(TARGET_CHECKS);
    let run = pod.exec(&[], &command);
    let mut expect = Expect::new(&run);
    expect.that(run.status.success(), "the probe exits with 0");
    expect.target_view(&pod);
    expect.finish();
}

#[test]
fn curl_reads_a_target_file_and_reaches_the_pod_only_http_service() {
    let pod = Pod::up("curl");
    let file = pod.exec(
        &[],
        &["curl", "-sS", "--max-time", "5", "file:///app/config.yaml"],
    );
    assert!(file.status.success(), "{}", file.describe());
    assert_eq!(
        file.stdout,
        pod.file("/app/config.yaml"),
        "{}",
        file.describe()
    );

    let http = pod.exec(
        &[],
        &["curl", "-sS", "--max-time", "5", "http://api.sandbox.svc/"],
    );
    assert!(http.status.success(), "{}", http.describe());
    assert_eq!(
        http.stdout,
        format!("sandbox {}: GET /\n", pod.name),
        "{}",
        http.describe()
    );

    // The same request without mirrord fails: the name exists only in the pod.
    let mut plain = Command::new("curl");
    plain
        .args(["-sS", "--max-time", "5", "http://api.sandbox.svc/"])
        .env("RES_OPTIONS", "timeout:1 attempts:1");
    let plain = run_bounded(plain, RUN_LIMIT);
    assert!(!plain.status.success(), "{}", plain.describe());
}

/// Compiles `tests/e2e/probe.c` into `scratch`.
fn build_c_probe(scratch: &ScratchDir) -> String {
    let binary = scratch.0.join("probe");
    let binary = binary.to_string_lossy().into_owned();
    let source = probe("probe.c");
    run("cc", &["-O1", "-Wall", "-pthread", "-o", &binary, &source]).assert_success();
    binary
}

#[test]
fn c_program_sees_the_target_also_in_a_forked_child() {
    let scratch = ScratchDir::new("c");
    let binary = build_c_probe(&scratch);
    let pod = Pod::up("c");

    let mut command = vec![binary.as_str()];
    command.extend_from_slice(TARGET_CHECKS);
    let run = pod.exec(&[], &command);
    let mut expect = Expect::new(&run);
    expect.that(run.status.success(), "the probe exits with 0");
    expect.target_view(&pod);
    expect.finish();

    let mut command = vec![binary.as_str(), "fork"];
    command.extend_from_slice(TARGET_CHECKS);
    let run = pod.exec(&[], &command);
    let mut expect = Expect::new(&run);
    expect.line("fork", "child exited 0");
    expect.target_view(&pod);
    expect.finish();
}

#[test]
fn java_sees_the_target() {
    let pod = Pod::up("java");
    let source = probe("Probe.java");
    let mut command = vec!["java", source.as_str()];
    command.extend_from_slice(TARGET_CHECKS);
    let run = pod.exec_limited(&[], &command, Duration::from_secs(180));
    let mut expect = Expect::new(&run);
    expect.that(run.status.success(), "the probe exits with 0");
    expect.target_view(&pod);
    expect.finish();
}

// ---------------------------------------------------------------------------------------------
// File modes and overrides.

#[test]
fn fs_mode_local_and_a_local_override_keep_paths_on_this_machine() {
    let pod = Pod::up("fslocal");
    let scratch = ScratchDir::new("fslocal");

    let run = pod.python(&["--fs-mode", "local"], &["file:/app/config.yaml"]);
    let mut expect = Expect::new(&run);
    expect.line("file /app/config.yaml", "ERR ENOENT");
    expect.finish();

    let config = json!({"feature": {"fs": {"mode": "read", "local": ["^/app/config\\.yaml$"]}}});
    let config = scratch.file("mirrord.json", &config.to_string());
    let run = pod.python(
        &["-f", config.to_str().unwrap()],
        &["file:/app/config.yaml", "file:/app/README.txt"],
    );
    let mut expect = Expect::new(&run);
    expect.line("file /app/config.yaml", "ERR ENOENT");
    // Only that path: the rest of /app is still read from the target.
    expect.line("file /app/README.txt", pod.first_line("/app/README.txt"));
    expect.finish();
}

#[test]
fn fs_read_mode_keeps_writes_local_and_write_mode_sends_them_to_the_target() {
    let pod = Pod::up("fswrite");
    let absent = || {
        !pod.in_mount_namespace("test -e /app/new-file")
            .status
            .success()
    };
    assert!(absent());

    let read_mode = pod.python(
        &["--fs-mode", "read"],
        &["write:/app/new-file=written in read mode"],
    );
    assert!(
        read_mode.value("write /app/new-file").is_some(),
        "{}",
        read_mode.describe()
    );
    assert!(
        absent(),
        "a write in read mode reached the target: {}",
        read_mode.describe()
    );

    let write_mode = pod.python(
        &["--fs-mode", "write"],
        &[
            "write:/app/new-file=written through mirrord",
            "file:/app/new-file",
        ],
    );
    let mut expect = Expect::new(&write_mode);
    expect.line("write /app/new-file", "ok");
    expect.line("file /app/new-file", "written through mirrord");
    let in_pod = pod.in_mount_namespace("cat /app/new-file");
    expect.that(
        in_pod.stdout == "written through mirrord",
        &format!(
            "the pod's /app/new-file holds what was written: {in_pod:?}",
            in_pod = in_pod.stdout
        ),
    );
    expect.finish();
}

/// Runs `tests/e2e/descriptors.py` under mirrord in write mode with `config`.
fn descriptors(pod: &Pod, scratch: &ScratchDir, config: &Value, text: &str) -> Run {
    let config = scratch.file("mirrord.json", &config.to_string());
    let script = probe("descriptors.py");
    pod.exec(
        &["-f", config.to_str().unwrap(), "--fs-mode", "write"],
        &[
            python(),
            &script,
            "/app/config.yaml",
            "/app",
            "/app/written-by-descriptor",
            text,
            "/app/big.bin",
        ],
    )
}

#[test]
fn remote_files_are_the_targets_own_descriptors_unless_native_fds_is_off() {
    let pod = Pod::up("nativefds");
    let scratch = ScratchDir::new("nativefds");
    let inode = pod.in_mount_namespace("stat -c %i /app/config.yaml");
    inode.assert_success();
    let inode = inode.stdout.trim().to_owned();
    let first = pod.first_line("/app/config.yaml");
    let written = || {
        pod.in_mount_namespace("cat /app/written-by-descriptor")
            .stdout
    };
    let lists_config = |entries: &str| entries.split(' ').any(|name| name == "config.yaml");
    // A file of a few MiB read from start to end (the intproxy reads ahead when streaming).
    let big = pod.in_mount_namespace(
        "head -c 3000000 /dev/urandom > /app/big.bin && sha256sum /app/big.bin",
    );
    big.assert_success();
    let sequential = format!(
        "196608 {}",
        big.stdout.split(' ').next().unwrap_or_default()
    );
    // Out of descriptors: EMFILE for the program, and the session goes on once some are free.
    let recovers = |line: &str| line.starts_with("EMFILE after ") && line.ends_with(first);

    // Default: the agent passes the descriptor of the pod's file itself, so even mmap works.
    let native = descriptors(&pod, &scratch, &json!({}), "native");
    let mut expect = Expect::new(&native);
    expect.line("link", "/app/config.yaml");
    expect.line("inode", &inode);
    expect.line("pread", first);
    expect.line("mmap", first);
    expect.line_that("entries", "the pod's entries", lists_config);
    expect.line("write", "ok");
    let contents = written();
    expect.that(
        contents == "native",
        &format!("the pod's file holds the native write: {contents:?}"),
    );
    expect.line_that("exhaust", "EMFILE, then a working open", recovers);
    expect.line("sequential", &sequential);
    expect.finish();

    // Off: a placeholder descriptor, every operation through the intproxy (the cluster path).
    let config = json!({"feature": {"fs": {"native_fds": false}}});
    let streamed = descriptors(&pod, &scratch, &config, "streamed");
    let mut expect = Expect::new(&streamed);
    expect.line_that("link", "the layer's placeholder", |link| {
        link.starts_with("/memfd:mirrord-remote-file")
    });
    expect.line("inode", &inode);
    expect.line("pread", first);
    // The placeholder maps nothing: the layer's mmap hook fills a private copy instead.
    expect.line("mmap", first);
    expect.line_that("entries", "the pod's entries", lists_config);
    expect.line("write", "ok");
    let contents = written();
    expect.that(
        contents == "streamed",
        &format!("the pod's file holds the streamed write: {contents:?}"),
    );
    expect.line_that("exhaust", "EMFILE, then a working open", recovers);
    expect.line("sequential", &sequential);
    expect.finish();
}

// ---------------------------------------------------------------------------------------------
// Environment.

#[test]
fn env_exclude_include_and_override_select_the_targets_variables() {
    let pod = Pod::up("env");
    let scratch = ScratchDir::new("env");
    let greeting = format!("hello from sandbox {}", pod.name);
    let database_url = "postgres://db.sandbox.svc:5432/app";
    let checks = ["env:SANDBOX_GREETING", "env:DATABASE_URL", "env:ECHO_ADDR"];

    let all = pod.python(&[], &checks);
    let mut expect = Expect::new(&all);
    expect.line("env SANDBOX_GREETING", &greeting);
    expect.line("env DATABASE_URL", database_url);
    expect.line("env ECHO_ADDR", "db.sandbox.svc:7");
    expect.finish();

    let excluded = pod.python(&["-x", "SANDBOX_GREETING"], &checks);
    let mut expect = Expect::new(&excluded);
    expect.line("env SANDBOX_GREETING", "MISSING");
    expect.line("env DATABASE_URL", database_url);
    expect.line("env ECHO_ADDR", "db.sandbox.svc:7");
    expect.finish();

    let included = pod.python(&["-s", "DATABASE_URL"], &checks);
    let mut expect = Expect::new(&included);
    expect.line("env SANDBOX_GREETING", "MISSING");
    expect.line("env DATABASE_URL", database_url);
    expect.line("env ECHO_ADDR", "MISSING");
    expect.finish();

    let config =
        json!({"feature": {"env": {"override": {"SANDBOX_GREETING": "overridden by the config"}}}});
    let config = scratch.file("mirrord.json", &config.to_string());
    let overridden = pod.python(&["-f", config.to_str().unwrap()], &checks);
    let mut expect = Expect::new(&overridden);
    expect.line("env SANDBOX_GREETING", "overridden by the config");
    expect.line("env DATABASE_URL", database_url);
    expect.finish();
}

// ---------------------------------------------------------------------------------------------
// Children.

#[test]
fn forked_and_execed_children_see_the_target_too() {
    let pod = Pod::up("children");
    let script = probe("probe.py");

    let mut forked = vec!["fork"];
    forked.extend_from_slice(TARGET_CHECKS);
    let run = pod.python(&[], &forked);
    let mut expect = Expect::new(&run);
    expect.line("fork", "child exited 0");
    expect.target_view(&pod);
    expect.finish();

    let mut spawned = vec!["subprocess"];
    spawned.extend_from_slice(TARGET_CHECKS);
    let run = pod.python(&[], &spawned);
    let mut expect = Expect::new(&run);
    expect.line("subprocess", "exited 0");
    expect.target_view(&pod);
    expect.finish();

    let through_bash = format!("{} {script} {}", python(), TARGET_CHECKS.join(" "));
    let run = pod.exec(&[], &["bash", "-c", &through_bash]);
    let mut expect = Expect::new(&run);
    expect.target_view(&pod);
    expect.finish();

    let cat = pod.exec(&[], &["bash", "-c", "cat /app/config.yaml"]);
    assert!(cat.status.success(), "{}", cat.describe());
    assert_eq!(
        cat.stdout,
        pod.file("/app/config.yaml"),
        "{}",
        cat.describe()
    );
}

#[test]
fn skip_processes_leaves_the_named_program_alone() {
    let pod = Pod::up("skip");
    let script = format!(
        "cat /app/config.yaml; {} {} file:/app/config.yaml",
        python(),
        probe("probe.py")
    );
    let run = pod.exec(&["--skip-processes", "cat"], &["bash", "-c", &script]);
    let mut expect = Expect::new(&run);
    expect.that(
        run.stderr
            .contains("cat: /app/config.yaml: No such file or directory"),
        "cat, skipped, does not find the pod's file",
    );
    expect.that(
        !run.stdout.contains(&format!("sandbox: {}", pod.name)),
        "cat printed nothing of the pod's file",
    );
    expect.line("file /app/config.yaml", pod.first_line("/app/config.yaml"));
    expect.finish();
}

#[test]
fn a_hundred_forked_children_each_get_their_own_replies() {
    const CHILDREN: usize = 100;
    let pod = Pod::up("hundred");
    pod.in_mount_namespace(&format!(
        "mkdir -p /app/children && i=0; while [ $i -lt {CHILDREN} ]; do \
         echo \"child $i\" > /app/children/child-$i.txt; i=$((i+1)); done"
    ))
    .assert_success();

    let script = probe("probe.py");
    let children = CHILDREN.to_string();
    let run = pod.exec_limited(
        &[],
        &[python(), &script, "children", &children, "/app/children"],
        Duration::from_secs(120),
    );
    let mut expect = Expect::new(&run);
    for index in 0..CHILDREN {
        expect.line(&format!("child {index}"), "ok");
    }
    expect.line("children", &format!("{CHILDREN} forked, 0 failed"));
    expect.finish();
}

// ---------------------------------------------------------------------------------------------
// Losing the agent.

/// One line of `probe.py loop`.
#[derive(Debug)]
struct LoopLine {
    started: f64,
    remote: String,
    local: String,
}

fn parse_loop_line(line: &str) -> Option<LoopLine> {
    let rest = line.strip_prefix("loop t=")?;
    let (started, rest) = rest.split_once(" remote: ")?;
    let (remote, local) = rest.rsplit_once(" | local: ")?;
    Some(LoopLine {
        started: started.parse().ok()?,
        remote: remote.to_owned(),
        local: local.to_owned(),
    })
}

/// The agent serving `pod` (its command line names the target's pid).
fn agent_pids(pod: &Pod) -> Vec<u32> {
    let pattern = format!("mirrord-agent --target-pid {}( |$)", pod.target_pid());
    let found = run("pgrep", &["-f", &pattern]);
    found
        .stdout
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

#[test]
fn losing_the_agent_fails_remote_reads_within_two_seconds_and_keeps_local_reads() {
    let pod = Pod::up("agentloss");
    let scratch = ScratchDir::new("agentloss");
    let local_file = scratch.file("local.txt", "read from this machine\n");
    let config = json!({"feature": {"fs": {
        "mode": "read",
        "local": [format!("^{}/", regex_escape(&scratch.0.to_string_lossy()))],
    }}});
    let config = scratch.file("mirrord.json", &config.to_string());
    let script = probe("probe.py");

    let mut command = pod.exec_command(
        &["-f", config.to_str().unwrap()],
        &[
            python(),
            &script,
            "loop",
            "/app/config.yaml",
            local_file.to_str().unwrap(),
            "10",
        ],
    );
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child: Child = command.spawn().unwrap();
    let group = child.id();
    let (stderr, _) = collect(child.stderr.take().unwrap());
    let (line_tx, line_rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let describe = |lines: &[String]| {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            indent(&lines.join("\n")),
            indent(&String::from_utf8_lossy(&stderr.lock().unwrap()))
        )
    };

    // Wait for a few good remote reads, then kill the agent.
    let expected_remote = pod.first_line("/app/config.yaml").to_owned();
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut good = 0;
    while good < 3 {
        let Ok(line) = line_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        else {
            kill_group(group);
            panic!(
                "no three good remote reads within 30 s\n{}",
                describe(&lines)
            );
        };
        if parse_loop_line(&line).is_some_and(|parsed| parsed.remote == expected_remote) {
            good += 1;
        }
        lines.push(line);
    }
    let agents = agent_pids(&pod);
    if agents.len() != 1 {
        kill_group(group);
        panic!(
            "expected one agent for the pod, found {agents:?}\n{}",
            describe(&lines)
        );
    }
    kill_pid(agents[0]);
    let killed_at = unix_time();

    // The loop runs 10 s in all; give it a generous bound to finish.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut finished = false;
    while let Ok(line) = line_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        finished |= line == "loop: done";
        lines.push(line);
    }
    let status = wait_until(&mut child, deadline);
    kill_group(group);
    let _ = child.wait();
    let report = describe(&lines);
    assert!(
        finished && status.is_some_and(|status| status.success()),
        "the probe hung or failed ({status:?})\n{report}"
    );

    let parsed: Vec<LoopLine> = lines
        .iter()
        .filter_map(|line| parse_loop_line(line))
        .collect();
    for pair in parsed.windows(2) {
        let gap = pair[1].started - pair[0].started;
        assert!(
            gap < 2.5,
            "one iteration took {gap:.2} s (a read hung)\n{report}"
        );
    }
    for line in &parsed {
        assert_eq!(
            line.local, "read from this machine",
            "a local read failed\n{report}"
        );
    }
    let after: Vec<&LoopLine> = parsed
        .iter()
        .filter(|line| line.started > killed_at)
        .collect();
    let first_failure = after
        .iter()
        .find(|line| line.remote != expected_remote)
        .unwrap_or_else(|| {
            panic!("remote reads kept working after the agent was killed\n{report}")
        });
    assert!(
        errno_failure(&first_failure.remote),
        "a remote read after the agent was lost gave {:?}, not an errno\n{report}",
        first_failure.remote
    );
    assert!(
        first_failure.started - killed_at <= 2.0,
        "the first failing remote read started {:.2} s after the agent was killed\n{report}",
        first_failure.started - killed_at
    );
    for line in after.iter().filter(|line| line.started > killed_at + 2.0) {
        assert!(
            errno_failure(&line.remote),
            "a remote read 2 s after the agent was lost gave {:?}\n{report}",
            line.remote
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Errors the user can act on.

/// Asserts `run` failed with exactly one `error: …` line that mentions `needle`, and no more than
/// a few lines in all (no stack of output, no panic).
fn assert_one_clear_error(run: &Run, needle: &str) {
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let errors: Vec<&&str> = lines
        .iter()
        .filter(|line| line.starts_with("error: "))
        .collect();
    assert!(!run.status.success(), "it succeeded: {}", run.describe());
    assert_eq!(errors.len(), 1, "not one `error:` line: {}", run.describe());
    assert!(lines.len() <= 3, "too much output: {}", run.describe());
    assert!(
        run.stderr.contains(needle),
        "no mention of `{needle}`: {}",
        run.describe()
    );
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("backtrace"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_missing_target_a_bad_config_and_no_root_each_give_one_clear_error() {
    let missing = run(MIRRORD, &["exec", "--target", "pid/999999", "--", "true"]);
    assert_one_clear_error(&missing, "999999");

    let scratch = ScratchDir::new("errors");
    let config = scratch.file("mirrord.json", "{\"feature\": {\"fss\": {}}}\n");
    let own_pid = format!("pid/{}", std::process::id());
    let bad_config = run(
        MIRRORD,
        &[
            "exec",
            "--target",
            &own_pid,
            "-f",
            config.to_str().unwrap(),
            "--",
            "true",
        ],
    );
    assert_one_clear_error(&bad_config, "fss");

    // A copy anyone can execute, wherever the build directory is; the layer and agent are named
    // by their variables so the copy finds them.
    let copy_dir = ScratchDir::host_only("noroot");
    let binary = copy_dir.0.join("mirrord");
    std::fs::copy(MIRRORD, &binary).unwrap();
    let sandbox_name = format!("e2e-noroot-{:03}", std::process::id() % 1000);
    // Nothing must be created; the guard takes down anything that was.
    let _pod = Pod {
        name: sandbox_name.clone(),
        info: Value::Null,
    };
    for target in [own_pid, format!("sandbox/{sandbox_name}")] {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&binary)
            .args(["exec", "--target", &target, "--", "true"])
            .env("MIRRORD_LAYER_PATH", built("libmirrord_layer.so"))
            .env("MIRRORD_AGENT_BIN", built("mirrord-agent"))
            .current_dir("/");
        let not_root = run_bounded(command, RUN_LIMIT);
        assert_one_clear_error(&not_root, "root");
    }
}

// ---------------------------------------------------------------------------------------------
// The agent, spoken to directly.

/// A `mirrord-agent` this test started; killed when dropped.
struct Agent {
    child: Child,
    address: SocketAddr,
    /// The abstract unix socket that passes file descriptors.
    fd_socket: String,
}

impl Agent {
    fn start(pod: &Pod, token: &SessionToken) -> Self {
        let fd_socket = format!("mirrord-e2e-fds-{}-{}", pod.name, std::process::id());
        let mut command = Command::new(built("mirrord-agent"));
        command
            .args(["--target-pid", &pod.target_pid().to_string()])
            .args(["--communication-timeout", "30"])
            .args(["--fd-socket", &fd_socket])
            .env("MIRRORD_AGENT_TOKEN", token.to_string())
            .env(MARKER_ENV, &pod.name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (address_tx, address_rx) = mpsc::channel();
        thread::spawn(move || {
            let address = BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find_map(|line| line.strip_prefix("MIRRORD_AGENT_LISTENING=")?.parse().ok());
            let _ = address_tx.send(address);
        });
        let address = address_rx
            .recv_timeout(Duration::from_secs(30))
            .ok()
            .flatten();
        let Some(address) = address else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent did not announce its address");
        };
        Self {
            child,
            address,
            fd_socket,
        }
    }

    /// Connects and says hello with `token`; returns the stream and the agent's reply.
    fn connect(&self, token: &SessionToken) -> (TcpStream, HelloReply) {
        let mut stream = TcpStream::connect_timeout(&self.address, Duration::from_secs(5)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write_frame(
            &mut stream,
            &Hello::new(token.clone(), ClientKind::IntProxy),
        )
        .unwrap();
        let reply = read_frame(&mut stream).unwrap();
        (stream, reply)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An authenticated client of the agent, one request at a time.
struct AgentClient {
    stream: TcpStream,
    next_id: u64,
}

impl AgentClient {
    fn new(agent: &Agent, token: &SessionToken) -> Self {
        let (stream, reply) = agent.connect(token);
        assert!(
            matches!(reply, HelloReply::Welcome { .. }),
            "the right token was refused: {reply:?}"
        );
        Self { stream, next_id: 1 }
    }

    fn request(&mut self, request: AgentRequest) -> Result<AgentResponse, RemoteError> {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        write_frame(&mut self.stream, &ClientToAgent::Request { id, request }).unwrap();
        loop {
            match read_frame::<AgentToClient, _>(&mut self.stream).unwrap() {
                AgentToClient::Response {
                    id: answered,
                    result,
                } if answered == id => return result,
                _ => {}
            }
        }
    }

    fn file(&mut self, request: FileRequest) -> Result<FileResponse, RemoteError> {
        match self.request(AgentRequest::File(request))? {
            AgentResponse::File(response) => Ok(response),
            other => panic!("a file request was answered with {other:?}"),
        }
    }

    /// Opens `path` read-only in the target and reads it to the end.
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, RemoteError> {
        let FileResponse::Opened(handle) = self.file(FileRequest::Open {
            path: path.into(),
            flags: OpenFlags::READ_ONLY,
            mode: 0,
        })?
        else {
            panic!("open was not answered with a handle");
        };
        let mut contents = Vec::new();
        loop {
            match self.file(FileRequest::Read {
                handle,
                len: 64 * 1024,
            })? {
                FileResponse::Read(bytes) if bytes.is_empty() => break,
                FileResponse::Read(bytes) => contents.extend_from_slice(&bytes),
                other => panic!("read was answered with {other:?}"),
            }
        }
        let _ = self.file(FileRequest::Close { handle });
        Ok(contents)
    }
}

fn token(byte: u8) -> SessionToken {
    SessionToken::from_bytes([byte; 32])
}

#[test]
fn the_agent_refuses_a_client_with_a_wrong_token_and_serves_it_nothing() {
    let pod = Pod::up("auth");
    let right = token(0x5a);
    let agent = Agent::start(&pod, &right);

    let (mut stream, reply) = agent.connect(&token(0xa5));
    let HelloReply::Refused { reason } = reply else {
        panic!("a wrong token was welcomed: {reply:?}");
    };
    assert!(reason.contains("token"), "{reason}");
    let open = ClientToAgent::Request {
        id: RequestId(1),
        request: AgentRequest::File(FileRequest::Open {
            path: "/app/config.yaml".into(),
            flags: OpenFlags::READ_ONLY,
            mode: 0,
        }),
    };
    // The agent closes the connection; whether the write still lands does not matter.
    let _ = write_frame(&mut stream, &open);
    let after_refusal = read_frame::<AgentToClient, _>(&mut stream);
    assert!(
        after_refusal.is_err(),
        "a refused client was served: {after_refusal:?}"
    );

    // A client that skips the hello is not served either.
    let mut rude = TcpStream::connect_timeout(&agent.address, Duration::from_secs(5)).unwrap();
    rude.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = write_frame(&mut rude, &open);
    let without_hello = read_frame::<AgentToClient, _>(&mut rude);
    assert!(
        without_hello.is_err(),
        "a client without a hello was served: {without_hello:?}"
    );

    // The socket that passes file descriptors checks the token the same way.
    let fd_address = UnixAddr::from_abstract_name(agent.fd_socket.as_bytes()).unwrap();
    let fd_open = FdRequest::Open {
        path: "/app/config.yaml".into(),
        flags: OpenFlags::READ_ONLY,
        mode: 0,
    };
    let mut fd_stream = UnixStream::connect_addr(&fd_address).unwrap();
    fd_stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write_frame(
        &mut fd_stream,
        &Hello::new(token(0xa5), ClientKind::FdClient { pid: 1 }),
    )
    .unwrap();
    let fd_reply: HelloReply = read_frame(&mut fd_stream).unwrap();
    assert!(
        matches!(&fd_reply, HelloReply::Refused { reason } if reason.contains("token")),
        "a wrong token was welcomed on the descriptor socket: {fd_reply:?}"
    );
    let _ = write_frame(&mut fd_stream, &fd_open);
    let after_refusal = read_frame::<RemoteResult<FdReply>, _>(&mut fd_stream);
    assert!(
        after_refusal.is_err(),
        "a refused descriptor client was served: {after_refusal:?}"
    );
    let mut fd_rude = UnixStream::connect_addr(&fd_address).unwrap();
    fd_rude
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = write_frame(&mut fd_rude, &fd_open);
    let without_hello = read_frame::<RemoteResult<FdReply>, _>(&mut fd_rude);
    assert!(
        without_hello.is_err(),
        "a descriptor client without a hello was served: {without_hello:?}"
    );
    // With the right token it answers (the descriptor itself is checked through the layer, in
    // `remote_files_are_the_targets_own_descriptors_unless_native_fds_is_off`).
    let mut fd_client = UnixStream::connect_addr(&fd_address).unwrap();
    fd_client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write_frame(
        &mut fd_client,
        &Hello::new(right.clone(), ClientKind::FdClient { pid: 1 }),
    )
    .unwrap();
    let welcome: HelloReply = read_frame(&mut fd_client).unwrap();
    assert!(matches!(welcome, HelloReply::Welcome { .. }), "{welcome:?}");
    write_frame(
        &mut fd_client,
        &FdRequest::Open {
            path: "/app".into(),
            flags: OpenFlags::READ_ONLY,
            mode: 0,
        },
    )
    .unwrap();
    let directory: RemoteResult<FdReply> = read_frame(&mut fd_client).unwrap();
    assert_eq!(
        directory,
        Ok(FdReply::Directory),
        "directories are never passed"
    );

    // The same request with the right token is served: the refusal was about the token.
    let mut client = AgentClient::new(&agent, &right);
    let contents = client.read_file("/app/config.yaml").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&contents),
        pod.file("/app/config.yaml")
    );
}

/// A file only this machine has (the pods have their own `/tmp`), removed when dropped.
struct HostSecret {
    dir: ScratchDir,
    path: String,
    contents: String,
}

impl HostSecret {
    fn new(label: &str) -> Self {
        let dir = ScratchDir::host_only(label);
        let path = dir.0.join("secret.txt");
        let contents = format!("host-only secret {}", unix_time());
        std::fs::write(&path, format!("{contents}\n")).unwrap();
        Self {
            dir,
            path: path.to_string_lossy().into_owned(),
            contents,
        }
    }

    /// Links in the pod's `/app` that point at the secret's path, and one that points inside.
    fn plant_links(&self, pod: &Pod) {
        let relative = format!("../../../../..{}", self.path);
        let script = format!(
            "test ! -e {path} && ln -s {path} /app/escape-absolute && \
             ln -s {relative} /app/escape-relative && ln -s / /app/escape-root && \
             ln -s /app/config.yaml /app/inside",
            path = self.path
        );
        pod.in_mount_namespace(&script).assert_success();
        assert!(Path::new(&self.path).exists() && self.dir.0.exists());
    }

    /// Paths that name the secret through `..` or the links.
    fn escapes(&self) -> Vec<String> {
        vec![
            "/app/escape-absolute".to_owned(),
            "/app/escape-relative".to_owned(),
            format!("/app/escape-root{}", self.path),
            format!("/app/../../../..{}", self.path),
            format!("/../../..{}", self.path),
        ]
    }
}

#[test]
fn the_agent_confines_file_access_to_the_targets_root() {
    let pod = Pod::up("root");
    let secret = HostSecret::new("agent-root");
    secret.plant_links(&pod);
    let right = token(0x3c);
    let agent = Agent::start(&pod, &right);
    let mut client = AgentClient::new(&agent, &right);

    for path in secret.escapes() {
        match client.read_file(&path) {
            Ok(contents) => {
                let contents = String::from_utf8_lossy(&contents);
                assert!(
                    !contents.contains(&secret.contents),
                    "{path} read the host's file through the agent"
                );
                panic!("{path} opened something outside the pod: {contents:?}");
            }
            Err(error) => assert_eq!(
                error.errno(),
                2,
                "{path}: expected ENOENT (the pod has no such file), got {error}"
            ),
        }
    }
    // Links that stay inside the target's root work as usual.
    let inside = client.read_file("/app/inside").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&inside),
        pod.file("/app/config.yaml")
    );
}

#[test]
fn links_in_the_target_cannot_make_the_user_app_read_host_files() {
    let pod = Pod::up("links");
    let secret = HostSecret::new("layer-links");
    secret.plant_links(&pod);
    let escapes = [
        "file:/app/escape-absolute".to_owned(),
        "file:/app/escape-relative".to_owned(),
        format!("file:/app/escape-root{}", secret.path),
        "file:/app/inside".to_owned(),
    ];
    let escapes: Vec<&str> = escapes.iter().map(String::as_str).collect();
    let run = pod.python(&[], &escapes);
    let mut expect = Expect::new(&run);
    expect.that(
        !run.stdout.contains(&secret.contents),
        "the host-only file was read",
    );
    for check in &escapes[..3] {
        let path = check.strip_prefix("file:").unwrap();
        expect.line(&format!("file {path}"), "ERR ENOENT");
    }
    expect.line("file /app/inside", pod.first_line("/app/config.yaml"));
    expect.finish();
}

// ---------------------------------------------------------------------------------------------
// The README's first command.

#[test]
fn the_whoami_example_shows_the_target() {
    let pod = Pod::up("whoami");
    let example = repo_root().join("examples/whoami.py");
    let run = pod.exec(&[], &[python(), example.to_str().unwrap()]);
    run.assert_success();
    let shown = |label: &str| {
        run.stdout
            .lines()
            .find_map(|line| Some(line.strip_prefix(label)?.trim()))
            .unwrap_or_else(|| panic!("no `{label}` line: {}", run.describe()))
            .to_owned()
    };
    assert_eq!(shown("hostname"), pod.name);
    assert_eq!(
        shown("first line of /app/config.yaml"),
        pod.first_line("/app/config.yaml")
    );
    assert_eq!(
        shown("$SANDBOX_GREETING"),
        format!("hello from sandbox {}", pod.name)
    );
    assert_eq!(shown("db.sandbox.svc resolves to"), pod.db_ip());
    assert_eq!(
        shown("tcp echo at db.sandbox.svc:7"),
        "replied 'hello from whoami.py'"
    );
}

// ---------------------------------------------------------------------------------------------
// What programs do to descriptors and directories (`tests/e2e/file_calls.py`).

/// Runs `tests/e2e/file_calls.py ARGS` under mirrord with `config`.
fn file_calls(pod: &Pod, scratch: &ScratchDir, config: &Value, args: &[&str]) -> Run {
    let config = scratch.file("mirrord.json", &config.to_string());
    let script = probe("file_calls.py");
    let mut command = vec![python(), script.as_str()];
    command.extend_from_slice(args);
    pod.exec_limited(
        &["-f", config.to_str().unwrap()],
        &command,
        Duration::from_secs(120),
    )
}

/// Regression: `close_range(3, ~0, 0)` and `closefrom(3)` closed the layer's own connection, and every
/// later remote call failed; `dup2` onto it already worked and must keep working.
#[test]
fn close_range_and_closefrom_leave_the_session_working_native_and_streamed() {
    let pod = Pod::up("closerange");
    let scratch = ScratchDir::new("closerange");
    let first = pod.first_line("/app/config.yaml");
    let size = pod.file("/app/config.yaml").len().to_string();
    for (mode, config) in [
        ("native", json!({})),
        (
            "streamed",
            json!({"feature": {"fs": {"native_fds": false}}}),
        ),
    ] {
        let run = file_calls(
            &pod,
            &scratch,
            &config,
            &["descriptors", "/app/config.yaml", "/app"],
        );
        let mut expect = Expect::new(&run);
        expect.line("close_range", "ok");
        expect.line("kept fd closed", "yes");
        expect.line_that("dup2 onto layer fds", "at least one", |count| {
            count.parse::<u32>().is_ok_and(|count| count > 0)
        });
        for stage in [
            "before",
            "after close_range",
            "after closefrom",
            "after dup2",
        ] {
            expect.line(&format!("{stage} read"), first);
            expect.line(&format!("{stage} stat"), &size);
            expect.line(&format!("{stage} listdir"), "yes");
        }
        expect.that(run.status.success(), &format!("{mode}: the probe exits 0"));
        expect.finish();
    }
}

/// Regression: `open(dir, O_DIRECTORY)` gave EINVAL and `O_PATH` ENOENT on remote paths; `readdir`
/// had no `.`/`..`; every remote directory `fstat`ed to one inode (`ls -R` refused to recurse); and the
/// xattr calls were not intercepted (`ls -l` said "No such file or directory"). Each must behave as on
/// the target.
#[test]
fn directories_and_ls_behave_as_on_the_target() {
    let pod = Pod::up("lsdirs");
    let scratch = ScratchDir::new("lsdirs");
    let run = file_calls(
        &pod,
        &scratch,
        &json!({}),
        &["directories", "/app", "/app/config.yaml"],
    );
    let mut expect = Expect::new(&run);
    expect.line("O_DIRECTORY", "directory yes");
    expect.line("O_PATH directory", "directory");
    expect.line("O_PATH file", "file True");
    expect.line("O_DIRECTORY on a file", "ERR Not a directory");
    expect.finish();

    let config = scratch.file("mirrord.json", "{}");
    for script in [
        "ls -a /app",
        "ls -R /app",
        "ls -ln /app/data",
        "ls -lnd /app /app/data",
    ] {
        let on_target = pod.in_mount_namespace(script);
        on_target.assert_success();
        let mirrored = pod.exec(&["-f", config.to_str().unwrap()], &["sh", "-c", script]);
        assert!(
            mirrored.status.success(),
            "{script}: {}",
            mirrored.describe()
        );
        assert_eq!(
            mirrored.stdout,
            on_target.stdout,
            "{script} under mirrord differs from the target's\n{}",
            mirrored.describe()
        );
    }
}

/// Regression (issue 18): the read-ahead buffer's lock was not among the locks taken around `fork`, so a
/// child forked while another thread read a streamed file could deadlock on it (and parent and child
/// shared the file offset but each kept the buffered bytes). Threads read one descriptor in a loop while
/// the main thread forks 200 times; each child reads the same descriptor. Bounded by the run limit.
#[test]
fn forking_while_threads_read_a_streamed_file_never_hangs_the_child() {
    const ROUNDS: usize = 200;
    let pod = Pod::up("forkreads");
    let scratch = ScratchDir::new("forkreads");
    // 4096 records of 16 bytes, each naming its own offset.
    pod.in_mount_namespace(
        "i=0; while [ $i -lt 4096 ]; do printf '%015d\\n' $((i*16)); i=$((i+1)); done > /app/records",
    )
    .assert_success();
    let config = json!({"feature": {"fs": {"native_fds": false}}});
    let run = file_calls(
        &pod,
        &scratch,
        &config,
        &["fork_reads", "/app/records", &ROUNDS.to_string()],
    );
    let mut expect = Expect::new(&run);
    expect.line("children", &format!("{ROUNDS} of {ROUNDS} exited cleanly"));
    expect.line("reads", "whole records");
    expect.finish();
}

/// Regression: when the intproxy could not open the port-forward to the agent, it said why only in
/// its log, and `mirrord exec` reported "the internal proxy did not start within 30 s". Now it says
/// why on the line `mirrord exec` reads.
#[test]
fn the_intproxy_says_why_it_cannot_reach_the_agent() {
    let scratch = ScratchDir::host_only("intproxy-fails");
    let mut command = Command::new(MIRRORD);
    command
        .args(["intproxy", "--agent-pod", "default/mirrord-agent-x:4000"])
        .env("MIRRORD_SESSION_TOKEN", token(0x11).to_string())
        .env("KUBECONFIG", scratch.0.join("no-such-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("MIRRORD_KUBE_SETTINGS");
    let run = run_bounded(command, RUN_LIMIT);
    assert_eq!(run.status.code(), Some(1), "{}", run.describe());
    let reason = run
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("MIRRORD_FAILED="))
        .unwrap_or_else(|| panic!("no reason on stdout\n{}", run.describe()));
    assert!(
        reason.starts_with("the port-forward to the agent failed: "),
        "{reason}"
    );
}
