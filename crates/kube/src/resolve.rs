//! Resolving a target path to one pod and one container: a pod by name; a workload (deployment,
//! rollout, statefulset, replicaset, job, service) through its selector to a running, ready pod;
//! a cronjob through its active jobs. A misspelt name is reported with the close matches.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Resource;
use kube::api::{Api, DynamicObject, ListParams};
use mirrord_config::resolved::KubeResource;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::Cluster;
use crate::error::KubeError;
use crate::list::{list_all, rollout_resource};
use crate::target::{TargetPath, choose_container, close_matches, pod_is_ready, selector_string};

/// A target resolved to the pod and container the agent works on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedTarget {
    /// The path as asked (`deployment/api`).
    pub path: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod.
    pub pod_name: String,
    /// The pod's uid.
    pub pod_uid: String,
    /// The node the pod runs on.
    pub node_name: Option<String>,
    /// The container.
    pub container_name: String,
    /// The container's ID as the kubelet reports it (`containerd://…`, `cri-o://…`, `docker://…`).
    pub container_id: Option<String>,
}

/// The `path` of a targetless session's [`ResolvedTarget`].
pub const TARGETLESS_PATH: &str = "targetless";

impl ResolvedTarget {
    /// No target: the agent runs in a pod of its own in `namespace`, so its outgoing connections
    /// and DNS go through the cluster's network.
    pub fn targetless(namespace: &str) -> ResolvedTarget {
        ResolvedTarget {
            path: TARGETLESS_PATH.to_owned(),
            namespace: namespace.to_owned(),
            pod_name: String::new(),
            pod_uid: String::new(),
            node_name: None,
            container_name: String::new(),
            container_id: None,
        }
    }

    /// Whether this is [`ResolvedTarget::targetless`].
    pub fn is_targetless(&self) -> bool {
        self.path == TARGETLESS_PATH && self.pod_name.is_empty()
    }

    /// The container ID without the runtime prefix.
    pub fn bare_container_id(&self) -> Option<&str> {
        self.container_id
            .as_deref()
            .map(|id| id.split_once("://").map_or(id, |(_, bare)| bare))
    }
}

fn resource_name(kind: KubeResource) -> &'static str {
    match kind {
        KubeResource::Pod => "pods",
        KubeResource::Deployment => "deployments.apps",
        KubeResource::Rollout => "rollouts.argoproj.io",
        KubeResource::Statefulset => "statefulsets.apps",
        KubeResource::Replicaset => "replicasets.apps",
        KubeResource::Job => "jobs.batch",
        KubeResource::Cronjob => "cronjobs.batch",
        KubeResource::Service => "services",
    }
}

/// Gets `name`, or a not-found error with the close matches among the existing names.
async fn get_named<K>(
    api: &Api<K>,
    kind: KubeResource,
    name: &str,
    namespace: &str,
) -> Result<K, KubeError>
where
    K: Clone + DeserializeOwned + std::fmt::Debug + Resource,
{
    match api.get(name).await {
        Ok(object) => Ok(object),
        Err(error) => {
            let error = KubeError::from_api(error, "get", resource_name(kind), Some(namespace));
            if !error.is_not_found() {
                return Err(error);
            }
            let names: Vec<String> = list_all(api, &ListParams::default())
                .await
                .map(|items| {
                    items
                        .into_iter()
                        .filter_map(|o| o.meta().name.clone())
                        .collect()
                })
                .unwrap_or_default();
            Err(KubeError::TargetNotFound {
                kind: kind.as_str().to_owned(),
                name: name.to_owned(),
                namespace: namespace.to_owned(),
                close_matches: close_matches(name, &names),
            })
        }
    }
}

/// Resolves `path` in `namespace` (`None`: the kubeconfig's) to a pod and container.
pub async fn resolve_target(
    cluster: &Cluster,
    namespace: Option<&str>,
    path: &TargetPath,
) -> Result<ResolvedTarget, KubeError> {
    Ok(resolve_with_replicas(cluster, namespace, path)
        .await?
        .target)
}

/// A resolved target and the other ready pods of its workload.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The pod and container mirrord runs next to.
    pub target: ResolvedTarget,
    /// The other ready pods the workload selects (empty for a pod target): they keep receiving
    /// their share of the workload's traffic.
    pub other_ready_pods: Vec<String>,
}

impl Resolved {
    /// What the user should know when the workload has other ready replicas: mirrord runs next
    /// to one pod, and the others still receive their share of the traffic sent to the workload.
    pub fn replica_notice(&self) -> Option<String> {
        let others = &self.other_ready_pods;
        if others.is_empty() {
            return None;
        }
        let verb = if others.len() == 1 {
            "receives"
        } else {
            "receive"
        };
        Some(format!(
            "{} has {} ready replicas: mirrord runs next to pod {} only, so {} still {verb} part of the traffic sent to the workload, neither mirrored nor stolen; scale it to 1 replica while you work if every request matters",
            self.target.path,
            others.len() + 1,
            self.target.pod_name,
            others.join(", ")
        ))
    }
}

/// [`resolve_target`], with the workload's other ready pods.
pub async fn resolve_with_replicas(
    cluster: &Cluster,
    namespace: Option<&str>,
    path: &TargetPath,
) -> Result<Resolved, KubeError> {
    let namespace = cluster.namespace(namespace).to_owned();
    let client = cluster.client.clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let kind = path.resource;
    let selected = |selector: Option<&LabelSelector>| selector.and_then(selector_string);
    let selector = match kind {
        KubeResource::Pod => {
            let pod = get_named(&pods, kind, &path.name, &namespace).await?;
            if !pod_is_ready(&pod) {
                return Err(KubeError::NoReadyPod {
                    target: path.to_string(),
                    details: pod_summary(&pod),
                });
            }
            return Ok(Resolved {
                target: finish(path, &namespace, &pod)?,
                other_ready_pods: Vec::new(),
            });
        }
        KubeResource::Deployment => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
            let object = get_named(&api, kind, &path.name, &namespace).await?;
            selected(object.spec.as_ref().map(|s| &s.selector))
        }
        KubeResource::Statefulset => {
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), &namespace);
            let object = get_named(&api, kind, &path.name, &namespace).await?;
            selected(object.spec.as_ref().map(|s| &s.selector))
        }
        KubeResource::Replicaset => {
            let api: Api<ReplicaSet> = Api::namespaced(client.clone(), &namespace);
            let object = get_named(&api, kind, &path.name, &namespace).await?;
            selected(object.spec.as_ref().map(|s| &s.selector))
        }
        KubeResource::Job => {
            let api: Api<Job> = Api::namespaced(client.clone(), &namespace);
            let object = get_named(&api, kind, &path.name, &namespace).await?;
            selected(object.spec.as_ref().and_then(|s| s.selector.as_ref()))
                .or_else(|| Some(format!("batch.kubernetes.io/job-name={}", path.name)))
        }
        KubeResource::Rollout => {
            let resource = rollout_resource(cluster).await.ok_or_else(|| {
                KubeError::UnsupportedTarget(
                    "this cluster does not serve Argo Rollouts (no argoproj.io/v1alpha1 rollouts)"
                        .to_owned(),
                )
            })?;
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &namespace, &resource);
            let object = get_named(&api, kind, &path.name, &namespace).await?;
            let selector: Option<LabelSelector> =
                serde_json::from_value(object.data["spec"]["selector"].clone()).ok();
            selected(selector.as_ref())
        }
        KubeResource::Service => {
            let api: Api<Service> = Api::namespaced(client.clone(), &namespace);
            let object = get_named(&api, kind, &path.name, &namespace).await?;
            let labels = object.spec.and_then(|s| s.selector).unwrap_or_default();
            (!labels.is_empty()).then(|| {
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
        }
        KubeResource::Cronjob => {
            let api: Api<CronJob> = Api::namespaced(client.clone(), &namespace);
            let object = get_named(&api, kind, &path.name, &namespace).await?;
            let active: Vec<String> = object
                .status
                .and_then(|s| s.active)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|job| job.name)
                .collect();
            if active.is_empty() {
                return Err(KubeError::NoReadyPod {
                    target: path.to_string(),
                    details: "it has no active job".to_owned(),
                });
            }
            Some(format!(
                "batch.kubernetes.io/job-name in ({})",
                active.join(",")
            ))
        }
    };
    let Some(selector) = selector else {
        return Err(KubeError::NoReadyPod {
            target: path.to_string(),
            details: "it selects no pods".to_owned(),
        });
    };
    let mut candidates = list_all(&pods, &ListParams::default().labels(&selector))
        .await
        .map_err(|e| KubeError::from_api(e, "list", "pods", Some(&namespace)))?;
    candidates.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    match candidates.iter().find(|pod| pod_is_ready(pod)) {
        Some(pod) => Ok(Resolved {
            target: finish(path, &namespace, pod)?,
            other_ready_pods: candidates
                .iter()
                .filter(|other| pod_is_ready(other) && other.metadata.name != pod.metadata.name)
                .filter_map(|other| other.metadata.name.clone())
                .collect(),
        }),
        None => Err(KubeError::NoReadyPod {
            target: path.to_string(),
            details: if candidates.is_empty() {
                format!("no pod matches `{selector}`")
            } else {
                candidates
                    .iter()
                    .map(pod_summary)
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        }),
    }
}

/// `api-1: Running, not ready`.
fn pod_summary(pod: &Pod) -> String {
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Unknown".to_owned());
    let readiness = if pod_is_ready(pod) {
        "ready"
    } else {
        "not ready"
    };
    format!(
        "{}: {phase}, {readiness}",
        pod.metadata.name.clone().unwrap_or_default()
    )
}

fn finish(path: &TargetPath, namespace: &str, pod: &Pod) -> Result<ResolvedTarget, KubeError> {
    let container_name = choose_container(pod, path.container.as_deref())?;
    let container_id = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|statuses| statuses.iter().find(|s| s.name == container_name))
        .and_then(|s| s.container_id.clone());
    Ok(ResolvedTarget {
        path: path.to_string(),
        namespace: namespace.to_owned(),
        pod_name: pod.metadata.name.clone().unwrap_or_default(),
        pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        container_name,
        container_id,
    })
}
