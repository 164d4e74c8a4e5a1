//! Listing targets in a namespace: pods (with their app containers), deployments, statefulsets,
//! replicasets, jobs, cronjobs, and Argo rollouts when that CRD is installed (found through
//! discovery, so there is no dependency on it). Lists are paginated and leave out mirrord's own
//! agent pods and jobs. This is what `mirrord ls` prints and what the IDE's `mirrord/listTargets`
//! returns.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, ObjectList};
use kube::core::GroupVersionKind;
use mirrord_config::resolved::KubeResource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::client::Cluster;
use crate::error::KubeError;
use crate::spec::AGENT_LABEL;
use crate::target::{app_containers, pod_is_ready};

/// Page size of list requests.
const PAGE_SIZE: u32 = 200;

/// One target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetEntry {
    /// The target path (`deployment/api`, `pod/api-1/container/web`).
    pub path: String,
    /// `pod`, `deployment`, …
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Whether it has a running, ready pod now.
    pub available: bool,
}

/// What `mirrord ls --output json` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetListing {
    /// The targets, by kind then name.
    pub targets: Vec<TargetEntry>,
    /// The namespace listed.
    pub current_namespace: String,
    /// Namespaces the user may list (just the current one when listing namespaces is forbidden).
    pub namespaces: Vec<String>,
    /// Kinds that could not be listed, with why (e.g. RBAC), for the user to see on stderr.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// The namespace; `None`: the kubeconfig's.
    pub namespace: Option<String>,
    /// Only these kinds; empty: every listable kind.
    pub kinds: Vec<KubeResource>,
    /// Items per list request (`None`: 200).
    pub page_size: Option<u32>,
}

/// The kinds listed by default, in output order.
pub const LISTED_KINDS: [KubeResource; 7] = [
    KubeResource::Pod,
    KubeResource::Deployment,
    KubeResource::Rollout,
    KubeResource::Statefulset,
    KubeResource::Replicaset,
    KubeResource::Job,
    KubeResource::Cronjob,
];

/// Every item of a list, following `continue` tokens.
pub(crate) async fn list_all<K>(api: &Api<K>, params: &ListParams) -> Result<Vec<K>, kube::Error>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    let page_size = params.limit.unwrap_or(PAGE_SIZE);
    let mut params = params.clone().limit(page_size);
    let mut items = Vec::new();
    loop {
        let page: ObjectList<K> = api.list(&params).await?;
        items.extend(page.items);
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(items),
        }
    }
}

/// Leaves out mirrord's own agent pods and jobs.
fn not_agents() -> ListParams {
    ListParams::default().labels(&format!("!{AGENT_LABEL}"))
}

/// The Argo Rollout resource, if the cluster serves it.
pub(crate) async fn rollout_resource(cluster: &Cluster) -> Option<ApiResource> {
    let resources = cluster
        .client
        .list_api_group_resources("argoproj.io/v1alpha1")
        .await
        .ok()?;
    resources
        .resources
        .iter()
        .find(|r| r.name == "rollouts")
        .map(|r| {
            ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("argoproj.io", "v1alpha1", &r.kind),
                "rollouts",
            )
        })
}

fn entry(kind: KubeResource, name: &str, namespace: &str, available: bool) -> TargetEntry {
    TargetEntry {
        path: format!("{}/{name}", kind.as_str()),
        kind: kind.as_str().to_owned(),
        namespace: namespace.to_owned(),
        available,
    }
}

async fn list_kind(
    cluster: &Cluster,
    namespace: &str,
    kind: KubeResource,
    page_size: u32,
) -> Result<Vec<TargetEntry>, KubeError> {
    let all = ListParams::default().limit(page_size);
    let not_agents = not_agents().limit(page_size);
    let client = cluster.client.clone();
    let api_error = |resource: &str| {
        let resource = resource.to_owned();
        move |error| KubeError::from_api(error, "list", &resource, Some(namespace))
    };
    let name_of = |meta: &kube::core::ObjectMeta| meta.name.clone().unwrap_or_default();
    let entries = match kind {
        KubeResource::Pod => {
            let pods: Vec<Pod> = list_all(&Api::namespaced(client, namespace), &not_agents)
                .await
                .map_err(api_error("pods"))?;
            let mut entries = Vec::new();
            for pod in pods {
                let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                if matches!(phase, Some("Succeeded" | "Failed")) {
                    continue;
                }
                let name = name_of(&pod.metadata);
                let available = pod_is_ready(&pod);
                entries.push(entry(kind, &name, namespace, available));
                let containers = app_containers(&pod);
                if containers.len() > 1 {
                    for container in containers {
                        entries.push(TargetEntry {
                            path: format!("pod/{name}/container/{container}"),
                            kind: "pod".to_owned(),
                            namespace: namespace.to_owned(),
                            available,
                        });
                    }
                }
            }
            entries
        }
        KubeResource::Deployment => {
            list_all::<Deployment>(&Api::namespaced(client, namespace), &all)
                .await
                .map_err(api_error("deployments.apps"))?
                .into_iter()
                .map(|d| {
                    let available = d
                        .status
                        .as_ref()
                        .and_then(|s| s.available_replicas)
                        .unwrap_or(0)
                        > 0;
                    entry(kind, &name_of(&d.metadata), namespace, available)
                })
                .collect()
        }
        KubeResource::Statefulset => {
            list_all::<StatefulSet>(&Api::namespaced(client, namespace), &all)
                .await
                .map_err(api_error("statefulsets.apps"))?
                .into_iter()
                .map(|s| {
                    let status = s.status.as_ref();
                    let ready = status
                        .and_then(|s| s.available_replicas.or(s.ready_replicas))
                        .unwrap_or(0);
                    entry(kind, &name_of(&s.metadata), namespace, ready > 0)
                })
                .collect()
        }
        KubeResource::Replicaset => {
            list_all::<ReplicaSet>(&Api::namespaced(client, namespace), &all)
                .await
                .map_err(api_error("replicasets.apps"))?
                .into_iter()
                .map(|r| {
                    let available = r
                        .status
                        .as_ref()
                        .and_then(|s| s.available_replicas)
                        .unwrap_or(0)
                        > 0;
                    entry(kind, &name_of(&r.metadata), namespace, available)
                })
                .collect()
        }
        KubeResource::Job => list_all::<Job>(&Api::namespaced(client, namespace), &not_agents)
            .await
            .map_err(api_error("jobs.batch"))?
            .into_iter()
            .map(|j| {
                let active = j.status.as_ref().and_then(|s| s.active).unwrap_or(0) > 0;
                entry(kind, &name_of(&j.metadata), namespace, active)
            })
            .collect(),
        KubeResource::Cronjob => list_all::<CronJob>(&Api::namespaced(client, namespace), &all)
            .await
            .map_err(api_error("cronjobs.batch"))?
            .into_iter()
            .map(|c| {
                let active = c
                    .status
                    .as_ref()
                    .and_then(|s| s.active.as_ref())
                    .is_some_and(|a| !a.is_empty());
                entry(kind, &name_of(&c.metadata), namespace, active)
            })
            .collect(),
        KubeResource::Rollout => {
            let Some(resource) = rollout_resource(cluster).await else {
                return Ok(Vec::new());
            };
            let api: Api<DynamicObject> = Api::namespaced_with(client, namespace, &resource);
            list_all(&api, &all)
                .await
                .map_err(api_error("rollouts.argoproj.io"))?
                .into_iter()
                .map(|r| {
                    let available = r.data["status"]["availableReplicas"].as_i64().unwrap_or(0) > 0;
                    entry(kind, &name_of(&r.metadata), namespace, available)
                })
                .collect()
        }
        KubeResource::Service => Vec::new(),
    };
    Ok(entries)
}

/// Namespaces the user may list; `None` when listing them is not allowed.
async fn list_namespaces(cluster: &Cluster) -> Result<Vec<String>, KubeError> {
    let api: Api<Namespace> = Api::all(cluster.client.clone());
    let namespaces = list_all(&api, &ListParams::default())
        .await
        .map_err(|e| KubeError::from_api(e, "list", "namespaces", None))?;
    Ok(namespaces
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect())
}

/// Lists the targets of one namespace. A kind the user may not list is left out with a warning
/// (an error when that kind was asked for explicitly); a cluster that cannot be reached is an
/// error.
pub async fn list_targets(
    cluster: &Cluster,
    options: &ListOptions,
) -> Result<TargetListing, KubeError> {
    let namespace = cluster.namespace(options.namespace.as_deref()).to_owned();
    let kinds: Vec<KubeResource> = if options.kinds.is_empty() {
        LISTED_KINDS.to_vec()
    } else {
        options.kinds.clone()
    };
    let mut listing = TargetListing {
        current_namespace: namespace.clone(),
        ..TargetListing::default()
    };
    let lists = kinds.iter().map(|kind| {
        list_kind(
            cluster,
            &namespace,
            *kind,
            options.page_size.unwrap_or(PAGE_SIZE),
        )
    });
    let (results, namespaces) = tokio::join!(
        futures_util::future::join_all(lists),
        list_namespaces(cluster)
    );
    for (kind, result) in kinds.iter().zip(results) {
        match result {
            Ok(entries) => listing.targets.extend(entries),
            Err(error @ KubeError::Forbidden { .. }) if options.kinds.is_empty() => {
                let help = error.help().map(|h| format!(" ({h})")).unwrap_or_default();
                listing
                    .warnings
                    .push(format!("{}s left out: {error}{help}", kind.as_str()));
            }
            Err(error) => return Err(error),
        }
    }
    listing.namespaces = match namespaces {
        Ok(namespaces) => namespaces,
        Err(KubeError::Forbidden { .. }) => vec![namespace.clone()],
        Err(error) => return Err(error),
    };
    Ok(listing)
}
