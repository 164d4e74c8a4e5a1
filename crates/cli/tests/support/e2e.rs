//! Running programs in end-to-end tests, bounded, and sandbox pods for them: a program's run
//! (status and output, killed with its process group after a time limit so a bug never hangs
//! CI), and a [`Pod`] that `mirrord exec` targets, taken down with everything started in it
//! (found by [`MARKER_ENV`] in their environment) when dropped. Shared by `exec.rs` (the layer)
//! and `syscall_path.rs` (the supervisor).

use std::{
    io::Read,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        mpsc::{self, Receiver},
    },
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::MIRRORD;

/// How long any one program may run before it is killed and the test fails.
pub(crate) const RUN_LIMIT: Duration = Duration::from_secs(90);

/// Set in the environment of everything a test starts through mirrord (the user process, its
/// children, the intproxy and the agent inherit it), so the pod's guard can find and kill
/// leftovers by process id.
pub(crate) const MARKER_ENV: &str = "MIRRORD_E2E_SANDBOX";

/// A finished program.
pub(crate) struct Run {
    pub(crate) what: String,
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// The value of the probe line `KEY: VALUE`.
    pub(crate) fn value(&self, key: &str) -> Option<&str> {
        self.stdout
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(": "))
    }

    /// Everything about the run, for failure messages.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{}\n  exit: {}\n  stdout:\n{}\n  stderr:\n{}",
            self.what,
            self.status,
            indent(&self.stdout),
            indent(&self.stderr)
        )
    }

    /// Asserts that the probe line `KEY` says `expected`.
    #[track_caller]
    pub(crate) fn expect(&self, key: &str, expected: &str) {
        assert_eq!(
            self.value(key),
            Some(expected),
            "`{key}`:\n{}",
            self.describe()
        );
    }

    pub(crate) fn assert_success(&self) {
        assert!(self.status.success(), "failed: {}", self.describe());
    }
}

pub(crate) fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("    | {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn describe_command(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(
        command
            .get_args()
            .map(|arg| arg.to_string_lossy().into_owned()),
    );
    words.join(" ")
}

/// Kills every process of process group `group` (ignoring "no such process").
pub(crate) fn kill_group(group: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status();
}

pub(crate) fn kill_pid(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Collects a pipe into a shared buffer on a thread; the receiver fires at end of file.
pub(crate) fn collect(mut pipe: impl Read + Send + 'static) -> (Arc<Mutex<Vec<u8>>>, Receiver<()>) {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let (done_tx, done_rx) = mpsc::channel();
    let sink = Arc::clone(&buffer);
    thread::spawn(move || {
        let mut chunk = [0; 8192];
        while let Ok(read) = pipe.read(&mut chunk) {
            if read == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&chunk[..read]);
        }
        let _ = done_tx.send(());
    });
    (buffer, done_rx)
}

/// Runs `command` in its own process group with no stdin, killing the whole group after `limit`
/// (the test then fails) and after it exits (so forked children cannot outlive it).
pub(crate) fn run_bounded(mut command: Command, limit: Duration) -> Run {
    let what = describe_command(&command);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {what}: {error}"));
    let (stdout, stdout_done) = collect(child.stdout.take().unwrap());
    let (stderr, stderr_done) = collect(child.stderr.take().unwrap());
    let deadline = Instant::now() + limit;
    let status = wait_until(&mut child, deadline);
    kill_group(child.id());
    let status = status.unwrap_or_else(|| child.wait().unwrap());
    for done in [stdout_done, stderr_done] {
        let _ = done.recv_timeout(Duration::from_secs(5));
    }
    let run = Run {
        what,
        status,
        stdout: String::from_utf8_lossy(&stdout.lock().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&stderr.lock().unwrap()).into_owned(),
    };
    assert!(
        Instant::now() < deadline,
        "killed after {} s (hung?): {}",
        limit.as_secs(),
        run.describe()
    );
    run
}

/// The child's exit status once it exits, or `None` at `deadline`.
pub(crate) fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn run(program: &str, args: &[&str]) -> Run {
    let mut command = Command::new(program);
    command.args(args);
    run_bounded(command, RUN_LIMIT)
}

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A sandbox pod for one test. Dropping it takes the pod down and kills whatever the test
/// started through mirrord in it.
pub(crate) struct Pod {
    pub(crate) name: String,
    pub(crate) info: Value,
}

impl Pod {
    /// `mirrord sandbox up PREFIX-LABEL-NNN` (NNN from this test process's id); LABEL must be
    /// unique among the tests of one file, PREFIX tells the files apart.
    pub(crate) fn up_as(prefix: &str, label: &str) -> Self {
        let name = format!("{prefix}-{label}-{:03}", std::process::id() % 1000);
        assert!(name.len() <= 20, "sandbox name {name} is too long");
        let mut pod = Self {
            name,
            info: Value::Null,
        };
        let up = run(MIRRORD, &["sandbox", "up", &pod.name, "--output", "json"]);
        up.assert_success();
        pod.info = serde_json::from_str(&up.stdout).unwrap();
        pod
    }

    pub(crate) fn target(&self) -> String {
        format!("sandbox/{}", self.name)
    }

    pub(crate) fn target_pid(&self) -> u32 {
        u32::try_from(self.info["target_pid"].as_u64().unwrap()).unwrap()
    }

    pub(crate) fn field(&self, key: &str) -> &str {
        self.info[key].as_str().unwrap()
    }

    pub(crate) fn db_ip(&self) -> &str {
        self.field("db_ip")
    }

    /// The contents of a file that exists only in the pod, as `sandbox up` reported it.
    pub(crate) fn file(&self, path: &str) -> &str {
        self.info["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|file| file["path"] == path)
            .unwrap_or_else(|| panic!("the pod has no {path}"))["contents"]
            .as_str()
            .unwrap()
    }

    pub(crate) fn first_line(&self, path: &str) -> &str {
        self.file(path).lines().next().unwrap()
    }

    /// Runs a shell script in the target's mount namespace (what the pod's own processes see).
    pub(crate) fn in_mount_namespace(&self, script: &str) -> Run {
        let pid = self.target_pid().to_string();
        run(
            "nsenter",
            &["--target", &pid, "--mount", "--", "sh", "-c", script],
        )
    }

    /// `mirrord exec --target sandbox/NAME FLAGS -- COMMAND`, as a not-yet-started command.
    pub(crate) fn exec_command(&self, flags: &[&str], command: &[&str]) -> Command {
        let mut mirrord = Command::new(MIRRORD);
        mirrord
            .args(["exec", "--target", &self.target()])
            .args(flags)
            .arg("--")
            .args(command)
            .current_dir(repo_root())
            .env(MARKER_ENV, &self.name);
        mirrord
    }

    pub(crate) fn exec_limited(&self, flags: &[&str], command: &[&str], limit: Duration) -> Run {
        run_bounded(self.exec_command(flags, command), limit)
    }

    pub(crate) fn exec(&self, flags: &[&str], command: &[&str]) -> Run {
        self.exec_limited(flags, command, RUN_LIMIT)
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let mut down = Command::new(MIRRORD);
        down.args(["sandbox", "down", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Ok(mut child) = down.spawn() {
            let deadline = Instant::now() + RUN_LIMIT;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for pid in marked_processes(&self.name) {
            kill_pid(pid);
        }
    }
}

/// Processes whose environment has `MARKER_ENV=name`.
pub(crate) fn marked_processes(name: &str) -> Vec<u32> {
    let marker = format!("{MARKER_ENV}={name}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != std::process::id())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                environ
                    .split(|byte| *byte == 0)
                    .any(|entry| entry == marker.as_bytes())
            })
        })
        .collect()
}

/// Where Go keeps its build cache: outside the clone, so only a machine's first run compiles the
/// standard library.
pub(crate) const GO_CACHE: &str = "/var/cache/mirrord-ci/go-build";

/// Builds `tests/e2e/go/probe.go` into `output` with this machine's Go: statically
/// (`CGO_ENABLED=0`) or the default, dynamically linked way.
pub(crate) fn build_go_probe(output: &Path, static_build: bool) {
    let mut build = Command::new("go");
    build
        .args(["build", "-o"])
        .arg(output)
        .arg(".")
        .current_dir(repo_root().join("tests/e2e/go"))
        .env("GOCACHE", GO_CACHE)
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", if static_build { "0" } else { "1" });
    let run = run_bounded(build, Duration::from_secs(600));
    assert!(run.status.success(), "go build: {}", run.describe());
}

/// A config file in `dir` receiving the pod's port 80 in `mode` (`port_mapping` from local
/// `port`), with `extra` incoming keys.
pub(crate) fn incoming_config(
    dir: &Path,
    label: &str,
    mode: &str,
    port: u16,
    extra: &str,
) -> PathBuf {
    let config = dir.join(format!("{label}-{}.json", std::process::id()));
    std::fs::write(
        &config,
        format!(
            r#"{{ "feature": {{ "network": {{ "incoming": {{ "mode": "{mode}", "port_mapping": [[{port}, 80]]{extra} }} }} }} }}"#
        ),
    )
    .unwrap();
    config
}

/// Builds the C program `tests/e2e/SOURCE` into `output`, linked statically (so that under
/// mirrord it takes the system-call path).
pub(crate) fn build_static_c(output: &Path, source: &str) {
    let mut build = Command::new("gcc");
    build
        .args(["-static", "-O1", "-pthread", "-o"])
        .arg(output)
        .arg(repo_root().join("tests/e2e").join(source));
    let run = run_bounded(build, Duration::from_secs(120));
    assert!(run.status.success(), "gcc -static: {}", run.describe());
}

/// Starts `command` in a process group of its own (killed with it when the leader is dropped),
/// waits up to 60 s for its first line of output, which must start with `ready`, and returns
/// the leader and the lines it prints after that.
pub(crate) fn spawn_until_ready(
    mut command: Command,
    ready: &str,
) -> (super::GroupLeader, Receiver<String>) {
    use std::io::{BufRead, BufReader};
    let what = describe_command(&command);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0);
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {what}: {error}"));
    let stdout = child.stdout.take().unwrap();
    let leader = super::GroupLeader(child);
    let (line_tx, line_rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                return;
            }
        }
    });
    let first = line_rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_default();
    assert!(
        first.starts_with(ready),
        "{what} did not start: its first line is {first:?}"
    );
    (leader, line_rx)
}
