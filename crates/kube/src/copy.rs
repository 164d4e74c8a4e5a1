//! `feature.copy_target`: the session runs against a copy of the target's pod — the same spec
//! (containers, environment, volumes), without the original's labels, so no Service, ReplicaSet
//! or other selector picks it up — and, with `scale_down`, the target's deployment or statefulset
//! is scaled to zero for the session.
//!
//! Lifetime: the workload keeps the replica count it had in an annotation
//! ([`SCALED_DOWN_ANNOTATION`], with the session's id in [`SCALED_DOWN_BY_ANNOTATION`]). Two
//! parties undo the session, whichever comes first (`restore.rs`, idempotent): the session's
//! internal proxy runs [`end_copy`] when the session ends (however the user's process ended,
//! `kill -9` included), and the agent does the same when its client is gone, with a
//! ServiceAccount allowed exactly that ([`grant_undo`](crate::grant_undo)), so it happens also
//! when every mirrord process on the user's machine was killed. The copy is also owned by the
//! agent's Job, so the garbage collector removes it with the Job (`agent.ttl` after the agent
//! exits) if both failed.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use mirrord_config::resolved::{CopyTargetConfig, KubeResource};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::client::Cluster;
use crate::error::KubeError;
use crate::resolve::ResolvedTarget;
use crate::restore::{
    Restored, SCALED_DOWN_ANNOTATION, SCALED_DOWN_BY_ANNOTATION, delete_copy, restore_replicas,
};
use crate::spec::SESSION_LABEL;
use crate::target::TargetPath;

/// Label on a copy, naming the pod it copies.
pub const COPY_OF_LABEL: &str = "mirrord.dev/copy-of";
/// The environment variable that hands a [`CopySession`] to the internal proxy.
pub const COPY_SESSION_ENV: &str = "MIRRORD_COPY_SESSION";

/// What a session with a copied target must undo when it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopySession {
    /// The namespace of the copy and of the target.
    pub namespace: String,
    /// The copy pod.
    pub copy_pod: String,
    /// The workload scaled down, if any.
    pub scaled_down: Option<ScaledDown>,
    /// The session's id (names its objects; marks the workload it scaled down).
    #[serde(default)]
    pub session_id: String,
}

/// A workload scaled to zero for the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaledDown {
    /// `deployment` or `statefulset`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// The replicas to restore.
    pub replicas: i32,
}

impl CopySession {
    /// As JSON, for [`COPY_SESSION_ENV`].
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// From [`COPY_SESSION_ENV`], when it is set.
    pub fn from_env() -> Option<CopySession> {
        serde_json::from_str(&std::env::var(COPY_SESSION_ENV).ok()?).ok()
    }
}

/// The copy of `original`: its spec without the node it was placed on, ephemeral containers and
/// the excluded containers; no labels but mirrord's own (so no selector matches it), no owner.
pub fn copy_pod(original: &Pod, name: &str, session_id: &str, copy: &CopyTargetConfig) -> Pod {
    let mut spec = original.spec.clone().unwrap_or_default();
    spec.node_name = None;
    spec.ephemeral_containers = None;
    spec.containers
        .retain(|container| !copy.exclude_containers.contains(&container.name));
    if let Some(init) = spec.init_containers.as_mut() {
        init.retain(|container| !copy.exclude_init_containers.contains(&container.name));
    }
    let labels = BTreeMap::from([
        (
            COPY_OF_LABEL.to_owned(),
            original.metadata.name.clone().unwrap_or_default(),
        ),
        (SESSION_LABEL.to_owned(), session_id.to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "mirrord".to_owned(),
        ),
    ]);
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: original.metadata.namespace.clone(),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Creates the copy of `target`'s pod, waits until its container runs, and scales the target's
/// workload down when asked; returns the copy as the session's target and what to undo.
pub async fn copy_target(
    cluster: &Cluster,
    copy: &CopyTargetConfig,
    path: &TargetPath,
    target: &ResolvedTarget,
    session_id: &str,
    timeout: std::time::Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<(ResolvedTarget, CopySession), KubeError> {
    let namespace = target.namespace.clone();
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &namespace);
    let original = pods
        .get(&target.pod_name)
        .await
        .map_err(|e| KubeError::from_api(e, "get", "pods", Some(&namespace)))?;
    let name = format!("mirrord-copy-{session_id}");
    progress(&format!(
        "copying pod {namespace}/{} to {namespace}/{name}",
        target.pod_name
    ));
    pods.create(
        &PostParams::default(),
        &copy_pod(&original, &name, session_id, copy),
    )
    .await
    .map_err(|e| KubeError::from_api(e, "create", "pods", Some(&namespace)))?;
    let mut session = CopySession {
        namespace: namespace.clone(),
        copy_pod: name.clone(),
        scaled_down: None,
        session_id: session_id.to_owned(),
    };
    let copied = match crate::spawn::wait_for_container(
        &pods,
        &name,
        &target.container_name,
        timeout,
        progress,
    )
    .await
    {
        Ok(pod) => pod,
        Err(error) => {
            end_copy(cluster, &session).await;
            return Err(error);
        }
    };
    let container_id = copied
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|statuses| statuses.iter().find(|s| s.name == target.container_name))
        .and_then(|s| s.container_id.clone());
    let copy_target = ResolvedTarget {
        path: format!("pod/{name}"),
        namespace: namespace.clone(),
        pod_name: name.clone(),
        pod_uid: copied.metadata.uid.clone().unwrap_or_default(),
        node_name: copied.spec.as_ref().and_then(|s| s.node_name.clone()),
        container_name: target.container_name.clone(),
        container_id,
    };
    if copy.scale_down {
        match scale_down(cluster, path, &namespace, session_id, progress).await {
            Ok(scaled) => session.scaled_down = scaled,
            Err(error) => {
                end_copy(cluster, &session).await;
                return Err(error);
            }
        }
    }
    Ok((copy_target, session))
}

/// Scales the workload of `path` to zero, keeping its replica count (and the session's id) in
/// annotations.
async fn scale_down(
    cluster: &Cluster,
    path: &TargetPath,
    namespace: &str,
    session_id: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<Option<ScaledDown>, KubeError> {
    let (kind, resource, replicas) =
        match path.resource {
            KubeResource::Deployment => {
                let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), namespace);
                let object = api.get(&path.name).await.map_err(|e| {
                    KubeError::from_api(e, "get", "deployments.apps", Some(namespace))
                })?;
                (
                    "deployment",
                    "deployments.apps",
                    scaled_from(&object.metadata, object.spec.and_then(|s| s.replicas)),
                )
            }
            KubeResource::Statefulset => {
                let api: Api<StatefulSet> = Api::namespaced(cluster.client.clone(), namespace);
                let object = api.get(&path.name).await.map_err(|e| {
                    KubeError::from_api(e, "get", "statefulsets.apps", Some(namespace))
                })?;
                (
                    "statefulset",
                    "statefulsets.apps",
                    scaled_from(&object.metadata, object.spec.and_then(|s| s.replicas)),
                )
            }
            _ => {
                return Err(KubeError::UnsupportedTarget(format!(
                    "`copy_target.scale_down` scales a deployment or a statefulset, not a {}",
                    path.resource.as_str()
                )));
            }
        };
    progress(&format!(
        "scaling {kind}/{} down from {replicas} to 0 replicas for the session",
        path.name
    ));
    let patch = json!({
        "metadata": {"annotations": {
            SCALED_DOWN_ANNOTATION: replicas.to_string(),
            SCALED_DOWN_BY_ANNOTATION: session_id,
        }},
        "spec": {"replicas": 0},
    });
    patch_scale(cluster, kind, namespace, &path.name, &patch)
        .await
        .map_err(|e| KubeError::from_api(e, "patch", resource, Some(namespace)))?;
    Ok(Some(ScaledDown {
        kind: kind.to_owned(),
        name: path.name.clone(),
        replicas,
    }))
}

/// The replicas to restore: an earlier session's annotation wins (that session was scaled down
/// and never restored), else the current count.
fn scaled_from(metadata: &ObjectMeta, replicas: Option<i32>) -> i32 {
    metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SCALED_DOWN_ANNOTATION))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| replicas.unwrap_or(1))
}

async fn patch_scale(
    cluster: &Cluster,
    kind: &str,
    namespace: &str,
    name: &str,
    patch: &serde_json::Value,
) -> Result<(), kube::Error> {
    let params = PatchParams::default();
    if kind == "statefulset" {
        let api: Api<StatefulSet> = Api::namespaced(cluster.client.clone(), namespace);
        api.patch(name, &params, &Patch::Merge(patch)).await?;
    } else {
        let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), namespace);
        api.patch(name, &params, &Patch::Merge(patch)).await?;
    }
    Ok(())
}

/// Makes the agent's Job the owner of the copy, so the garbage collector removes the copy with
/// the Job even when nothing of mirrord is left to do it.
pub async fn hand_copy_to_job(
    cluster: &Cluster,
    session: &CopySession,
    job_namespace: &str,
    job_name: &str,
) -> Result<(), KubeError> {
    if job_namespace != session.namespace {
        // Owners must live in the same namespace; the internal proxy still deletes the copy.
        return Ok(());
    }
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), job_namespace);
    let job = jobs
        .get(job_name)
        .await
        .map_err(|e| KubeError::from_api(e, "get", "jobs.batch", Some(job_namespace)))?;
    let owner = OwnerReference {
        api_version: "batch/v1".to_owned(),
        kind: "Job".to_owned(),
        name: job_name.to_owned(),
        uid: job.metadata.uid.unwrap_or_default(),
        controller: Some(false),
        block_owner_deletion: Some(false),
    };
    let owned = json!({"metadata": {"ownerReferences": [owner]}});
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &session.namespace);
    pods.patch(
        &session.copy_pod,
        &PatchParams::default(),
        &Patch::Merge(&owned),
    )
    .await
    .map_err(|e| KubeError::from_api(e, "patch", "pods", Some(&session.namespace)))?;
    // The agent's permissions to undo the session (`grant_undo`), where they were made.
    let name = crate::undo::undo_object_name(&session.session_id);
    for resource in [
        ApiResource::erase::<ServiceAccount>(&()),
        ApiResource::erase::<Role>(&()),
        ApiResource::erase::<RoleBinding>(&()),
    ] {
        let api: Api<DynamicObject> =
            Api::namespaced_with(cluster.client.clone(), &session.namespace, &resource);
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&owned))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => {
                tracing::warn!(kind = %resource.kind, %name, %error, "cannot make the agent Job own it")
            }
        }
    }
    Ok(())
}

/// Undoes a copy session: restores the workload's replicas (dropping the annotations) if it is
/// still as this session left it, and deletes the copy. Best effort: each failure is logged and
/// the rest still done; what the agent already undid is left as it is.
pub async fn end_copy(cluster: &Cluster, session: &CopySession) {
    if let Some(scaled) = &session.scaled_down {
        match restore_replicas(
            &cluster.client,
            &session.namespace,
            &scaled.kind,
            &scaled.name,
            &session.session_id,
        )
        .await
        {
            Ok(Restored::Replicas(replicas)) => {
                tracing::info!(kind = %scaled.kind, name = %scaled.name, replicas, "replicas restored")
            }
            Ok(Restored::LeftAlone(why)) => {
                tracing::info!(kind = %scaled.kind, name = %scaled.name, why, "replicas left alone")
            }
            Err(error) => {
                tracing::warn!(kind = %scaled.kind, name = %scaled.name, %error, "cannot restore the replicas")
            }
        }
    }
    match delete_copy(&cluster.client, &session.namespace, &session.copy_pod).await {
        Ok(true) => tracing::info!(pod = %session.copy_pod, "copy of the target deleted"),
        Ok(false) => tracing::info!(pod = %session.copy_pod, "copy of the target already gone"),
        Err(error) => tracing::warn!(pod = %session.copy_pod, %error, "cannot delete the copy"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_keeps_the_spec_without_labels_owner_node_or_excluded_containers() {
        let original: Pod = serde_json::from_value(json!({
            "metadata": {"name": "api-7f9c-x2k4p", "namespace": "shop", "uid": "u1",
                "labels": {"app": "api", "pod-template-hash": "7f9c"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7f9c", "uid": "rs", "controller": true}]},
            "spec": {"nodeName": "node-1",
                "initContainers": [{"name": "migrate", "image": "api:1"}, {"name": "wait-db", "image": "busybox"}],
                "containers": [
                    {"name": "api", "image": "api:1", "env": [{"name": "GREETING", "value": "hello"}],
                     "volumeMounts": [{"name": "config", "mountPath": "/app/config"}]},
                    {"name": "metrics", "image": "metrics:2"}],
                "volumes": [{"name": "config", "configMap": {"name": "api-config"}}],
                "ephemeralContainers": [{"name": "debugger", "image": "busybox"}]},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        let config = CopyTargetConfig {
            enabled: true,
            scale_down: false,
            exclude_containers: vec!["metrics".to_owned()],
            exclude_init_containers: vec!["wait-db".to_owned()],
        };
        let copy = copy_pod(&original, "mirrord-copy-1-ab", "1-ab", &config);
        let copy = serde_json::to_value(&copy).unwrap();
        assert_eq!(
            copy["metadata"],
            json!({"name": "mirrord-copy-1-ab", "namespace": "shop", "labels": {
                "app.kubernetes.io/managed-by": "mirrord",
                "mirrord.dev/copy-of": "api-7f9c-x2k4p",
                "mirrord.dev/session": "1-ab"}}),
            "no label a selector could match, no owner that would adopt or delete it"
        );
        assert_eq!(
            copy["spec"],
            json!({
                "initContainers": [{"name": "migrate", "image": "api:1"}],
                "containers": [{"name": "api", "image": "api:1", "env": [{"name": "GREETING", "value": "hello"}],
                    "volumeMounts": [{"name": "config", "mountPath": "/app/config"}]}],
                "volumes": [{"name": "config", "configMap": {"name": "api-config"}}]}),
        );
        assert!(copy.get("status").is_none());
    }
}
