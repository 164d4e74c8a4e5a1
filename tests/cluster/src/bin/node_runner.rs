//! `mirrord-node-runner`: the container runtime of the test cluster's one node. kwok keeps the
//! node alive and serves its kubelet API; this watches the pods the real scheduler binds to the
//! node and runs them for real, reporting their state in the pod's status as a kubelet does:
//!
//! - `ghcr.io/mirrord-rs/mirrord-agent:*` runs the workspace's `mirrord-agent` with the pod's
//!   command, args and environment (`value`, `secretKeyRef` read from the real Secret, `fieldRef`);
//!   its `--listen HOST:PORT` becomes a free loopback port, published to kwok as a `PortForward`
//!   for container port PORT, so the API server's port-forward reaches the agent.
//! - `sandbox.mirrord.test/NAME` is backed by the sandbox pod NAME (`mirrord sandbox up NAME`):
//!   its target process is placed in a cgroup named after the container ID written into the
//!   status (as containerd does), the pod IP is the sandbox's, container ports forward to it.
//!   A second live pod with the same image (another replica, or mirrord's copy of the pod) gets a
//!   sandbox pod of its own, `NAME-2`, `NAME-3`, …, brought up with `--mirrord=BINARY`'s
//!   `sandbox serve` and removed with the pod, so no two pods share a process or an address.
//! - `idle.mirrord.test/sleep:*` runs the container's command on this machine (`sleep infinity`
//!   without one).
//! - Any other image fails as an unknown image does: `ErrImagePull`, then `ImagePullBackOff`.
//!
//! With `--pod-network=SANDBOX`, the containers it runs as processes in pods that have a network
//! of their own (not `hostNetwork`, not `hostPID`: a targetless agent's pod, for example) run in
//! the network namespace of the sandbox pod SANDBOX with its `/etc/resolv.conf` (bind-mounted in
//! a mount namespace of their own): the "cluster network", where the sandbox's DNS server answers
//! the cluster's names and its db namespace is a service only the cluster reaches. The runner
//! re-runs itself as `mirrord-node-runner enter-pod-network NETNS RESOLV_CONF -- PROGRAM ARGS…`,
//! which enters them while it is still single-threaded and then executes the program.
//!
//! Containers run as processes get what a kubelet gives them of their pod's service account
//! (token, CA, namespace, `KUBERNETES_SERVICE_*`; see `service_account.rs`), unless the pod says
//! `automountServiceAccountToken: false`.
//!
//! A pod being deleted has its processes killed and is then removed (grace period 0). On SIGTERM
//! or SIGINT every process it started is killed and every cgroup undone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, Preconditions, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Notify;

#[path = "node_runner/service_account.rs"]
mod service_account;

const SANDBOX_IMAGE_PREFIX: &str = "sandbox.mirrord.test/";
const IDLE_IMAGE_REPOSITORY: &str = "idle.mirrord.test/sleep";
const CGROUP_PARENT: &str = "mirrord-node-runner";
const FIELD_MANAGER: &str = "mirrord-node-runner";

#[derive(Debug)]
struct Args {
    kubeconfig: PathBuf,
    node: String,
    agent_repository: String,
    agent_binary: PathBuf,
    log_dir: PathBuf,
    /// The sandbox pod whose network the pods with a network of their own join.
    pod_network: Option<String>,
    /// The `mirrord` binary, to bring up sandbox pods for extra pods of a sandbox image.
    mirrord: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut kubeconfig = None;
    let mut node = None;
    let mut agent = None;
    let mut log_dir = None;
    let mut pod_network = None;
    let mut mirrord = None;
    for arg in std::env::args().skip(1) {
        let (key, value) = arg
            .split_once('=')
            .ok_or_else(|| format!("argument `{arg}` is not --KEY=VALUE"))?;
        match key {
            "--kubeconfig" => kubeconfig = Some(PathBuf::from(value)),
            "--node" => node = Some(value.to_owned()),
            "--agent" => {
                let (repository, binary) = value
                    .split_once('=')
                    .ok_or("--agent takes REPOSITORY=BINARY")?;
                agent = Some((repository.to_owned(), PathBuf::from(binary)));
            }
            "--log-dir" => log_dir = Some(PathBuf::from(value)),
            "--pod-network" => pod_network = Some(value.to_owned()),
            "--mirrord" => mirrord = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown argument `{key}`")),
        }
    }
    let (agent_repository, agent_binary) = agent.ok_or("--agent is required")?;
    Ok(Args {
        kubeconfig: kubeconfig.ok_or("--kubeconfig is required")?,
        node: node.ok_or("--node is required")?,
        agent_repository,
        agent_binary,
        log_dir: log_dir.ok_or("--log-dir is required")?,
        pod_network,
        mirrord,
    })
}

/// `(pod uid, container name, ephemeral)`.
type Key = (String, String, bool);

#[derive(Debug, Clone)]
enum RunState {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: String,
        ready: bool,
    },
    Terminated {
        exit_code: i32,
        reason: String,
        started_at: String,
        finished_at: String,
    },
}

#[derive(Debug)]
struct Run {
    state: RunState,
    /// The process group this runner started (never a sandbox's process).
    group: Option<u32>,
    /// A process placed in a cgroup, and that cgroup.
    cgroup: Option<(u32, PathBuf)>,
    since: Instant,
}

#[derive(Debug, Default)]
struct State {
    runs: HashMap<Key, Run>,
    /// `(namespace, pod)` → container port → where it really listens.
    forwards: HashMap<(String, String), BTreeMap<u16, SocketAddr>>,
    /// What was last published to kwok, per pod.
    published: HashMap<(String, String), BTreeMap<u16, SocketAddr>>,
    /// `pod uid` → pod IP (the sandbox's, for backed pods).
    pod_ips: HashMap<String, String>,
    /// `pod uid` → the status last written.
    written: HashMap<String, Value>,
    /// A sandbox-backed container → its sandbox pod, and whether this runner brought it up.
    backings: HashMap<Key, (String, bool)>,
}

/// Where a pod with a network of its own runs (see `--pod-network`).
#[derive(Debug, Clone)]
struct PodNetwork {
    /// The network namespace's file.
    netns: PathBuf,
    /// The file bind-mounted over `/etc/resolv.conf`.
    resolv_conf: PathBuf,
    /// The pod's address in that network.
    pod_ip: String,
}

/// The runner's subcommand that enters a pod network and executes a container's program.
const ENTER_POD_NETWORK: &str = "enter-pod-network";

struct Runner {
    client: kube::Client,
    /// Where pods reach the API server (see `service_account.rs`).
    api_server: service_account::ApiServer,
    args: Args,
    state: Mutex<State>,
    wake: Notify,
    cgroup_root: Option<PathBuf>,
}

impl Runner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pods(&self) -> Api<Pod> {
        Api::all(self.client.clone())
    }

    fn field_selector(&self) -> String {
        format!("spec.nodeName={}", self.args.node)
    }

    /// Wakes the reconcile loop on every change to a pod of the node.
    async fn watch(self: Arc<Self>) {
        loop {
            let listed = self
                .pods()
                .list_metadata(&ListParams::default().fields(&self.field_selector()))
                .await;
            let Ok(list) = listed else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            self.wake.notify_one();
            let version = list.metadata.resource_version.unwrap_or_default();
            let params = WatchParams::default()
                .fields(&self.field_selector())
                .timeout(290);
            let Ok(stream) = self.pods().watch(&params, &version).await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                if event.is_err() {
                    break;
                }
                self.wake.notify_one();
            }
        }
    }

    async fn run(self: Arc<Self>) {
        loop {
            if let Ok(pods) = self
                .pods()
                .list(&ListParams::default().fields(&self.field_selector()))
                .await
            {
                self.reconcile(pods.items).await;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn reconcile(self: &Arc<Self>, pods: Vec<Pod>) {
        let live: HashSet<String> = pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
        let gone: Vec<Key> = self
            .state()
            .runs
            .keys()
            .filter(|(uid, _, _)| !live.contains(uid))
            .cloned()
            .collect();
        for key in gone {
            self.stop(&key);
        }
        {
            let mut state = self.state();
            state.written.retain(|uid, _| live.contains(uid));
            state.pod_ips.retain(|uid, _| live.contains(uid));
        }
        let live_pods: HashSet<(String, String)> = pods
            .iter()
            .map(|p| {
                (
                    p.metadata.namespace.clone().unwrap_or_default(),
                    p.metadata.name.clone().unwrap_or_default(),
                )
            })
            .collect();
        let stale: Vec<(String, String)> = self
            .state()
            .published
            .keys()
            .filter(|k| !live_pods.contains(*k))
            .cloned()
            .collect();
        for pod in stale {
            self.state().published.remove(&pod);
            self.state().forwards.remove(&pod);
            self.unpublish(&pod.0, &pod.1).await;
        }
        for pod in pods {
            if let Err(error) = self.reconcile_pod(&pod).await {
                tracing::warn!(pod = ?pod.metadata.name, %error, "reconcile failed");
            }
        }
    }

    async fn reconcile_pod(self: &Arc<Self>, pod: &Pod) -> Result<(), String> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            let keys: Vec<Key> = self
                .state()
                .runs
                .keys()
                .filter(|(u, _, _)| *u == uid)
                .cloned()
                .collect();
            for key in keys {
                self.stop(&key);
            }
            self.state()
                .forwards
                .remove(&(namespace.clone(), name.clone()));
            self.state()
                .published
                .remove(&(namespace.clone(), name.clone()));
            self.unpublish(&namespace, &name).await;
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            let _ = Api::<Pod>::namespaced(self.client.clone(), &namespace)
                .delete(&name, &params)
                .await;
            tracing::info!(pod = %format!("{namespace}/{name}"), "pod deleted");
            return Ok(());
        }
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if !matches!(phase.as_str(), "Succeeded" | "Failed") {
            for container in &spec.containers {
                self.ensure_started(pod, container, false).await;
            }
        }
        for ephemeral in spec.ephemeral_containers.iter().flatten() {
            let container: Container =
                serde_json::from_value(serde_json::to_value(ephemeral).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
            self.ensure_started(pod, &container, true).await;
        }
        self.publish(&namespace, &name).await;
        self.write_status(pod).await
    }

    fn stop(&self, key: &Key) {
        let Some(run) = self.state().runs.remove(key) else {
            return;
        };
        if let Some(group) = run.group {
            kill_group(group);
        }
        if let Some((pid, dir)) = run.cgroup {
            release_cgroup(pid, &dir);
        }
        if let Some((sandbox, true)) = self.state().backings.remove(key) {
            match mirrord_sandbox::Sandbox::down(&sandbox) {
                Ok(()) => tracing::info!(sandbox, "sandbox pod of a stopped pod removed"),
                Err(error) => tracing::warn!(sandbox, %error, "cannot remove a sandbox pod"),
            }
        }
        tracing::info!(container = %key.1, "container stopped");
    }

    /// The sandbox pod backing `key`: `requested` when no other pod uses it, else one of its own
    /// (`requested-2`, …), brought up now.
    async fn backing_sandbox(
        &self,
        key: &Key,
        requested: &str,
    ) -> Result<mirrord_sandbox::SandboxInfo, String> {
        let in_use = |state: &State, name: &str| {
            state
                .backings
                .iter()
                .any(|(other, (sandbox, _))| sandbox == name && other.0 != key.0)
        };
        let requested_free = !in_use(&self.state(), requested);
        if requested_free {
            let info = mirrord_sandbox::Sandbox::get(requested)
                .ok()
                .flatten()
                .ok_or("no sandbox pod of that name is up")?;
            self.state()
                .backings
                .insert(key.clone(), (requested.to_owned(), false));
            return Ok(info);
        }
        let Some(mirrord) = self.args.mirrord.clone() else {
            return Err(format!(
                "sandbox pod {requested} backs another pod and the runner has no --mirrord to bring up another"
            ));
        };
        let name = (2..100)
            .map(|index| format!("{requested}-{index}"))
            .find(|name| !in_use(&self.state(), name))
            .ok_or("no free sandbox name")?;
        let helper = vec![mirrord.into_os_string(), "sandbox".into(), "serve".into()];
        let up_name = name.clone();
        let info = tokio::task::spawn_blocking(move || {
            mirrord_sandbox::Sandbox::up(&up_name, &mirrord_sandbox::UpOptions::new(helper))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot bring up sandbox pod {name}: {e}"))?;
        tracing::info!(sandbox = %name, "sandbox pod brought up for another pod of the same image");
        self.state().backings.insert(key.clone(), (name, true));
        Ok(info)
    }

    async fn ensure_started(self: &Arc<Self>, pod: &Pod, container: &Container, ephemeral: bool) {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = (uid.clone(), container.name.clone(), ephemeral);
        let image = container.image.clone().unwrap_or_default();
        {
            let mut state = self.state();
            if let Some(run) = state.runs.get_mut(&key) {
                match &run.state {
                    RunState::Waiting { reason, .. } if reason == "ErrImagePull" => {
                        if run.since.elapsed() >= Duration::from_millis(800) {
                            run.state = RunState::Waiting {
                                reason: "ImagePullBackOff".to_owned(),
                                message: format!("Back-off pulling image \"{image}\""),
                            };
                        }
                        return;
                    }
                    RunState::Waiting { reason, .. } if reason == "CreateContainerConfigError" => {}
                    _ => return,
                }
            }
        }
        let container_id = container_id(&uid, &container.name);
        let repository = image_repository(&image);
        if let Some(sandbox) = image.strip_prefix(SANDBOX_IMAGE_PREFIX) {
            let sandbox = image_repository(sandbox);
            match self.backing_sandbox(&key, &sandbox).await {
                Ok(info) => {
                    let cgroup = self.place(info.target_pid, &container_id);
                    let mut state = self.state();
                    state.pod_ips.insert(uid, info.sandbox_ip.to_string());
                    let forwards = state
                        .forwards
                        .entry((namespace.clone(), pod_name.clone()))
                        .or_default();
                    for port in container.ports.iter().flatten() {
                        if let Ok(port) = u16::try_from(port.container_port) {
                            forwards.insert(port, SocketAddr::new(info.sandbox_ip.into(), port));
                        }
                    }
                    state.runs.insert(
                        key,
                        Run {
                            state: RunState::Running {
                                started_at: now_rfc3339(),
                                ready: true,
                            },
                            group: None,
                            cgroup,
                            since: Instant::now(),
                        },
                    );
                    tracing::info!(pod = %format!("{namespace}/{pod_name}"), sandbox = %info.name, pid = info.target_pid, "container backed by a sandbox pod");
                }
                Err(why) => self.image_pull_failed(key, &image, &why),
            }
            return;
        }
        let (binary, mut argv) = if repository == self.args.agent_repository {
            let mut argv: Vec<String> = container
                .command
                .iter()
                .flatten()
                .skip(1)
                .cloned()
                .collect();
            argv.extend(container.args.iter().flatten().cloned());
            (self.args.agent_binary.clone(), argv)
        } else if repository == IDLE_IMAGE_REPOSITORY {
            let mut argv: Vec<String> = container.command.iter().flatten().cloned().collect();
            argv.extend(container.args.iter().flatten().cloned());
            if argv.is_empty() {
                argv = vec!["sleep".to_owned(), "infinity".to_owned()];
            }
            let binary = PathBuf::from(argv.remove(0));
            (binary, argv)
        } else {
            self.image_pull_failed(key, &image, "not found");
            return;
        };
        let environment = match self.environment(pod, container).await {
            Ok(environment) => environment,
            Err(message) => {
                self.state().runs.insert(
                    key,
                    Run {
                        state: RunState::Waiting {
                            reason: "CreateContainerConfigError".to_owned(),
                            message,
                        },
                        group: None,
                        cgroup: None,
                        since: Instant::now(),
                    },
                );
                return;
            }
        };
        let spec = pod.spec.clone().unwrap_or_default();
        let own_network =
            !ephemeral && spec.host_pid != Some(true) && spec.host_network != Some(true);
        let pod_network = match &self.args.pod_network {
            Some(sandbox) if own_network => match self.pod_network(sandbox) {
                Ok(network) => Some(network),
                Err(message) => {
                    self.state().runs.insert(
                        key,
                        Run {
                            state: RunState::Waiting {
                                reason: "CreateContainerError".to_owned(),
                                message,
                            },
                            group: None,
                            cgroup: None,
                            since: Instant::now(),
                        },
                    );
                    return;
                }
            },
            _ => None,
        };
        // Each pod has its own ports: `--listen HOST:PORT` becomes a free port (on loopback, or on
        // the pod network's address), mapped back to PORT for port-forwarding once the agent
        // announces it.
        let listen_ip = pod_network
            .as_ref()
            .map_or_else(|| "127.0.0.1".to_owned(), |n| n.pod_ip.clone());
        let mut requested_port = None;
        for index in 0..argv.len() {
            if argv[index] == "--listen" && index + 1 < argv.len() {
                requested_port = argv[index + 1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse::<u16>().ok());
                argv[index + 1] = format!("{listen_ip}:0");
            }
        }
        let log_path = self
            .args
            .log_dir
            .join(format!("{namespace}_{pod_name}_{}.log", container.name));
        let mut command = match &pod_network {
            Some(network) => {
                self.state()
                    .pod_ips
                    .insert(uid.clone(), network.pod_ip.clone());
                let runner =
                    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
                let mut command = tokio::process::Command::new(runner);
                command
                    .arg(ENTER_POD_NETWORK)
                    .arg(&network.netns)
                    .arg(&network.resolv_conf)
                    .arg("--")
                    .arg(&binary);
                command
            }
            None => tokio::process::Command::new(&binary),
        };
        command
            .args(&argv)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .envs(environment)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(false)
            .process_group(0);
        let started_at = now_rfc3339();
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                self.state().runs.insert(
                    key,
                    Run {
                        state: RunState::Terminated {
                            exit_code: 128,
                            reason: "StartError".to_owned(),
                            started_at: started_at.clone(),
                            finished_at: started_at,
                        },
                        group: None,
                        cgroup: None,
                        since: Instant::now(),
                    },
                );
                tracing::warn!(binary = %binary.display(), %error, "cannot start a container");
                return;
            }
        };
        let pid = child.id().unwrap_or_default();
        let cgroup = self.place(pid, &container_id);
        tracing::info!(pod = %format!("{namespace}/{pod_name}"), container = %container.name, binary = %binary.display(), pid, "container started");
        // The agent is ready once it listens; other containers as soon as they run.
        let ready = requested_port.is_none();
        self.state().runs.insert(
            key.clone(),
            Run {
                state: RunState::Running {
                    started_at: started_at.clone(),
                    ready,
                },
                group: Some(pid),
                cgroup,
                since: Instant::now(),
            },
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .ok();
        let log = Arc::new(Mutex::new(log));
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let pod_key = (namespace.clone(), pod_name.clone());
        {
            let runner = Arc::clone(self);
            let log = Arc::clone(&log);
            let key = key.clone();
            let pod_key = pod_key.clone();
            tokio::spawn(async move {
                let Some(stdout) = stdout else { return };
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    append_line(&log, &line);
                    let Some(address) = line
                        .strip_prefix("MIRRORD_AGENT_LISTENING=")
                        .and_then(|a| a.trim().parse::<SocketAddr>().ok())
                    else {
                        continue;
                    };
                    let mut state = runner.state();
                    if let Some(port) = requested_port {
                        state
                            .forwards
                            .entry(pod_key.clone())
                            .or_default()
                            .insert(port, address);
                    }
                    if let Some(run) = state.runs.get_mut(&key)
                        && let RunState::Running { ready, .. } = &mut run.state
                    {
                        *ready = true;
                    }
                    drop(state);
                    runner.wake.notify_one();
                }
            });
        }
        let runner = Arc::clone(self);
        tokio::spawn(async move {
            if let Some(mut stderr) = stderr {
                let mut lines = BufReader::new(&mut stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    append_line(&log, &line);
                }
            }
            let status = child.wait().await;
            let exit_code = status.ok().and_then(|s| s.code()).unwrap_or(137);
            let mut state = runner.state();
            if let Some(run) = state.runs.get_mut(&key)
                && run.group == Some(pid)
            {
                run.group = None;
                if let Some((pid, dir)) = run.cgroup.take() {
                    release_cgroup(pid, &dir);
                }
                run.state = RunState::Terminated {
                    exit_code,
                    reason: if exit_code == 0 { "Completed" } else { "Error" }.to_owned(),
                    started_at,
                    finished_at: now_rfc3339(),
                };
                if requested_port.is_some() {
                    state.forwards.remove(&pod_key);
                }
            }
            drop(state);
            tracing::info!(container = %key.1, exit_code, "container exited");
            runner.wake.notify_one();
        });
    }

    /// The network of the sandbox pod `sandbox`, with its `resolv.conf` written beside the logs
    /// (a bind mount needs a source in the runner's own mount namespace).
    fn pod_network(&self, sandbox: &str) -> Result<PodNetwork, String> {
        let info = mirrord_sandbox::Sandbox::get(sandbox)
            .map_err(|e| format!("cannot read the pod network's sandbox `{sandbox}`: {e}"))?
            .ok_or_else(|| format!("the pod network's sandbox `{sandbox}` is not up"))?;
        let resolv = info
            .files
            .iter()
            .find(|file| file.path == Path::new("/etc/resolv.conf"))
            .ok_or_else(|| format!("sandbox `{sandbox}` has no /etc/resolv.conf"))?;
        let resolv_conf = self
            .args
            .log_dir
            .join(format!("pod-network-{sandbox}.resolv.conf"));
        std::fs::write(&resolv_conf, &resolv.contents)
            .map_err(|e| format!("cannot write {}: {e}", resolv_conf.display()))?;
        Ok(PodNetwork {
            netns: Path::new("/run/netns").join(&info.netns),
            resolv_conf,
            pod_ip: info.sandbox_ip.to_string(),
        })
    }

    fn image_pull_failed(&self, key: Key, image: &str, why: &str) {
        tracing::info!(image, why, "image cannot be pulled");
        self.state().runs.insert(
            key,
            Run {
                state: RunState::Waiting {
                    reason: "ErrImagePull".to_owned(),
                    message: format!(
                        "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: {why}"
                    ),
                },
                group: None,
                cgroup: None,
                since: Instant::now(),
            },
        );
    }

    async fn environment(
        &self,
        pod: &Pod,
        container: &Container,
    ) -> Result<Vec<(String, String)>, String> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let mut environment = Vec::new();
        for variable in container.env.iter().flatten() {
            if let Some(value) = &variable.value {
                environment.push((variable.name.clone(), value.clone()));
                continue;
            }
            let Some(source) = &variable.value_from else {
                environment.push((variable.name.clone(), String::new()));
                continue;
            };
            if let Some(reference) = &source.secret_key_ref {
                let secret = Api::<Secret>::namespaced(self.client.clone(), &namespace)
                    .get_opt(&reference.name)
                    .await
                    .map_err(|e| format!("cannot read secret \"{}\": {e}", reference.name))?
                    .ok_or_else(|| format!("secret \"{}\" not found", reference.name))?;
                let value = secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(&reference.key))
                    .ok_or_else(|| {
                        format!(
                            "couldn't find key {} in Secret {namespace}/{}",
                            reference.key, reference.name
                        )
                    })?;
                environment.push((
                    variable.name.clone(),
                    String::from_utf8_lossy(&value.0).into_owned(),
                ));
            } else if let Some(field) = &source.field_ref {
                let value = match field.field_path.as_str() {
                    "metadata.name" => pod.metadata.name.clone(),
                    "metadata.namespace" => pod.metadata.namespace.clone(),
                    "spec.nodeName" => pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                    "status.podIP" | "status.hostIP" => Some("127.0.0.1".to_owned()),
                    _ => None,
                };
                environment.push((variable.name.clone(), value.unwrap_or_default()));
            }
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let dir = self.args.log_dir.join(format!("serviceaccount-{uid}"));
        environment
            .extend(service_account::environment(&self.client, &self.api_server, pod, &dir).await?);
        Ok(environment)
    }

    /// Moves `pid` into a cgroup named after the container ID; `None` without a writable
    /// hierarchy (the agent then cannot find the container).
    fn place(&self, pid: u32, container_id: &str) -> Option<(u32, PathBuf)> {
        let root = self.cgroup_root.as_ref()?;
        let dir = root
            .join(CGROUP_PARENT)
            .join(std::process::id().to_string())
            .join(format!("cri-containerd-{container_id}.scope"));
        let placed = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join("cgroup.procs"), pid.to_string()));
        match placed {
            Ok(()) => Some((pid, dir)),
            Err(error) => {
                tracing::warn!(pid, %error, "cannot place a container's process in its cgroup");
                None
            }
        }
    }

    /// Tells kwok where each forwarded port of a pod really listens.
    async fn publish(&self, namespace: &str, pod: &str) {
        let key = (namespace.to_owned(), pod.to_owned());
        let wanted = {
            let state = self.state();
            let wanted = state.forwards.get(&key).cloned().unwrap_or_default();
            if wanted.is_empty() || state.published.get(&key) == Some(&wanted) {
                return;
            }
            wanted
        };
        let forwards: Vec<Value> = wanted
            .iter()
            .map(|(port, address)| {
                json!({"ports": [port], "target": {"address": address.ip().to_string(), "port": address.port()}})
            })
            .collect();
        let object = json!({
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "PortForward",
            "metadata": {"name": pod, "namespace": namespace},
            "spec": {"forwards": forwards},
        });
        let applied = self
            .port_forwards(namespace)
            .patch(
                pod,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(object),
            )
            .await;
        match applied {
            Ok(_) => {
                self.state().published.insert(key, wanted);
            }
            Err(error) => tracing::warn!(pod, %error, "cannot publish a PortForward"),
        }
    }

    async fn unpublish(&self, namespace: &str, pod: &str) {
        let _ = self
            .port_forwards(namespace)
            .delete(pod, &DeleteParams::default())
            .await;
    }

    fn port_forwards(&self, namespace: &str) -> Api<DynamicObject> {
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "PortForward"),
            "portforwards",
        );
        Api::namespaced_with(self.client.clone(), namespace, &resource)
    }

    /// Writes the runner's view of a pod's containers into its status, when it changed.
    async fn write_status(&self, pod: &Pod) -> Result<(), String> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let status = {
            let state = self.state();
            let container_status = |name: &str, image: &str, ephemeral: bool| -> Option<Value> {
                let run = state.runs.get(&(uid.clone(), name.to_owned(), ephemeral))?;
                let id = format!("containerd://{}", container_id(&uid, name));
                let (state_json, ready, started, has_id) = match &run.state {
                    RunState::Waiting { reason, message } => (
                        json!({"waiting": {"reason": reason, "message": message}}),
                        false,
                        false,
                        false,
                    ),
                    RunState::Running { started_at, ready } => (
                        json!({"running": {"startedAt": started_at}}),
                        *ready,
                        true,
                        true,
                    ),
                    RunState::Terminated {
                        exit_code,
                        reason,
                        started_at,
                        finished_at,
                    } => (
                        json!({"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": started_at, "finishedAt": finished_at, "containerID": id}}),
                        false,
                        false,
                        true,
                    ),
                };
                let mut status = json!({
                    "name": name, "state": state_json, "ready": ready, "restartCount": 0,
                    "started": started, "image": image, "imageID": "",
                });
                if has_id {
                    status["containerID"] = json!(id);
                }
                Some(status)
            };
            let regular: Vec<Value> = spec
                .containers
                .iter()
                .filter_map(|c| container_status(&c.name, c.image.as_deref().unwrap_or(""), false))
                .collect();
            let ephemeral: Vec<Value> = spec
                .ephemeral_containers
                .iter()
                .flatten()
                .filter_map(|c| container_status(&c.name, c.image.as_deref().unwrap_or(""), true))
                .collect();
            let total = spec.containers.len();
            let all_ready = total > 0
                && regular.len() == total
                && regular.iter().all(|s| s["ready"] == json!(true));
            let terminated: Vec<&Value> = regular
                .iter()
                .filter(|s| !s["state"]["terminated"].is_null())
                .collect();
            let running = regular.iter().any(|s| !s["state"]["running"].is_null());
            let previous = pod
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Pending".to_owned());
            let phase = if matches!(previous.as_str(), "Succeeded" | "Failed") {
                previous
            } else if total > 0 && terminated.len() == total {
                if terminated
                    .iter()
                    .all(|s| s["state"]["terminated"]["exitCode"] == json!(0))
                {
                    "Succeeded".to_owned()
                } else {
                    "Failed".to_owned()
                }
            } else if running {
                "Running".to_owned()
            } else {
                "Pending".to_owned()
            };
            let scheduled = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
                .map(|c| serde_json::to_value(c).unwrap_or(Value::Null))
                .unwrap_or_else(|| json!({"type": "PodScheduled", "status": "True"}));
            let since = scheduled["lastTransitionTime"].clone();
            let flag = |on: bool| if on { "True" } else { "False" };
            let mut conditions = vec![
                json!({"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": since}),
                json!({"type": "Initialized", "status": "True", "lastTransitionTime": since}),
                json!({"type": "Ready", "status": flag(all_ready), "lastTransitionTime": since}),
                json!({"type": "ContainersReady", "status": flag(all_ready), "lastTransitionTime": since}),
                scheduled,
            ];
            if !all_ready {
                let waiting: Vec<&str> = regular
                    .iter()
                    .filter(|s| s["ready"] != json!(true))
                    .filter_map(|s| s["name"].as_str())
                    .collect();
                for condition in &mut conditions[2..4] {
                    condition["reason"] = json!("ContainersNotReady");
                    condition["message"] = json!(format!(
                        "containers with unready status: [{}]",
                        waiting.join(" ")
                    ));
                }
            }
            let pod_ip = state
                .pod_ips
                .get(&uid)
                .cloned()
                .unwrap_or_else(|| "127.0.0.1".to_owned());
            let start_time = pod
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| json!(t))
                .unwrap_or_else(|| json!(now_rfc3339()));
            let mut status = json!({
                "phase": phase,
                "conditions": conditions,
                "hostIP": "127.0.0.1",
                "hostIPs": [{"ip": "127.0.0.1"}],
                "podIP": pod_ip,
                "podIPs": [{"ip": pod_ip}],
                "startTime": start_time,
                "containerStatuses": regular,
            });
            if !ephemeral.is_empty() {
                status["ephemeralContainerStatuses"] = json!(ephemeral);
            }
            if state.written.get(&uid) == Some(&status) {
                return Ok(());
            }
            status
        };
        Api::<Pod>::namespaced(self.client.clone(), &namespace)
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .map_err(|e| format!("cannot write the status of pod {namespace}/{name}: {e}"))?;
        self.state().written.insert(uid, status);
        Ok(())
    }

    fn shut_down(&self) {
        let keys: Vec<Key> = self.state().runs.keys().cloned().collect();
        for key in keys {
            self.stop(&key);
        }
        if let Some(root) = &self.cgroup_root {
            let _ = std::fs::remove_dir(
                root.join(CGROUP_PARENT)
                    .join(std::process::id().to_string()),
            );
            let _ = std::fs::remove_dir(root.join(CGROUP_PARENT));
        }
    }
}

/// A writable cgroup hierarchy: the cgroup2 mount if there is one, else the v1 `pids` hierarchy.
fn cgroup_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let mut v2 = None;
    let mut v1 = None;
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(mount_point), Some(fs_type)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        if *fs_type == "cgroup2" && v2.is_none() {
            v2 = Some(PathBuf::from(mount_point));
        } else if *fs_type == "cgroup"
            && fields
                .get(3)
                .is_some_and(|options| options.split(',').any(|o| o == "pids"))
        {
            v1 = Some(PathBuf::from(mount_point));
        }
    }
    v2.into_iter()
        .chain(v1)
        .find(|root| std::fs::create_dir_all(root.join(CGROUP_PARENT)).is_ok())
}

/// Moves `pid` back to the hierarchy's root and removes its cgroup.
fn release_cgroup(pid: u32, dir: &Path) {
    if let Some(root) = dir.parent().and_then(Path::parent).and_then(Path::parent) {
        let _ = std::fs::write(root.join("cgroup.procs"), pid.to_string());
    }
    let _ = std::fs::remove_dir(dir);
}

/// Removes cgroups left by runners that were killed, moving their processes back to the root.
fn sweep_cgroups(root: &Path) {
    for runner in std::fs::read_dir(root.join(CGROUP_PARENT))
        .into_iter()
        .flatten()
        .flatten()
    {
        let alive = runner
            .file_name()
            .to_str()
            .is_some_and(|pid| Path::new("/proc").join(pid).exists());
        if alive {
            continue;
        }
        for entry in std::fs::read_dir(runner.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let procs =
                std::fs::read_to_string(entry.path().join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines() {
                let _ = std::fs::write(root.join("cgroup.procs"), pid);
            }
            let _ = std::fs::remove_dir(entry.path());
        }
        let _ = std::fs::remove_dir(runner.path());
    }
}

/// Appends a line to a container's log file (small writes; the file is local).
fn append_line(log: &Mutex<Option<std::fs::File>>, line: &str) {
    use std::io::Write;
    if let Some(file) = log.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
        let _ = writeln!(file, "{line}");
    }
}

/// SIGKILL to a container's process group (its process and every child), through kill(1) so
/// that this crate needs no `unsafe`.
fn kill_group(group: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stderr(std::process::Stdio::null())
        .status();
}

/// `registry/name` of `registry/name:tag` or `registry/name@sha256:…`.
fn image_repository(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    match without_digest.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => repository.to_owned(),
        _ => without_digest.to_owned(),
    }
}

/// A stable 64-hex container ID for a pod's container.
fn container_id(pod_uid: &str, container: &str) -> String {
    let mut id = String::new();
    for round in 0u8..4 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (round, pod_uid, container).hash(&mut hasher);
        id.push_str(&format!("{:016x}", hasher.finish()));
    }
    id
}

/// Now as RFC 3339 in UTC, to the second.
fn now_rfc3339() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = seconds / 86_400;
    let rest = seconds % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

async fn client(kubeconfig: &Path) -> Result<kube::Client, String> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig)
        .map_err(|e| format!("cannot read {}: {e}", kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("bad kubeconfig: {e}"))?;
    kube::Client::try_from(config).map_err(|e| format!("cannot make a client: {e}"))
}

/// `enter-pod-network NETNS RESOLV_CONF -- PROGRAM ARGS…`: joins the network namespace, makes a
/// mount namespace of its own where `RESOLV_CONF` is `/etc/resolv.conf`, and executes PROGRAM.
/// Runs while the process is single-threaded (a requirement of `unshare(CLONE_NEWNS)`); returns
/// only the reason it could not.
fn enter_pod_network(args: &[std::ffi::OsString]) -> String {
    use nix::mount::{MsFlags, mount};
    use nix::sched::CloneFlags;
    use std::os::unix::process::CommandExt;
    let [netns, resolv_conf, separator, program, rest @ ..] = args else {
        return format!("usage: {ENTER_POD_NETWORK} NETNS RESOLV_CONF -- PROGRAM ARGS…");
    };
    if separator != "--" {
        return format!("{ENTER_POD_NETWORK}: expected `--` before the program");
    }
    let namespace = match std::fs::File::open(netns) {
        Ok(file) => file,
        Err(error) => return format!("cannot open {}: {error}", Path::new(netns).display()),
    };
    if let Err(error) = nix::sched::setns(&namespace, CloneFlags::CLONE_NEWNET) {
        return format!("cannot join {}: {error}", Path::new(netns).display());
    }
    drop(namespace);
    if let Err(error) = nix::sched::unshare(CloneFlags::CLONE_NEWNS) {
        return format!("cannot make a mount namespace: {error}");
    }
    // Private, so the bind mount below never propagates to the host.
    if let Err(error) = mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    ) {
        return format!("cannot make the mounts private: {error}");
    }
    if let Err(error) = mount(
        Some(resolv_conf.as_os_str()),
        "/etc/resolv.conf",
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    ) {
        return format!(
            "cannot mount {} on /etc/resolv.conf: {error}",
            Path::new(resolv_conf).display()
        );
    }
    let error = std::process::Command::new(program).args(rest).exec();
    format!("cannot execute {}: {error}", Path::new(program).display())
}

fn main() {
    mirrord_logging::init(
        &mirrord_logging::LogOptions::new("info", "info"),
        mirrord_logging::LogTarget::Stderr,
    );
    let raw: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if raw.first().is_some_and(|first| first == ENTER_POD_NETWORK) {
        let error = enter_pod_network(&raw[1..]);
        tracing::error!("{error}");
        std::process::exit(127);
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            tracing::error!("{error}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let code = runtime.block_on(async move {
        let client = match client(&args.kubeconfig).await {
            Ok(client) => client,
            Err(error) => {
                tracing::error!("{error}");
                return 1;
            }
        };
        let cgroup_root = cgroup_root();
        match &cgroup_root {
            Some(root) => sweep_cgroups(root),
            None => tracing::warn!(
                "no writable cgroup hierarchy; agents will not find containers by ID"
            ),
        }
        let api_server = match service_account::ApiServer::from_kubeconfig(&args.kubeconfig) {
            Ok(api_server) => api_server,
            Err(error) => {
                tracing::error!("{error}");
                return 1;
            }
        };
        let runner = Arc::new(Runner {
            client,
            api_server,
            args,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            cgroup_root,
        });
        tokio::spawn(Arc::clone(&runner).watch());
        tokio::spawn(Arc::clone(&runner).run());
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("a SIGTERM handler");
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        runner.shut_down();
        tracing::info!("stopped every container");
        0
    });
    std::process::exit(code);
}
