//! Starting the fixture API server from tests: [`Fixture::start`] runs the `mirrord-kube-fixture`
//! binary (built beside the test binaries by `cargo build --workspace`), waits for it, and stops
//! it on drop (closing its stdin makes it kill what its kubelet started and undo its cgroups).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How to start the fixture.
#[derive(Debug, Clone, Default)]
pub struct FixtureOptions {
    /// Seeded pods backed by processes: `NAMESPACE/POD[/CONTAINER]=PID`.
    pub pods: Vec<String>,
    /// RBAC denials: `VERB:RESOURCE`.
    pub forbid: Vec<String>,
    /// Serve without the Argo Rollouts CRD.
    pub no_rollouts: bool,
}

/// A running fixture.
#[derive(Debug)]
pub struct Fixture {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    /// `http://127.0.0.1:PORT` (no authentication).
    pub http_url: String,
    /// `https://127.0.0.1:PORT` (CA and token in the kubeconfig).
    pub https_url: String,
    /// A kubeconfig for it (contexts `fixture`, the current one, and `fixture-http`).
    pub kubeconfig: PathBuf,
    dir: PathBuf,
}

/// The directory holding the workspace's binaries (`target/debug`), found from the running test.
pub fn binary_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut dir = exe.parent().expect("a directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// A binary of the workspace, with a hint to build it when it is missing.
pub fn workspace_binary(name: &str) -> PathBuf {
    let path = binary_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing; build the workspace first (`cargo build --workspace`)",
        path.display()
    );
    path
}

/// The agent image the fixture's node can run: any tag of this repository.
pub const AGENT_IMAGE_REPOSITORY: &str = "ghcr.io/mirrord-rs/mirrord-agent";

impl Fixture {
    /// Starts the fixture with the seed next to its sources and the workspace's agent as the agent
    /// image.
    pub fn start(options: FixtureOptions) -> Fixture {
        let dir = std::env::temp_dir().join(format!(
            "mirrord-kube-fixture-{}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let kubeconfig = dir.join("kubeconfig");
        let mut command = Command::new(workspace_binary("mirrord-kube-fixture"));
        command
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .arg("--image")
            .arg(format!(
                "{AGENT_IMAGE_REPOSITORY}={}",
                workspace_binary("mirrord-agent").display()
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("fixture.log")).expect("a log file"),
            ));
        for pod in &options.pods {
            command.arg("--pod").arg(pod);
        }
        for denial in &options.forbid {
            command.arg("--forbid").arg(denial);
        }
        if options.no_rollouts {
            command.arg("--no-rollouts");
        }
        let mut child = command.spawn().expect("the fixture starts");
        let stdout = child.stdout.take().expect("piped");
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut http_url, mut https_url) = (String::new(), String::new());
        loop {
            let line = match lines_rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => line,
                Err(_) => panic!(
                    "the fixture did not start; its log:\n{}",
                    std::fs::read_to_string(dir.join("fixture.log")).unwrap_or_default()
                ),
            };
            if let Some(url) = line.strip_prefix("MIRRORD_KUBE_FIXTURE_HTTP=") {
                http_url = url.to_owned();
            } else if let Some(url) = line.strip_prefix("MIRRORD_KUBE_FIXTURE_HTTPS=") {
                https_url = url.to_owned();
            } else if line == "MIRRORD_KUBE_FIXTURE_READY=1" {
                break;
            }
        }
        let stdin = child.stdin.take();
        Fixture {
            child: Some(child),
            stdin,
            http_url,
            https_url,
            kubeconfig,
            dir,
        }
    }

    /// The fixture's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The fixture's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("fixture.log")).unwrap_or_default()
    }

    /// The directory of this fixture's files (kubeconfig, log), removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills the API server abruptly (SIGKILL), as when it dies: connections reset, nothing
    /// cleaned up by it (the processes its kubelet started die with it).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            for _ in 0..50 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}
