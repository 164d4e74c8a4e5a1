//! `mirrord exec --target targetless` on a real Kubernetes control plane (`tests/cluster`): the
//! agent runs in a pod of its own whose network is the cluster's (the node runner's pod network:
//! a sandbox pod's network namespace, whose DNS server answers the cluster's `*.sandbox.svc`
//! names and whose db namespace is a service only that network reaches), and the user's side runs
//! as an unprivileged user (uid 65534). Without a cluster, targetless runs the agent on this
//! machine, still without root. Needs root for the harness (sandboxes, setpriv), python3,
//! kubectl and the control plane built by `tests/cluster/build.sh`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mirrord_test_cluster::{Cluster, ClusterOptions};
use support::{MIRRORD, Sandbox};

/// The uid and gid the user's side runs as (`nobody`/`nogroup` on Debian).
const UNPRIVILEGED: u32 = 65534;

/// A directory an unprivileged user can use: the `mirrord` binary, the agent and the layer (linked
/// or copied there, since the workspace may live where that user cannot reach), a home and a state
/// directory of its own. Removed on drop.
struct UserSide {
    dir: PathBuf,
}

impl UserSide {
    fn new(name: &str) -> UserSide {
        let dir = std::env::temp_dir().join(format!("mirrord-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("home/state")).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.join("bin"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let built = Path::new(MIRRORD).parent().unwrap();
        for file in ["mirrord", "mirrord-agent", "libmirrord_layer.so"] {
            let to = dir.join("bin").join(file);
            if std::fs::hard_link(built.join(file), &to).is_err() {
                std::fs::copy(built.join(file), &to).unwrap();
            }
        }
        for owned in ["home", "home/state"] {
            std::os::unix::fs::chown(dir.join(owned), Some(UNPRIVILEGED), Some(UNPRIVILEGED))
                .unwrap();
        }
        UserSide { dir }
    }

    /// `mirrord ARGS…` as the unprivileged user, with no kubeconfig unless `kubeconfig` names one.
    fn mirrord(&self, kubeconfig: Option<&Path>) -> Command {
        let mut command = Command::new("setpriv");
        command
            .args([
                &format!("--reuid={UNPRIVILEGED}"),
                &format!("--regid={UNPRIVILEGED}"),
                "--clear-groups",
                "--",
            ])
            .arg(self.dir.join("bin/mirrord"))
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.dir.join("home"))
            .env("XDG_STATE_HOME", self.dir.join("home/state"))
            .current_dir(self.dir.join("home"));
        if let Some(kubeconfig) = kubeconfig {
            command.env("KUBECONFIG", kubeconfig);
        }
        command
    }

    /// A command as the unprivileged user, without mirrord.
    fn plain(&self, program: &str) -> Command {
        let mut command = Command::new("setpriv");
        command
            .args([
                &format!("--reuid={UNPRIVILEGED}"),
                &format!("--regid={UNPRIVILEGED}"),
                "--clear-groups",
                "--",
                program,
            ])
            .current_dir(self.dir.join("home"));
        command
    }
}

impl Drop for UserSide {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Resolves a cluster-only name and talks to the cluster-only echo service; says who it ran as.
const PROBE: &str = r#"
import os, socket
print("UID", os.geteuid(), flush=True)
print("DNS", socket.gethostbyname("db.sandbox.svc"), flush=True)
with socket.create_connection(("db.sandbox.svc", 7), timeout=5) as echo:
    echo.sendall(b"ping over the cluster network\n")
    print("ECHO", echo.recv(100).decode().strip(), flush=True)
"#;

fn described(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn targetless_on_a_cluster_reaches_the_clusters_dns_and_services_without_root() {
    let network = Sandbox::up("kube-targetless");
    let cluster = Cluster::start_with_pod_network(ClusterOptions::default(), &network.name);
    let user = UserSide::new("targetless-cluster");
    let db_ip = network.info["dns_records"]["db.sandbox.svc"]
        .as_str()
        .unwrap()
        .to_owned();

    // The same user without mirrord reaches neither: the names and the service are the cluster's.
    let outside = user.plain("python3").args(["-c", PROBE]).output().unwrap();
    assert!(
        !outside.status.success() && !String::from_utf8_lossy(&outside.stdout).contains("DNS "),
        "db.sandbox.svc resolved outside the cluster: {}",
        described(&outside)
    );
    let direct = user
        .plain("python3")
        .args([
            "-c",
            &format!("import socket; socket.create_connection(('{db_ip}', 7), timeout=3)"),
        ])
        .output()
        .unwrap();
    assert!(
        !direct.status.success(),
        "{db_ip}:7 is reachable from this machine: {}",
        described(&direct)
    );

    let output = user
        .mirrord(Some(&cluster.kubeconfig))
        .args([
            "exec",
            "--target",
            "targetless",
            "--",
            "python3",
            "-c",
            PROBE,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\ncluster:\n{}",
        described(&output),
        cluster.logs()
    );
    assert!(
        stdout.contains(&format!("UID {UNPRIVILEGED}\n")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("DNS {db_ip}\n")), "{stdout}");
    assert!(
        stdout.contains("ECHO ping over the cluster network\n"),
        "{stdout}"
    );
    // The agent ran in a pod of its own: no host PID namespace, no container to find.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("creating the agent Job"), "{stderr}");
    let agent_log = cluster.container_logs_of("default", "mirrord-agent-");
    assert!(
        !agent_log.contains("found the target container's process"),
        "{agent_log}"
    );
}

#[test]
fn targetless_without_a_cluster_needs_no_root() {
    let user = UserSide::new("targetless-local");
    let output = user
        .mirrord(None)
        .args([
            "exec",
            "--target",
            "targetless",
            "--",
            "python3",
            "-c",
            "import os; print('UID', os.geteuid()); print('HOST', open('/etc/hostname').read().strip())",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", described(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("UID {UNPRIVILEGED}\n")),
        "{stdout}"
    );
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    assert!(
        stdout.contains(&format!("HOST {}\n", hostname.trim())),
        "{stdout}"
    );
}
