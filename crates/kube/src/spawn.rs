//! Starting the agent for a resolved target and waiting until it runs: the token Secret, then the
//! Job (or the ephemeral container), then a watch on the agent's pod that reports progress and
//! fails fast, with Kubernetes' reason, on image pull errors, an unschedulable pod or a failed
//! container, all bounded by `agent.startup_timeout`. The Secret is deleted once the agent runs
//! (its environment is fixed at container start); until then the Job owns it, so garbage
//! collection removes it with the Job if mirrord dies half-way.

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use mirrord_config::ResolvedConfig;
use serde_json::json;

use crate::client::Cluster;
use crate::copy::CopySession;
use crate::error::KubeError;
use crate::resolve::ResolvedTarget;
use crate::spec::{AGENT_CONTAINER, AgentSpec, SESSION_LABEL};

/// Waiting reasons after which a container will not start without someone changing something.
const FATAL_WAITING_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "CrashLoopBackOff",
];

/// A running agent, reachable by port-forward to `pod:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPod {
    /// The pod's namespace.
    pub namespace: String,
    /// The agent's pod (the target pod itself for an ephemeral agent).
    pub pod_name: String,
    /// The agent's port in that pod.
    pub port: u16,
}

impl std::fmt::Display for AgentPod {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{}/{}:{}",
            self.namespace, self.pod_name, self.port
        )
    }
}

impl std::str::FromStr for AgentPod {
    type Err = String;

    /// Parses `NAMESPACE/POD:PORT`.
    fn from_str(text: &str) -> Result<AgentPod, String> {
        let bad = || format!("`{text}` is not NAMESPACE/POD:PORT");
        let (namespace, rest) = text.split_once('/').ok_or_else(bad)?;
        let (pod_name, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        if namespace.is_empty() || pod_name.is_empty() {
            return Err(bad());
        }
        Ok(AgentPod {
            namespace: namespace.to_owned(),
            pod_name: pod_name.to_owned(),
            port: port.parse().map_err(|_| bad())?,
        })
    }
}

/// What the agent's pod looks like now.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Assessment {
    Ready,
    Starting(String),
    Failed { reason: String, message: String },
}

fn assess(pod: &Pod, container: &str, ephemeral: bool) -> Assessment {
    let Some(status) = &pod.status else {
        return Assessment::Starting("Pending".to_owned());
    };
    if let Some(unschedulable) = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    }) {
        return Assessment::Failed {
            reason: "Unschedulable".to_owned(),
            message: unschedulable.message.clone().unwrap_or_default(),
        };
    }
    let statuses: &[ContainerStatus] = if ephemeral {
        status
            .ephemeral_container_statuses
            .as_deref()
            .unwrap_or_default()
    } else {
        status.container_statuses.as_deref().unwrap_or_default()
    };
    let container_status = statuses.iter().find(|s| s.name == container);
    if let Some(state) = container_status.and_then(|s| s.state.as_ref()) {
        if let Some(waiting) = &state.waiting {
            let reason = waiting.reason.clone().unwrap_or_default();
            if FATAL_WAITING_REASONS.contains(&reason.as_str()) {
                return Assessment::Failed {
                    reason,
                    message: waiting.message.clone().unwrap_or_default(),
                };
            }
            return Assessment::Starting(format!("waiting: {reason}"));
        }
        if let Some(terminated) = &state.terminated {
            return Assessment::Failed {
                reason: terminated
                    .reason
                    .clone()
                    .unwrap_or_else(|| "Terminated".to_owned()),
                message: format!(
                    "the agent exited with code {}{}",
                    terminated.exit_code,
                    terminated
                        .message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ),
            };
        }
        if state.running.is_some() {
            let ready = ephemeral || container_status.is_some_and(|s| s.ready);
            return if ready {
                Assessment::Ready
            } else {
                Assessment::Starting("running, not ready yet".to_owned())
            };
        }
    }
    let phase = status.phase.clone().unwrap_or_else(|| "Pending".to_owned());
    if phase == "Failed" {
        return Assessment::Failed {
            reason: status.reason.clone().unwrap_or_else(|| "Failed".to_owned()),
            message: status.message.clone().unwrap_or_default(),
        };
    }
    Assessment::Starting(phase)
}

/// Chooses the agent's port from the session id (ephemeral agents share the target's ports).
fn agent_port(session_id: &str) -> u16 {
    let hash = session_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)
        });
    30_000 + (hash % 30_000) as u16
}

/// Starts the agent for `target` and waits until it runs; with `undo` (granted by `grant_undo`),
/// the agent undoes that copy session itself when its session ends.
pub async fn spawn_agent(
    cluster: &Cluster,
    config: &ResolvedConfig,
    target: &ResolvedTarget,
    token: &str,
    session_id: &str,
    undo: Option<&CopySession>,
    progress: &mut dyn FnMut(&str),
) -> Result<AgentPod, KubeError> {
    if target.container_id.is_none() && !target.is_targetless() {
        return Err(KubeError::NoReadyPod {
            target: target.path.clone(),
            details: format!(
                "container `{}` of pod `{}` has no container ID yet",
                target.container_name, target.pod_name
            ),
        });
    }
    let spec = AgentSpec {
        agent: &config.agent,
        target,
        session_id,
        port: agent_port(session_id),
        undo,
    };
    let timeout = Duration::from_secs(config.agent.startup_timeout.max(1));
    // A targetless agent has no pod to join.
    if config.agent.ephemeral && !target.is_targetless() {
        spawn_ephemeral(cluster, &spec, token, timeout, progress).await
    } else {
        spawn_job(cluster, &spec, token, timeout, progress).await
    }
}

async fn spawn_job(
    cluster: &Cluster,
    spec: &AgentSpec<'_>,
    token: &str,
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<AgentPod, KubeError> {
    let namespace = spec.job_namespace().to_owned();
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), &namespace);
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), &namespace);
    let secret_name = spec.secret_name();
    progress(&format!(
        "creating the agent Job {namespace}/{}",
        spec.name()
    ));
    secrets
        .create(&PostParams::default(), &spec.secret(&namespace, token))
        .await
        .map_err(|e| KubeError::from_api(e, "create", "secrets", Some(&namespace)))?;
    let job = match jobs.create(&PostParams::default(), &spec.job()).await {
        Ok(job) => job,
        Err(error) => {
            let _ = secrets.delete(&secret_name, &DeleteParams::default()).await;
            return Err(KubeError::from_api(
                error,
                "create",
                "jobs.batch",
                Some(&namespace),
            ));
        }
    };
    let owner = OwnerReference {
        api_version: "batch/v1".to_owned(),
        kind: "Job".to_owned(),
        name: job.metadata.name.clone().unwrap_or_default(),
        uid: job.metadata.uid.clone().unwrap_or_default(),
        controller: Some(false),
        block_owner_deletion: Some(false),
    };
    let owner = json!({"metadata": {"ownerReferences": [owner]}});
    if let Err(error) = secrets
        .patch(&secret_name, &PatchParams::default(), &Patch::Merge(&owner))
        .await
    {
        tracing::debug!(%error, "cannot make the agent Job own its Secret");
    }
    let cleanup = async || {
        let _ = jobs.delete(&spec.name(), &DeleteParams::background()).await;
        let _ = secrets.delete(&secret_name, &DeleteParams::default()).await;
    };
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &namespace);
    let selector = format!("{SESSION_LABEL}={}", spec.session_id);
    match wait_for_pod(&pods, &selector, AGENT_CONTAINER, false, timeout, progress).await {
        Ok(pod_name) => {
            let _ = secrets.delete(&secret_name, &DeleteParams::default()).await;
            Ok(AgentPod {
                namespace,
                pod_name,
                port: spec.port,
            })
        }
        Err(error) => {
            cleanup().await;
            Err(error)
        }
    }
}

async fn spawn_ephemeral(
    cluster: &Cluster,
    spec: &AgentSpec<'_>,
    token: &str,
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<AgentPod, KubeError> {
    let namespace = spec.target.namespace.clone();
    let pod_name = spec.target.pod_name.clone();
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), &namespace);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &namespace);
    let secret_name = spec.secret_name();
    let mut secret = spec.secret(&namespace, token);
    secret.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".to_owned(),
            kind: "Pod".to_owned(),
            name: pod_name.clone(),
            uid: spec.target.pod_uid.clone(),
            ..Default::default()
        },
    ]);
    progress(&format!(
        "adding the agent as an ephemeral container of {namespace}/{pod_name}"
    ));
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .map_err(|e| KubeError::from_api(e, "create", "secrets", Some(&namespace)))?;
    let patch = json!({"spec": {"ephemeralContainers": [spec.ephemeral_container()]}});
    if let Err(error) = pods
        .patch_ephemeral_containers(
            &pod_name,
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
    {
        let _ = secrets.delete(&secret_name, &DeleteParams::default()).await;
        return Err(KubeError::from_api(
            error,
            "patch",
            "pods/ephemeralcontainers",
            Some(&namespace),
        ));
    }
    let selector = format!("metadata.name={pod_name}");
    let result = wait_for_pod(&pods, &selector, &spec.name(), true, timeout, progress).await;
    let _ = secrets.delete(&secret_name, &DeleteParams::default()).await;
    result.map(|pod_name| AgentPod {
        namespace,
        pod_name,
        port: spec.port,
    })
}

/// Waits until `container` of the pod `pod_name` runs (and is ready); returns the pod as it is
/// then.
pub(crate) async fn wait_for_container(
    pods: &Api<Pod>,
    pod_name: &str,
    container: &str,
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<Pod, KubeError> {
    let selector = format!("metadata.name={pod_name}");
    wait_for_pod(pods, &selector, container, false, timeout, progress).await?;
    pods.get(pod_name)
        .await
        .map_err(|e| KubeError::from_api(e, "get", "pods", pods.namespace()))
}

/// Watches the pod selected by `selector` (a label selector, or `metadata.name=…` for a field
/// selector) until `container` runs; returns the pod's name.
async fn wait_for_pod(
    pods: &Api<Pod>,
    selector: &str,
    container: &str,
    ephemeral: bool,
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<String, KubeError> {
    let namespace = pods.namespace().map(str::to_owned);
    let by_field = selector.starts_with("metadata.name=");
    let mut last_state = "not created yet".to_owned();
    let mut last_pod = String::from("(pending)");
    let watching = async {
        loop {
            let list_params = if by_field {
                ListParams::default().fields(selector)
            } else {
                ListParams::default().labels(selector)
            };
            let list = pods
                .list(&list_params)
                .await
                .map_err(|e| KubeError::from_api(e, "list", "pods", namespace.as_deref()))?;
            let mut seen = list.items;
            let mut version = list.metadata.resource_version.unwrap_or_default();
            loop {
                for pod in seen.drain(..) {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    let full_name = format!(
                        "{}/{name}",
                        pod.metadata.namespace.clone().unwrap_or_default()
                    );
                    match assess(&pod, container, ephemeral) {
                        Assessment::Ready => return Ok(name),
                        Assessment::Failed { reason, message } => {
                            return Err(KubeError::AgentFailed {
                                pod: full_name,
                                reason,
                                message,
                            });
                        }
                        Assessment::Starting(state) => {
                            if state != last_state || full_name != last_pod {
                                progress(&format!("agent pod {full_name}: {state}"));
                                last_state = state;
                                last_pod = full_name;
                            }
                        }
                    }
                }
                let watch_params = if by_field {
                    WatchParams::default().fields(selector)
                } else {
                    WatchParams::default().labels(selector)
                }
                .timeout(30);
                let stream = pods
                    .watch(&watch_params, &version)
                    .await
                    .map_err(|e| KubeError::from_api(e, "watch", "pods", namespace.as_deref()))?;
                let mut stream = std::pin::pin!(stream);
                let mut restart_with_list = false;
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(WatchEvent::Added(pod) | WatchEvent::Modified(pod)) => {
                            version = pod.metadata.resource_version.clone().unwrap_or(version);
                            seen.push(pod);
                            break;
                        }
                        Ok(WatchEvent::Deleted(pod)) => {
                            return Err(KubeError::AgentFailed {
                                pod: pod.metadata.name.unwrap_or_default(),
                                reason: "Deleted".to_owned(),
                                message: "the agent's pod was deleted while starting".to_owned(),
                            });
                        }
                        Ok(WatchEvent::Bookmark(bookmark)) => {
                            version = bookmark.metadata.resource_version
                        }
                        Ok(WatchEvent::Error(_)) | Err(_) => {
                            restart_with_list = true;
                            break;
                        }
                    }
                }
                if restart_with_list {
                    break;
                }
            }
        }
    };
    match tokio::time::timeout(timeout, watching).await {
        Ok(result) => result,
        Err(_) => Err(KubeError::AgentTimeout {
            pod: last_pod,
            seconds: timeout.as_secs(),
            last_state,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "agent"}, "status": status})).unwrap()
    }

    #[test]
    fn fails_fast_on_pull_errors_and_scheduling() {
        let pulling = pod(
            json!({"phase": "Pending", "containerStatuses": [{"name": AGENT_CONTAINER, "ready": false, "restartCount": 0, "image": "x", "imageID": "",
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x\""}}}]}),
        );
        assert_eq!(
            assess(&pulling, AGENT_CONTAINER, false),
            Assessment::Failed {
                reason: "ImagePullBackOff".to_owned(),
                message: "Back-off pulling image \"x\"".to_owned()
            }
        );
        let unschedulable = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/2 nodes are available"}]}),
        );
        assert!(
            matches!(assess(&unschedulable, AGENT_CONTAINER, false), Assessment::Failed { reason, .. } if reason == "Unschedulable")
        );
        let creating = pod(
            json!({"phase": "Pending", "containerStatuses": [{"name": AGENT_CONTAINER, "ready": false, "restartCount": 0, "image": "x", "imageID": "",
            "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
        );
        assert_eq!(
            assess(&creating, AGENT_CONTAINER, false),
            Assessment::Starting("waiting: ContainerCreating".to_owned())
        );
        let running = pod(
            json!({"phase": "Running", "containerStatuses": [{"name": AGENT_CONTAINER, "ready": true, "restartCount": 0, "image": "x", "imageID": "",
            "state": {"running": {}}}]}),
        );
        assert_eq!(assess(&running, AGENT_CONTAINER, false), Assessment::Ready);
        let exited = pod(
            json!({"phase": "Failed", "containerStatuses": [{"name": AGENT_CONTAINER, "ready": false, "restartCount": 0, "image": "x", "imageID": "",
            "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": "target container not found"}}}]}),
        );
        assert_eq!(
            assess(&exited, AGENT_CONTAINER, false),
            Assessment::Failed {
                reason: "Error".to_owned(),
                message: "the agent exited with code 1: target container not found".to_owned()
            }
        );
    }

    #[test]
    fn agent_pod_addresses() {
        let pod: AgentPod = "default/mirrord-agent-1-abc:40123".parse().unwrap();
        assert_eq!(pod.namespace, "default");
        assert_eq!(pod.pod_name, "mirrord-agent-1-abc");
        assert_eq!(pod.port, 40123);
        assert_eq!(pod.to_string(), "default/mirrord-agent-1-abc:40123");
        assert!("nope".parse::<AgentPod>().is_err());
        let port = agent_port("1234-abcdef01");
        assert!((30_000..60_000).contains(&port));
        assert_eq!(port, agent_port("1234-abcdef01"));
    }
}
