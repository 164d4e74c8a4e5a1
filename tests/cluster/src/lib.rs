//! A real Kubernetes control plane for tests, on loopback only: etcd, kube-apiserver (generated
//! CA and serving certificate, service-account key, a token file with an admin and a restricted
//! user, RBAC on), kube-controller-manager and kube-scheduler, plus one node: kwok keeps the node
//! alive and serves its kubelet API (port-forward), and `mirrord-node-runner` (this crate's
//! binary) runs the pods bound to it as real processes (see `src/bin/node_runner.rs`).
//!
//! The Go binaries are built once per machine by `tests/cluster/build.sh` into
//! `$MIRRORD_K8S_CACHE` (default `/var/cache/mirrord-ci/k8s`), keyed by the versions in
//! `tests/cluster/versions`. [`Cluster::start`] starts everything in a fresh directory and waits
//! until the node is ready and the `default` service account exists; dropping the [`Cluster`]
//! stops exactly the processes it started (also when a test panics), newest first.

mod certs;
mod workloads;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use certs::random_token;
pub use workloads::Backing;

/// The node every pod of the cluster runs on.
pub const NODE_NAME: &str = "mirrord-node";
/// The restricted user of the token file (see [`Cluster::restricted_kubeconfig`]).
pub const RESTRICTED_USER: &str = "mirrord-dev";
/// The agent image repository whose pods the node runner runs as the workspace's `mirrord-agent`.
pub const AGENT_IMAGE_REPOSITORY: &str = "ghcr.io/mirrord-rs/mirrord-agent";
/// Image prefix of containers backed by a sandbox pod: `sandbox.mirrord.test/<sandbox name>`.
pub const SANDBOX_IMAGE_PREFIX: &str = "sandbox.mirrord.test/";
/// Image of a container that just runs (a `sleep` process).
pub const IDLE_IMAGE: &str = "idle.mirrord.test/sleep:1";
/// The `kubernetes` service's address (allocated only; nothing is sent there).
pub(crate) const SERVICE_IP: [u8; 4] = [10, 96, 0, 1];

/// The versions in `tests/cluster/versions`.
#[derive(Debug, Clone)]
pub struct Versions {
    /// `k8s.io/kubernetes`.
    pub kubernetes: String,
    /// `go.etcd.io/etcd/server/v3`.
    pub etcd: String,
    /// `sigs.k8s.io/kwok`.
    pub kwok: String,
}

impl Versions {
    /// The versions this crate was built with.
    pub fn pinned() -> Versions {
        let text = include_str!("../versions");
        let get = |key: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("tests/cluster/versions has no {key}"))
                .trim()
                .to_owned()
        };
        Versions {
            kubernetes: get("K8S_VERSION"),
            etcd: get("ETCD_VERSION"),
            kwok: get("KWOK_VERSION"),
        }
    }
}

/// Where the binaries built by `tests/cluster/build.sh` are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// kube-apiserver, kube-controller-manager and kube-scheduler.
    pub kubernetes: PathBuf,
    /// etcd.
    pub etcd: PathBuf,
    /// kwok, with `share/` (its PortForward CRD and node stages) beside `bin/`.
    pub kwok: PathBuf,
}

impl Binaries {
    /// The cache's directories for the pinned versions; panics with the command that builds them
    /// when one is missing.
    pub fn find() -> Binaries {
        let cache = std::env::var_os("MIRRORD_K8S_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/cache/mirrord-ci/k8s"));
        let versions = Versions::pinned();
        let binaries = Binaries {
            kubernetes: cache.join(format!("kubernetes-{}", versions.kubernetes)),
            etcd: cache.join(format!("etcd-{}", versions.etcd)),
            kwok: cache.join(format!("kwok-{}", versions.kwok)),
        };
        for path in [
            binaries.kubernetes.join("bin/kube-apiserver"),
            binaries.kubernetes.join("bin/kube-controller-manager"),
            binaries.kubernetes.join("bin/kube-scheduler"),
            binaries.etcd.join("bin/etcd"),
            binaries.kwok.join("bin/kwok"),
            binaries.kwok.join("share/kwok.x-k8s.io_portforwards.yaml"),
        ] {
            assert!(
                path.exists(),
                "{} is missing: build the control plane first with tests/cluster/build.sh",
                path.display()
            );
        }
        binaries
    }
}

/// How to start a cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Register the Argo Rollouts CRD (`rollouts.argoproj.io`).
    pub rollouts: bool,
}

#[derive(Debug)]
struct Process {
    name: &'static str,
    child: Child,
}

/// A running cluster; stopped on drop.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    processes: Vec<Process>,
    /// `https://127.0.0.1:PORT`.
    pub server: String,
    /// A kubeconfig for the admin user (`system:masters`), namespace `default`.
    pub kubeconfig: PathBuf,
    /// A kubeconfig for [`RESTRICTED_USER`], who may do what mirrord needs in `default` except
    /// `list` jobs.
    pub restricted_kubeconfig: PathBuf,
    binaries: Binaries,
    api_server_args: Vec<String>,
}

/// The directory holding the workspace's binaries (`target/debug`), found from the running test,
/// or `$MIRRORD_BINARY_DIR`.
pub fn binary_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MIRRORD_BINARY_DIR") {
        return PathBuf::from(dir);
    }
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

const ROLLOUT_CRD: &str = r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
 "metadata": {"name": "rollouts.argoproj.io"},
 "spec": {"group": "argoproj.io", "scope": "Namespaced",
  "names": {"kind": "Rollout", "listKind": "RolloutList", "plural": "rollouts", "singular": "rollout", "shortNames": ["ro"]},
  "versions": [{"name": "v1alpha1", "served": true, "storage": true,
   "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
   "subresources": {"status": {}}}]}}"#;

/// What the restricted user may do in `default`: everything mirrord needs except `list` jobs,
/// `copy_target` and `scale_down` included (pods made and deleted, the workload patched, and the
/// agent's ServiceAccount, Role and RoleBinding to undo the copy itself).
const RESTRICTED_ROLE: &str = r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
 "metadata": {"name": "mirrord-dev", "namespace": "default"},
 "rules": [
  {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "create", "delete", "patch"]},
  {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["create", "delete", "patch"]},
  {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["create", "delete", "patch"]},
  {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets"], "verbs": ["patch"]},
  {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["create", "get"]},
  {"apiGroups": [""], "resources": ["pods/ephemeralcontainers"], "verbs": ["patch", "get"]},
  {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "delete", "get", "patch"]},
  {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list"]},
  {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "replicasets"], "verbs": ["get", "list"]},
  {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "watch", "create", "delete", "patch"]},
  {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get", "list"]},
  {"apiGroups": ["argoproj.io"], "resources": ["rollouts"], "verbs": ["get", "list"]}]}"#;

const RESTRICTED_BINDING: &str = r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
 "metadata": {"name": "mirrord-dev", "namespace": "default"},
 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "mirrord-dev"},
 "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mirrord-dev"}]}"#;

impl Cluster {
    /// Starts a cluster in a new temporary directory and waits until it can run pods.
    pub fn start(options: ClusterOptions) -> Cluster {
        Cluster::start_inner(options, None)
    }

    /// Starts a cluster whose pods with a network of their own (a targetless agent's pod) run in
    /// the network of the sandbox pod `sandbox`, which must be up: its DNS server is the
    /// cluster's DNS (`*.sandbox.svc`), its db namespace a service only the cluster reaches.
    pub fn start_with_pod_network(options: ClusterOptions, sandbox: &str) -> Cluster {
        Cluster::start_inner(options, Some(sandbox))
    }

    fn start_inner(options: ClusterOptions, pod_network: Option<&str>) -> Cluster {
        let binaries = Binaries::find();
        let dir = std::env::temp_dir().join(format!(
            "mirrord-test-cluster-{}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(dir.join("logs")).expect("a temporary directory");
        let credentials = certs::write(&dir).unwrap_or_else(|e| panic!("{e}"));
        let admin_token = random_token();
        let restricted_token = random_token();
        std::fs::write(
            dir.join("tokens.csv"),
            format!(
                "{admin_token},admin,admin-uid,\"system:masters\"\n{restricted_token},{RESTRICTED_USER},{RESTRICTED_USER}-uid\n"
            ),
        )
        .expect("the token file");
        let api_port = free_port();
        let server = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = dir.join("kubeconfig");
        let restricted_kubeconfig = dir.join("kubeconfig-restricted");
        for (path, user, token) in [
            (&kubeconfig, "admin", &admin_token),
            (&restricted_kubeconfig, RESTRICTED_USER, &restricted_token),
        ] {
            std::fs::write(
                path,
                format!(
                    "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: {user}\n    namespace: default\ncurrent-context: test\nusers:\n- name: {user}\n  user:\n    token: {token}\n",
                    ca = credentials.ca_cert.display()
                ),
            )
            .expect("a kubeconfig");
        }

        let mut cluster = Cluster {
            dir: dir.clone(),
            processes: Vec::new(),
            server,
            kubeconfig: kubeconfig.clone(),
            restricted_kubeconfig,
            binaries: binaries.clone(),
            api_server_args: Vec::new(),
        };

        let etcd_port = free_port();
        let etcd_peer_port = free_port();
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
        cluster.spawn(
            "etcd",
            binaries.etcd.join("bin/etcd"),
            vec![
                "--name=test".to_owned(),
                format!("--data-dir={}", dir.join("etcd").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=test={peer_url}"),
                "--listen-metrics-urls=".to_owned(),
                "--unsafe-no-fsync".to_owned(),
                "--log-level=warn".to_owned(),
            ],
        );

        let key = |path: &Path| path.display().to_string();
        cluster.api_server_args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            format!("--secure-port={api_port}"),
            format!("--tls-cert-file={}", key(&credentials.serving_cert)),
            format!("--tls-private-key-file={}", key(&credentials.serving_key)),
            format!("--client-ca-file={}", key(&credentials.ca_cert)),
            format!("--token-auth-file={}", dir.join("tokens.csv").display()),
            "--authorization-mode=RBAC".to_owned(),
            format!(
                "--service-account-key-file={}",
                key(&credentials.service_account_public_key)
            ),
            format!(
                "--service-account-signing-key-file={}",
                key(&credentials.service_account_key)
            ),
            "--service-account-issuer=https://kubernetes.default.svc".to_owned(),
            "--service-cluster-ip-range=10.96.0.0/16".to_owned(),
            "--endpoint-reconciler-type=none".to_owned(),
            "--allow-privileged=true".to_owned(),
            "--kubelet-preferred-address-types=InternalIP".to_owned(),
            "--profiling=false".to_owned(),
            "--v=1".to_owned(),
        ];
        cluster.start_api_server();
        cluster.wait_until("the API server is ready", Duration::from_secs(60), |c| {
            c.kubectl()
                .args(["get", "--raw", "/readyz"])
                .output()
                .is_ok_and(|o| o.status.success())
        });

        // The node, before kwok (which manages it by name) and the scheduler.
        cluster.apply(&format!(
            r#"{{"apiVersion": "v1", "kind": "Node", "metadata": {{"name": "{NODE_NAME}",
              "labels": {{"kubernetes.io/hostname": "{NODE_NAME}", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "type": "kwok"}},
              "annotations": {{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}}}}}}"#
        ));
        let portforward_crd =
            std::fs::read_to_string(binaries.kwok.join("share/kwok.x-k8s.io_portforwards.yaml"))
                .expect("kwok's PortForward CRD");
        cluster.apply(&portforward_crd);
        if options.rollouts {
            cluster.apply(ROLLOUT_CRD);
        }
        cluster.apply(RESTRICTED_ROLE);
        cluster.apply(RESTRICTED_BINDING);
        let mut crds = vec!["crd/portforwards.kwok.x-k8s.io"];
        if options.rollouts {
            crds.push("crd/rollouts.argoproj.io");
        }
        let waited = cluster
            .kubectl()
            .args(["wait", "--for=condition=Established", "--timeout=30s"])
            .args(&crds)
            .output()
            .expect("kubectl runs");
        assert!(
            waited.status.success(),
            "CRDs not established: {}",
            String::from_utf8_lossy(&waited.stderr)
        );

        let admin = key(&kubeconfig);
        cluster.spawn(
            "kube-controller-manager",
            binaries.kubernetes.join("bin/kube-controller-manager"),
            vec![
                format!("--kubeconfig={admin}"),
                "--secure-port=0".to_owned(),
                "--leader-elect=false".to_owned(),
                "--use-service-account-credentials=false".to_owned(),
                format!(
                    "--service-account-private-key-file={}",
                    key(&credentials.service_account_key)
                ),
                format!("--root-ca-file={}", key(&credentials.ca_cert)),
                "--profiling=false".to_owned(),
                "--v=1".to_owned(),
            ],
        );
        cluster.spawn(
            "kube-scheduler",
            binaries.kubernetes.join("bin/kube-scheduler"),
            vec![
                format!("--kubeconfig={admin}"),
                "--secure-port=0".to_owned(),
                "--leader-elect=false".to_owned(),
                "--profiling=false".to_owned(),
                "--v=1".to_owned(),
            ],
        );

        let kwok_config = dir.join("kwok.yaml");
        let stages: Vec<String> = ["node-initialize.yaml", "node-heartbeat-with-lease.yaml"]
            .iter()
            .map(|file| {
                std::fs::read_to_string(binaries.kwok.join("share").join(file))
                    .unwrap_or_else(|e| panic!("kwok's {file}: {e}"))
            })
            .collect();
        std::fs::write(&kwok_config, stages.join("\n---\n")).expect("kwok's configuration");
        let kubelet_port = free_port();
        cluster.spawn(
            "kwok",
            binaries.kwok.join("bin/kwok"),
            vec![
                format!("--kubeconfig={admin}"),
                format!("--config={}", kwok_config.display()),
                format!("--manage-single-node={NODE_NAME}"),
                "--node-ip=127.0.0.1".to_owned(),
                format!("--node-port={kubelet_port}"),
                format!("--server-address=127.0.0.1:{kubelet_port}"),
                format!("--tls-cert-file={}", key(&credentials.serving_cert)),
                format!("--tls-private-key-file={}", key(&credentials.serving_key)),
                "--node-lease-duration-seconds=40".to_owned(),
                "--enable-crds=PortForward".to_owned(),
            ],
        );
        let mut runner_args = vec![
            format!("--kubeconfig={admin}"),
            format!("--node={NODE_NAME}"),
            format!(
                "--agent={AGENT_IMAGE_REPOSITORY}={}",
                workspace_binary("mirrord-agent").display()
            ),
            format!("--log-dir={}", dir.join("logs").display()),
            format!("--mirrord={}", workspace_binary("mirrord").display()),
        ];
        if let Some(sandbox) = pod_network {
            runner_args.push(format!("--pod-network={sandbox}"));
        }
        cluster.spawn(
            "mirrord-node-runner",
            workspace_binary("mirrord-node-runner"),
            runner_args,
        );

        cluster.wait_until(
            "the node is ready and the default service account exists",
            Duration::from_secs(60),
            |c| {
                let node = c
                    .kubectl()
                    .args([
                        "get",
                        "node",
                        NODE_NAME,
                        "-o",
                        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                    ])
                    .output();
                let account = c
                    .kubectl()
                    .args(["get", "serviceaccount", "default", "-o", "name"])
                    .output();
                node.is_ok_and(|o| o.stdout == b"True") && account.is_ok_and(|o| o.status.success())
            },
        );
        cluster
    }

    fn start_api_server(&mut self) {
        let args = self.api_server_args.clone();
        let binary = self.binaries.kubernetes.join("bin/kube-apiserver");
        self.spawn("kube-apiserver", binary, args);
    }

    fn spawn(&mut self, name: &'static str, binary: PathBuf, args: Vec<String>) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))
            .expect("a log file");
        let child = Command::new(&binary)
            .args(&args)
            .current_dir(&self.dir)
            .env("HOME", &self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        self.processes.push(Process { name, child });
    }

    fn wait_until(&mut self, what: &str, limit: Duration, mut check: impl FnMut(&Cluster) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            if check(self) {
                return;
            }
            let exited = self
                .processes
                .iter_mut()
                .find_map(|p| Some((p.name, p.child.try_wait().ok()??)));
            if let Some((name, status)) = exited {
                panic!(
                    "{name} exited ({status}) while waiting until {what}; its log:\n{}",
                    tail(&self.log(name))
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting until {what}; logs:\n{}",
                    self.processes
                        .iter()
                        .map(|p| format!("== {}\n{}", p.name, tail(&self.log(p.name))))
                        .collect::<String>()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The cluster's directory (kubeconfigs, certificates, logs); removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A component's log so far (`etcd`, `kube-apiserver`, `kwok`, `mirrord-node-runner`, …).
    pub fn log(&self, component: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{component}.log"))).unwrap_or_default()
    }

    /// What a container wrote to stderr and stdout, as the node runner kept it.
    pub fn container_log(&self, namespace: &str, pod: &str, container: &str) -> String {
        std::fs::read_to_string(
            self.dir
                .join("logs")
                .join(format!("{namespace}_{pod}_{container}.log")),
        )
        .unwrap_or_default()
    }

    /// Every container log whose pod name starts with `prefix`, concatenated.
    pub fn container_logs_of(&self, namespace: &str, prefix: &str) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(self.dir.join("logs"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!("{namespace}_{prefix}")) {
                out.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        out
    }

    /// Every component's log, for a failing test's message.
    pub fn logs(&self) -> String {
        self.processes
            .iter()
            .map(|p| format!("== {}\n{}", p.name, tail(&self.log(p.name))))
            .collect()
    }

    /// kubectl as the admin user.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new("kubectl");
        command.env("KUBECONFIG", &self.kubeconfig);
        command
    }

    /// `kubectl apply` of JSON or YAML objects as the admin user; panics on failure.
    pub fn apply(&self, objects: &str) -> Output {
        let mut child = self
            .kubectl()
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs (apt-get install kubernetes-client)");
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(objects.as_bytes())
            .expect("kubectl reads the objects");
        let output = child.wait_with_output().expect("kubectl finishes");
        assert!(
            output.status.success(),
            "kubectl apply failed: {}\n{objects}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// `kubectl get …` as the admin user; stdout, panicking on failure.
    pub fn get(&self, args: &[&str]) -> String {
        let output = self
            .kubectl()
            .arg("get")
            .args(args)
            .output()
            .expect("kubectl runs");
        assert!(
            output.status.success(),
            "kubectl get {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits until `kubectl get ARGS` prints `expected` (e.g. a jsonpath's value).
    pub fn wait_for(&self, args: &[&str], expected: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut last = String::new();
        while Instant::now() < deadline {
            let output = self.kubectl().arg("get").args(args).output();
            if let Ok(output) = output {
                last = String::from_utf8_lossy(&output.stdout).into_owned();
                if last.trim() == expected {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "kubectl get {args:?} printed {last:?}, not {expected:?}, after {limit:?}; node runner:\n{}",
            tail(&self.log("mirrord-node-runner"))
        );
    }

    /// Kills the API server abruptly (SIGKILL), as when it dies: connections reset.
    pub fn kill_api_server(&mut self) {
        if let Some(index) = self
            .processes
            .iter()
            .position(|p| p.name == "kube-apiserver")
        {
            let mut process = self.processes.remove(index);
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
    }

    /// The process id of a component.
    pub fn pid(&self, component: &str) -> Option<u32> {
        self.processes
            .iter()
            .find(|p| p.name == component)
            .map(|p| p.child.id())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Newest first: the node runner kills its containers on SIGTERM; the control plane goes
        // last so the node runner can still finish.
        while let Some(mut process) = self.processes.pop() {
            let _ = Command::new("kill")
                .args(["-TERM", &process.child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if matches!(process.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
        if std::env::var_os("MIRRORD_KEEP_CLUSTER_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The last 60 lines of a log.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n") + "\n"
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}
