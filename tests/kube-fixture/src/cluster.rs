//! The cluster behind the API: the store, RBAC denials, and a reconcile loop standing in for the
//! Job controller, garbage collector, scheduler and kubelet. The kubelet runs each container of a
//! pod created through the API as a local process (the image names a binary on this machine), and
//! pods seeded from the scenario can be backed by a real process (a sandbox pod's service), placed
//! in a cgroup named after its container ID the way container runtimes do.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::{Notify, watch};

use crate::api::Target;
use crate::resources::Catalog;
use crate::store::{Store, now_rfc3339, parse_rfc3339};

/// A seeded pod whose container is a real process.
#[derive(Debug, Clone)]
pub(crate) struct BackedPod {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) container: Option<String>,
    pub(crate) pid: u32,
}

/// `(pod uid, container name, ephemeral)`.
type ContainerKey = (String, String, bool);

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
        message: String,
        started_at: String,
        finished_at: String,
    },
}

#[derive(Debug)]
struct ContainerRun {
    state: RunState,
    pid: Option<u32>,
    first_failure: Instant,
}

/// Everything the kubelet knows about the containers it runs.
#[derive(Debug, Default)]
struct Kubelet {
    containers: HashMap<ContainerKey, ContainerRun>,
    /// `(namespace, pod)` → container port → where it really listens.
    endpoints: HashMap<(String, String), HashMap<u16, SocketAddr>>,
    /// `(namespace, pod)` → the last lines its containers wrote to stderr.
    logs: HashMap<(String, String), String>,
}

/// The simulated cluster.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) catalog: Catalog,
    store: Mutex<Store>,
    pub(crate) token: String,
    pub(crate) server_address: String,
    /// `(verb, resource)` pairs this user may not do (`list`, `jobs.batch`).
    forbidden: Vec<(String, String)>,
    /// Image repository → binary that stands for it.
    images: Vec<(String, PathBuf)>,
    wake: Notify,
    shutdown_tx: watch::Sender<bool>,
    kubelet: Mutex<Kubelet>,
    /// Uids of Jobs that already got their pod.
    started_jobs: Mutex<HashSet<String>>,
    /// Pods the kubelet manages (created through the API).
    seeded_pods: HashSet<(String, String)>,
    /// cgroups made for backed pods, to undo at exit.
    pub(crate) cgroups: Mutex<Vec<(u32, PathBuf)>>,
}

pub(crate) struct ClusterOptions {
    pub(crate) catalog: Catalog,
    pub(crate) seed: Vec<Value>,
    pub(crate) token: String,
    pub(crate) server_address: String,
    pub(crate) forbidden: Vec<(String, String)>,
    pub(crate) images: Vec<(String, PathBuf)>,
}

impl Cluster {
    pub(crate) fn new(options: ClusterOptions) -> Result<Cluster, String> {
        let mut store = Store::new();
        let mut seeded_pods = HashSet::new();
        let mut seeded_jobs = HashSet::new();
        for mut object in options.seed {
            let api_version = object["apiVersion"].as_str().unwrap_or("").to_owned();
            let kind = object["kind"].as_str().unwrap_or("").to_owned();
            let Some(resource) = options.catalog.by_kind(&api_version, &kind) else {
                if kind == "Rollout" {
                    continue; // the Argo CRD is not installed in this run
                }
                return Err(format!(
                    "the seed has an object of unknown kind {api_version} {kind}"
                ));
            };
            if resource.namespaced && object["metadata"]["namespace"].is_null() {
                object["metadata"]["namespace"] = json!("default");
            }
            if !object["metadata"]["creationTimestamp"].is_string() {
                object["metadata"]["creationTimestamp"] = json!(now_rfc3339());
            }
            if kind == "Job" {
                seeded_jobs.insert(object["metadata"]["uid"].as_str().unwrap_or("").to_owned());
            }
            if kind == "Pod" {
                seeded_pods.insert((
                    object["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                    object["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                ));
            }
            store.insert(&resource.qualified(), object);
        }
        let (shutdown_tx, _) = watch::channel(false);
        Ok(Cluster {
            catalog: options.catalog,
            store: Mutex::new(store),
            token: options.token,
            server_address: options.server_address,
            forbidden: options.forbidden,
            images: options.images,
            wake: Notify::new(),
            shutdown_tx,
            kubelet: Mutex::new(Kubelet::default()),
            started_jobs: Mutex::new(seeded_jobs),
            seeded_pods,
            cgroups: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn kubelet(&self) -> MutexGuard<'_, Kubelet> {
        self.kubelet.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the reconcile loop to run now.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn shutdown_rx(&self) -> watch::Receiver<bool> {
        self.shutdown_tx.subscribe()
    }

    /// Ends watches and port-forwards, kills every container process.
    pub(crate) fn shut_down(&self) {
        let _ = self.shutdown_tx.send(true);
        let mut kubelet = self.kubelet();
        for run in kubelet.containers.values_mut() {
            if let Some(pid) = run.pid.take() {
                kill_group(pid);
            }
        }
    }

    /// The RBAC denial for `verb` on `target`, worded as the API server words it.
    pub(crate) fn forbidden_message(&self, verb: &str, target: &Target) -> Option<String> {
        let resource = target.resource;
        let (plural, qualified) = match target.subresource.as_deref() {
            Some(sub) => (
                format!("{}/{sub}", resource.plural),
                format!("{}/{sub}", resource.qualified()),
            ),
            None => (resource.plural.to_owned(), resource.qualified()),
        };
        let denied = self
            .forbidden
            .iter()
            .any(|(v, r)| (v == verb || v == "*") && (*r == qualified || *r == plural));
        if !denied {
            return None;
        }
        let scope = match &target.namespace {
            Some(namespace) => format!("in the namespace \"{namespace}\""),
            None => "at the cluster scope".to_owned(),
        };
        let subject = match &target.name {
            Some(name) => format!("{} \"{name}\"", resource.qualified()),
            None => resource.qualified(),
        };
        Some(format!(
            "{subject} is forbidden: User \"mirrord-dev\" cannot {verb} resource \"{plural}\" in API group \"{}\" {scope}",
            resource.group
        ))
    }

    /// Where port `port` of a pod really listens, if something does.
    pub(crate) fn endpoint(&self, namespace: &str, pod: &str, port: u16) -> Option<SocketAddr> {
        self.kubelet()
            .endpoints
            .get(&(namespace.to_owned(), pod.to_owned()))
            .and_then(|ports| ports.get(&port))
            .copied()
    }

    pub(crate) fn pod_log(&self, namespace: &str, pod: &str) -> String {
        self.kubelet()
            .logs
            .get(&(namespace.to_owned(), pod.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// Gives seeded pods backed by processes their container IDs (and the processes their cgroups).
    pub(crate) fn back_pods(&self, backed: &[BackedPod]) -> Result<(), String> {
        let cgroup_root = crate::cgroup::root();
        for pod in backed {
            let mut store = self.store();
            let mut object = store
                .get("pods", &pod.namespace, &pod.name)
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "--pod names {}/{}, which the seed does not have",
                        pod.namespace, pod.name
                    )
                })?;
            let container = match &pod.container {
                Some(container) => container.clone(),
                None => object["spec"]["containers"][0]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            };
            let id = container_id(&pod.namespace, &pod.name, &container, pod.pid);
            let statuses = object["status"]["containerStatuses"].as_array_mut();
            let Some(status) =
                statuses.and_then(|s| s.iter_mut().find(|s| s["name"] == json!(container)))
            else {
                return Err(format!(
                    "pod {}/{} has no status for container {container}",
                    pod.namespace, pod.name
                ));
            };
            status["containerID"] = json!(format!("containerd://{id}"));
            store.update("pods", object);
            drop(store);
            match &cgroup_root {
                Some(root) => {
                    let dir = crate::cgroup::place(root, pod.pid, &id).map_err(|e| {
                        format!(
                            "cannot place pid {} in a cgroup for container {id}: {e}",
                            pod.pid
                        )
                    })?;
                    self.cgroups
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((pod.pid, dir));
                }
                None => tracing::warn!(
                    "no writable cgroup hierarchy; container IDs will not be found in /proc"
                ),
            }
        }
        Ok(())
    }

    /// Runs the controllers until shutdown.
    pub(crate) async fn run(self: Arc<Self>) {
        let mut shutdown = self.shutdown_rx();
        loop {
            self.reconcile();
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    fn reconcile(self: &Arc<Self>) {
        self.collect_garbage();
        self.run_jobs();
        self.schedule();
        self.run_pods();
    }

    /// Deletes pods and secrets whose owning Job is gone.
    fn collect_garbage(&self) {
        let mut store = self.store();
        let job_uids: HashSet<String> = store
            .list("jobs.batch", None)
            .into_iter()
            .filter_map(|j| j["metadata"]["uid"].as_str().map(str::to_owned))
            .collect();
        let mut doomed = Vec::new();
        for resource in ["pods", "secrets"] {
            for object in store.list(resource, None) {
                let owners = object["metadata"]["ownerReferences"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let job_owners: Vec<&Value> = owners
                    .iter()
                    .filter(|o| o["kind"] == json!("Job"))
                    .collect();
                if !job_owners.is_empty()
                    && job_owners
                        .iter()
                        .all(|o| !o["uid"].as_str().is_some_and(|uid| job_uids.contains(uid)))
                {
                    doomed.push((
                        resource,
                        object["metadata"]["namespace"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned(),
                        object["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                    ));
                }
            }
        }
        for (resource, namespace, name) in doomed {
            store.remove(resource, &namespace, &name);
        }
    }

    /// The Job controller: one pod per Job (`backoffLimit` is treated as 0), status, TTL.
    fn run_jobs(&self) {
        let mut store = self.store();
        let jobs: Vec<Value> = store
            .list("jobs.batch", None)
            .into_iter()
            .cloned()
            .collect();
        let pods: Vec<Value> = store.list("pods", None).into_iter().cloned().collect();
        let mut started = self
            .started_jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for job in jobs {
            let uid = job["metadata"]["uid"].as_str().unwrap_or("").to_owned();
            let namespace = job["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let name = job["metadata"]["name"].as_str().unwrap_or("").to_owned();
            if started.insert(uid.clone()) {
                let template = &job["spec"]["template"];
                let mut labels = template["metadata"]["labels"].clone();
                if !labels.is_object() {
                    labels = json!({});
                }
                labels["job-name"] = json!(name);
                labels["batch.kubernetes.io/job-name"] = json!(name);
                labels["controller-uid"] = json!(uid);
                labels["batch.kubernetes.io/controller-uid"] = json!(uid);
                let pod_name = format!("{name}-{}", crate::api::random_suffix());
                let pod = json!({
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": pod_name,
                        "namespace": namespace,
                        "labels": labels,
                        "annotations": template["metadata"]["annotations"].clone(),
                        "ownerReferences": [{
                            "apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid,
                            "controller": true, "blockOwnerDeletion": true,
                        }],
                    },
                    "spec": template["spec"].clone(),
                    "status": {"phase": "Pending", "qosClass": "Burstable"},
                });
                let mut pod = pod;
                if pod["metadata"]["annotations"].is_null() {
                    pod["metadata"]
                        .as_object_mut()
                        .expect("object")
                        .remove("annotations");
                }
                store.insert("pods", pod);
                let mut updated = job.clone();
                updated["status"]["startTime"] = json!(now_rfc3339());
                updated["status"]["active"] = json!(1);
                store.update("jobs.batch", updated);
                continue;
            }
            let owned: Vec<&Value> = pods
                .iter()
                .filter(|p| {
                    p["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|o| o.iter().any(|o| o["uid"] == json!(uid)))
                })
                .collect();
            let succeeded = owned
                .iter()
                .filter(|p| p["status"]["phase"] == json!("Succeeded"))
                .count();
            let failed = owned
                .iter()
                .filter(|p| p["status"]["phase"] == json!("Failed"))
                .count();
            let active = owned.len() - succeeded - failed;
            let mut status = job["status"].clone();
            status["active"] = json!(active);
            if active == 0 {
                status.as_object_mut().expect("object").remove("active");
            }
            if succeeded > 0 {
                status["succeeded"] = json!(succeeded);
            }
            if failed > 0 {
                status["failed"] = json!(failed);
            }
            let finished_already = status["conditions"]
                .as_array()
                .is_some_and(|c| !c.is_empty());
            if !finished_already && (succeeded > 0 || failed > 0) {
                let now = now_rfc3339();
                let kind = if succeeded > 0 { "Complete" } else { "Failed" };
                status["conditions"] = json!([{
                    "type": kind, "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
                    "reason": if failed > 0 { "BackoffLimitExceeded" } else { "Completed" },
                    "message": if failed > 0 { "Job has reached the specified backoff limit" } else { "Reached expected number of succeeded pods" },
                }]);
                if succeeded > 0 {
                    status["completionTime"] = json!(now);
                }
            }
            if status != job["status"] {
                let mut updated = job.clone();
                updated["status"] = status.clone();
                store.update("jobs.batch", updated);
            }
            let finished_at = status["conditions"][0]["lastTransitionTime"]
                .as_str()
                .and_then(parse_rfc3339);
            if let (Some(finished_at), Some(ttl)) =
                (finished_at, job["spec"]["ttlSecondsAfterFinished"].as_u64())
            {
                let now = parse_rfc3339(&now_rfc3339()).unwrap_or(finished_at);
                if now >= finished_at + ttl {
                    store.remove("jobs.batch", &namespace, &name);
                }
            }
        }
    }

    /// The scheduler: binds pods to nodes that match their selectors and tolerate the node's taints.
    fn schedule(&self) {
        let mut store = self.store();
        let nodes: Vec<Value> = store.list("nodes", None).into_iter().cloned().collect();
        let pending: Vec<Value> = store
            .list("pods", None)
            .into_iter()
            .filter(|p| p["spec"]["nodeName"].as_str().is_none_or(str::is_empty))
            .cloned()
            .collect();
        for pod in pending {
            let mut reasons: Vec<String> = Vec::new();
            let chosen = nodes.iter().find(|node| match node_fits(&pod, node) {
                Ok(()) => true,
                Err(reason) => {
                    reasons.push(reason);
                    false
                }
            });
            let mut updated = pod.clone();
            let now = now_rfc3339();
            match chosen {
                Some(node) => {
                    updated["spec"]["nodeName"] = node["metadata"]["name"].clone();
                    updated["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}]);
                }
                None => {
                    reasons.sort();
                    let mut counted: Vec<(String, usize)> = Vec::new();
                    for reason in reasons {
                        match counted.iter_mut().find(|(r, _)| *r == reason) {
                            Some((_, count)) => *count += 1,
                            None => counted.push((reason, 1)),
                        }
                    }
                    let detail: Vec<String> =
                        counted.iter().map(|(r, n)| format!("{n} {r}")).collect();
                    let message = format!(
                        "0/{} nodes are available: {}. preemption: 0/{} nodes are available: {} Preemption is not helpful for scheduling.",
                        nodes.len(),
                        detail.join(", "),
                        nodes.len(),
                        nodes.len()
                    );
                    let condition = json!({"type": "PodScheduled", "status": "False", "lastProbeTime": null,
                        "lastTransitionTime": now, "reason": "Unschedulable", "message": message});
                    if pod["status"]["conditions"][0]["message"] == condition["message"] {
                        continue;
                    }
                    updated["status"]["conditions"] = json!([condition]);
                }
            }
            store.update("pods", updated);
        }
    }

    /// The kubelet: starts the containers of API-created pods and reports their state.
    fn run_pods(self: &Arc<Self>) {
        let pods: Vec<Value> = self
            .store()
            .list("pods", None)
            .into_iter()
            .filter(|p| {
                p["spec"]["nodeName"]
                    .as_str()
                    .is_some_and(|n| !n.is_empty())
            })
            .cloned()
            .collect();
        let live_uids: HashSet<String> = pods
            .iter()
            .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_owned))
            .collect();
        {
            let mut kubelet = self.kubelet();
            kubelet.containers.retain(|(uid, _, _), run| {
                if live_uids.contains(uid) {
                    return true;
                }
                if let Some(pid) = run.pid.take() {
                    kill_group(pid);
                }
                false
            });
        }
        for pod in pods {
            let namespace = pod["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let name = pod["metadata"]["name"].as_str().unwrap_or("").to_owned();
            let key = (namespace.clone(), name.clone());
            if self.seeded_pods.contains(&key) {
                self.run_ephemeral_only(&pod);
                continue;
            }
            let terminal = matches!(
                pod["status"]["phase"].as_str(),
                Some("Succeeded" | "Failed")
            );
            if !terminal {
                for container in pod["spec"]["containers"].as_array().into_iter().flatten() {
                    self.ensure_started(&pod, container, false);
                }
            }
            self.ensure_ephemeral(&pod);
            self.write_pod_status(&pod);
        }
    }

    fn run_ephemeral_only(self: &Arc<Self>, pod: &Value) {
        if pod["spec"]["ephemeralContainers"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
        {
            self.ensure_ephemeral(pod);
            self.write_pod_status(pod);
        }
    }

    fn ensure_ephemeral(self: &Arc<Self>, pod: &Value) {
        for container in pod["spec"]["ephemeralContainers"]
            .as_array()
            .into_iter()
            .flatten()
        {
            self.ensure_started(pod, container, true);
        }
    }

    fn ensure_started(self: &Arc<Self>, pod: &Value, container: &Value, ephemeral: bool) {
        let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_owned();
        let name = container["name"].as_str().unwrap_or("").to_owned();
        let key = (uid, name.clone(), ephemeral);
        let mut kubelet = self.kubelet();
        if let Some(run) = kubelet.containers.get_mut(&key) {
            match &run.state {
                RunState::Waiting { reason, .. } if reason == "ErrImagePull" => {
                    if run.first_failure.elapsed() >= Duration::from_millis(800) {
                        let image = container["image"].as_str().unwrap_or("");
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
        let image = container["image"].as_str().unwrap_or("").to_owned();
        let repository = image_repository(&image);
        let Some(binary) = self
            .images
            .iter()
            .find(|(repo, _)| *repo == repository)
            .map(|(_, b)| b.clone())
        else {
            kubelet.containers.insert(key, ContainerRun {
                state: RunState::Waiting {
                    reason: "ErrImagePull".to_owned(),
                    message: format!("rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: not found"),
                },
                pid: None,
                first_failure: Instant::now(),
            });
            return;
        };
        drop(kubelet);
        let namespace = pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let environment = match self.container_env(&namespace, pod, container) {
            Ok(environment) => environment,
            Err(message) => {
                self.kubelet().containers.insert(
                    key,
                    ContainerRun {
                        state: RunState::Waiting {
                            reason: "CreateContainerConfigError".to_owned(),
                            message,
                        },
                        pid: None,
                        first_failure: Instant::now(),
                    },
                );
                return;
            }
        };
        let mut argv: Vec<String> = container["command"]
            .as_array()
            .into_iter()
            .flatten()
            .skip(1)
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect();
        argv.extend(
            container["args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str().map(str::to_owned)),
        );
        // Each pod has its own port space: `--listen HOST:PORT` becomes an ephemeral loopback port,
        // mapped back to PORT for port-forwarding once the process announces it.
        let mut requested_port = None;
        let mut index = 0;
        while index < argv.len() {
            if argv[index] == "--listen" && index + 1 < argv.len() {
                requested_port = argv[index + 1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse::<u16>().ok());
                argv[index + 1] = "127.0.0.1:0".to_owned();
            }
            index += 1;
        }
        let mut command = tokio::process::Command::new(&binary);
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
        crate::process::die_with_parent(&mut command);
        let pod_key = (
            namespace,
            pod["metadata"]["name"].as_str().unwrap_or("").to_owned(),
        );
        let started_at = now_rfc3339();
        match command.spawn() {
            Err(error) => {
                self.kubelet().containers.insert(
                    key,
                    ContainerRun {
                        state: RunState::Terminated {
                            exit_code: 128,
                            reason: "StartError".to_owned(),
                            message: error.to_string(),
                            started_at: started_at.clone(),
                            finished_at: started_at,
                        },
                        pid: None,
                        first_failure: Instant::now(),
                    },
                );
            }
            Ok(mut child) => {
                tracing::info!(pod = %format!("{}/{}", pod_key.0, pod_key.1), container = %name, binary = %binary.display(), "container started");
                self.kubelet().containers.insert(
                    key.clone(),
                    ContainerRun {
                        state: RunState::Running {
                            started_at: started_at.clone(),
                            ready: false,
                        },
                        pid: child.id(),
                        first_failure: Instant::now(),
                    },
                );
                let stdout = child.stdout.take();
                let stderr = child.stderr.take();
                let cluster = Arc::clone(self);
                let ready_key = key.clone();
                let endpoint_pod = pod_key.clone();
                tokio::spawn(async move {
                    let Some(stdout) = stdout else { return };
                    let mut lines = BufReader::new(stdout).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Some(address) = line
                            .strip_prefix("MIRRORD_AGENT_LISTENING=")
                            .and_then(|a| a.trim().parse::<SocketAddr>().ok())
                        {
                            let mut kubelet = cluster.kubelet();
                            if let Some(port) = requested_port {
                                kubelet
                                    .endpoints
                                    .entry(endpoint_pod.clone())
                                    .or_default()
                                    .insert(port, address);
                            }
                            if let Some(run) = kubelet.containers.get_mut(&ready_key)
                                && let RunState::Running { ready, .. } = &mut run.state
                            {
                                *ready = true;
                            }
                            drop(kubelet);
                            cluster.wake();
                        }
                    }
                });
                let cluster = Arc::clone(self);
                tokio::spawn(async move {
                    let mut log = String::new();
                    if let Some(mut stderr) = stderr {
                        let mut buffer = vec![0u8; 8192];
                        while let Ok(read) = stderr.read(&mut buffer).await {
                            if read == 0 {
                                break;
                            }
                            log.push_str(&String::from_utf8_lossy(&buffer[..read]));
                            if log.len() > 65_536 {
                                log.drain(..log.len() - 65_536);
                            }
                            cluster.kubelet().logs.insert(pod_key.clone(), log.clone());
                        }
                    }
                    let status = child.wait().await;
                    let exit_code = status.ok().and_then(|s| s.code()).unwrap_or(137);
                    let mut kubelet = cluster.kubelet();
                    kubelet.endpoints.remove(&pod_key);
                    if let Some(run) = kubelet.containers.get_mut(&key) {
                        run.pid = None;
                        let last_line = log.lines().last().unwrap_or("").to_owned();
                        run.state = RunState::Terminated {
                            exit_code,
                            reason: if exit_code == 0 {
                                "Completed".to_owned()
                            } else {
                                "Error".to_owned()
                            },
                            message: last_line,
                            started_at,
                            finished_at: now_rfc3339(),
                        };
                    }
                    drop(kubelet);
                    cluster.wake();
                });
            }
        }
    }

    fn container_env(
        &self,
        namespace: &str,
        pod: &Value,
        container: &Value,
    ) -> Result<Vec<(String, String)>, String> {
        let store = self.store();
        let mut environment = Vec::new();
        for variable in container["env"].as_array().into_iter().flatten() {
            let name = variable["name"].as_str().unwrap_or("").to_owned();
            if let Some(value) = variable["value"].as_str() {
                environment.push((name, value.to_owned()));
            } else if let Some(reference) = variable["valueFrom"]["secretKeyRef"].as_object() {
                let secret_name = reference.get("name").and_then(Value::as_str).unwrap_or("");
                let key = reference.get("key").and_then(Value::as_str).unwrap_or("");
                let secret = store
                    .get("secrets", namespace, secret_name)
                    .ok_or_else(|| format!("secret \"{secret_name}\" not found"))?;
                let encoded = secret["data"][key].as_str().ok_or_else(|| {
                    format!("couldn't find key {key} in Secret {namespace}/{secret_name}")
                })?;
                let value = base64_decode(encoded)
                    .ok_or_else(|| format!("secret {secret_name} key {key} is not base64"))?;
                environment.push((name, String::from_utf8_lossy(&value).into_owned()));
            } else if let Some(path) = variable["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                let value = match path {
                    "metadata.name" => pod["metadata"]["name"].as_str(),
                    "metadata.namespace" => pod["metadata"]["namespace"].as_str(),
                    "spec.nodeName" => pod["spec"]["nodeName"].as_str(),
                    "status.podIP" => Some("127.0.0.1"),
                    _ => None,
                };
                environment.push((name, value.unwrap_or("").to_owned()));
            }
        }
        Ok(environment)
    }

    /// Writes the kubelet's view of a pod's containers into its status (when it changed).
    fn write_pod_status(&self, pod: &Value) {
        let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_owned();
        let kubelet = self.kubelet();
        let container_status = |container: &Value, ephemeral: bool| -> Option<Value> {
            let name = container["name"].as_str().unwrap_or("").to_owned();
            let run = kubelet
                .containers
                .get(&(uid.clone(), name.clone(), ephemeral))?;
            let (state, ready, started) = match &run.state {
                RunState::Waiting { reason, message } => (
                    json!({"waiting": {"reason": reason, "message": message}}),
                    false,
                    false,
                ),
                RunState::Running { started_at, ready } => {
                    (json!({"running": {"startedAt": started_at}}), *ready, true)
                }
                RunState::Terminated {
                    exit_code,
                    reason,
                    message,
                    started_at,
                    finished_at,
                } => (
                    json!({"terminated": {"exitCode": exit_code, "reason": reason, "message": message, "startedAt": started_at, "finishedAt": finished_at,
                        "containerID": format!("containerd://{}", container_id("", &uid, &name, 0))}}),
                    false,
                    false,
                ),
            };
            let mut status = json!({
                "name": name, "state": state, "ready": ready, "restartCount": 0, "started": started,
                "image": container["image"], "imageID": "",
            });
            if run.pid.is_some() || matches!(run.state, RunState::Terminated { .. }) {
                status["containerID"] =
                    json!(format!("containerd://{}", container_id("", &uid, &name, 0)));
            }
            Some(status)
        };
        let mut next = pod.clone();
        let regular: Vec<Value> = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| container_status(c, false))
            .collect();
        let ephemeral: Vec<Value> = pod["spec"]["ephemeralContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| container_status(c, true))
            .collect();
        drop(kubelet);
        if !ephemeral.is_empty() {
            next["status"]["ephemeralContainerStatuses"] = json!(ephemeral);
        }
        if !self.seeded_pods.contains(&(
            pod["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
            pod["metadata"]["name"].as_str().unwrap_or("").to_owned(),
        )) {
            let total = pod["spec"]["containers"].as_array().map_or(0, Vec::len);
            let all_ready = total > 0
                && regular.len() == total
                && regular.iter().all(|s| s["ready"] == json!(true));
            let terminated: Vec<&Value> = regular
                .iter()
                .filter(|s| !s["state"]["terminated"].is_null())
                .collect();
            let running = regular.iter().any(|s| !s["state"]["running"].is_null());
            let phase = if total > 0 && terminated.len() == total {
                if terminated
                    .iter()
                    .all(|s| s["state"]["terminated"]["exitCode"] == json!(0))
                {
                    "Succeeded"
                } else {
                    "Failed"
                }
            } else if running {
                "Running"
            } else {
                "Pending"
            };
            let previous_phase = pod["status"]["phase"].as_str().unwrap_or("Pending");
            let phase = if matches!(previous_phase, "Succeeded" | "Failed") {
                previous_phase
            } else {
                phase
            };
            next["status"]["phase"] = json!(phase);
            next["status"]["containerStatuses"] = json!(regular);
            next["status"]["hostIP"] = json!("127.0.0.1");
            next["status"]["podIP"] = json!("127.0.0.1");
            if next["status"]["startTime"].is_null() {
                next["status"]["startTime"] = json!(now_rfc3339());
            }
            let transition = pod["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == json!("PodScheduled")))
                .and_then(|c| c["lastTransitionTime"].as_str())
                .unwrap_or("")
                .to_owned();
            let flag = |on: bool| if on { "True" } else { "False" };
            let mut conditions = vec![
                json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": transition}),
                json!({"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": transition}),
                json!({"type": "ContainersReady", "status": flag(all_ready), "lastProbeTime": null, "lastTransitionTime": transition}),
                json!({"type": "Ready", "status": flag(all_ready), "lastProbeTime": null, "lastTransitionTime": transition}),
            ];
            if !all_ready {
                for condition in &mut conditions[2..] {
                    condition["reason"] = json!("ContainersNotReady");
                    let waiting: Vec<&str> = regular
                        .iter()
                        .filter(|s| s["ready"] != json!(true))
                        .filter_map(|s| s["name"].as_str())
                        .collect();
                    condition["message"] = json!(format!(
                        "containers with unready status: [{}]",
                        waiting.join(" ")
                    ));
                }
            }
            next["status"]["conditions"] = json!(conditions);
        }
        if next != *pod {
            let mut store = self.store();
            // Write over the latest copy, keeping changes made since `pod` was read.
            if let Some(latest) = store
                .get(
                    "pods",
                    pod["metadata"]["namespace"].as_str().unwrap_or(""),
                    pod["metadata"]["name"].as_str().unwrap_or(""),
                )
                .cloned()
                && latest["metadata"]["uid"] == pod["metadata"]["uid"]
            {
                let mut merged = latest;
                merged["status"] = next["status"].clone();
                store.update("pods", merged);
            }
        }
    }
}

/// Whether `pod` may run on `node`; the reason, in the scheduler's words, when not.
fn node_fits(pod: &Value, node: &Value) -> Result<(), String> {
    let node_name = node["metadata"]["name"].as_str().unwrap_or("");
    let labels = &node["metadata"]["labels"];
    for (key, value) in pod["spec"]["nodeSelector"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if labels[key.as_str()] != *value {
            return Err("node(s) didn't match Pod's node affinity/selector".to_owned());
        }
    }
    let terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !terms.is_empty() {
        let term_matches = |term: &Value| {
            let fields_ok =
                term["matchFields"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|requirement| {
                        let values: Vec<&str> = requirement["values"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect();
                        requirement["key"] == json!("metadata.name")
                            && requirement["operator"] == json!("In")
                            && values.contains(&node_name)
                    });
            let labels_ok = term["matchExpressions"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|requirement| {
                    let key = requirement["key"].as_str().unwrap_or("");
                    let values: Vec<&str> = requirement["values"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    let actual = labels[key].as_str();
                    match requirement["operator"].as_str() {
                        Some("In") => actual.is_some_and(|a| values.contains(&a)),
                        Some("NotIn") => actual.is_none_or(|a| !values.contains(&a)),
                        Some("Exists") => actual.is_some(),
                        Some("DoesNotExist") => actual.is_none(),
                        _ => false,
                    }
                });
            fields_ok && labels_ok
        };
        if !terms.iter().any(term_matches) {
            return Err("node(s) didn't match Pod's node affinity/selector".to_owned());
        }
    }
    let tolerations = pod["spec"]["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for taint in node["spec"]["taints"].as_array().into_iter().flatten() {
        let effect = taint["effect"].as_str().unwrap_or("");
        if effect == "PreferNoSchedule" {
            continue;
        }
        let tolerated = tolerations.iter().any(|toleration| {
            let effect_ok = toleration["effect"]
                .as_str()
                .is_none_or(|e| e.is_empty() || e == effect);
            let key_ok = match toleration["key"].as_str() {
                None | Some("") => toleration["operator"] == json!("Exists"),
                Some(key) => key == taint["key"].as_str().unwrap_or(""),
            };
            let value_ok =
                toleration["operator"] == json!("Exists") || toleration["value"] == taint["value"];
            effect_ok && key_ok && value_ok
        });
        if !tolerated {
            return Err(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint["key"].as_str().unwrap_or(""),
                taint["value"].as_str().unwrap_or("")
            ));
        }
    }
    Ok(())
}

/// `registry/name` of `registry/name:tag` or `registry/name@sha256:…`.
fn image_repository(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    match without_digest.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => repository.to_owned(),
        _ => without_digest.to_owned(),
    }
}

/// A stable 64-hex container ID.
pub(crate) fn container_id(namespace: &str, pod: &str, container: &str, pid: u32) -> String {
    use std::hash::{Hash, Hasher};
    let mut id = String::new();
    for round in 0u8..4 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (round, namespace, pod, container, pid).hash(&mut hasher);
        id.push_str(&format!("{:016x}", hasher.finish()));
    }
    id
}

fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        crate::process::kill_group(pid);
    }
}

/// Standard base64 (with or without padding).
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.trim_end_matches('=').bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'\n' | b'\r' => continue,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8gd29ybGQ").unwrap(), b"hello world");
        assert!(base64_decode("a*b").is_none());
    }

    #[test]
    fn image_repositories() {
        assert_eq!(image_repository("ghcr.io/a/agent:0.1.0"), "ghcr.io/a/agent");
        assert_eq!(
            image_repository("localhost:5000/agent"),
            "localhost:5000/agent"
        );
        assert_eq!(image_repository("agent@sha256:abc"), "agent");
    }

    #[test]
    fn taints_need_tolerations() {
        let node = json!({"metadata": {"name": "n1", "labels": {}}, "spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}});
        let bare = json!({"spec": {}});
        assert!(
            node_fits(&bare, &node)
                .unwrap_err()
                .contains("untolerated taint {dedicated: gpu}")
        );
        let tolerant = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        assert!(node_fits(&tolerant, &node).is_ok());
        let pinned = json!({"spec": {"tolerations": [{"operator": "Exists"}], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]}}}}});
        assert!(node_fits(&pinned, &node).is_err());
    }
}
