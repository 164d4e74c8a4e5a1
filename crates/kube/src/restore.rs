//! Undoing `copy_target` on the cluster: the scaled-down workload's replicas put back and the copy
//! pod deleted. Two parties do it, whichever comes first, so every step is idempotent and never
//! fights a user: the session's internal proxy (`mirrord_kube::end_copy`) and the agent itself
//! (`mirrord-agent --copy-pod …`, which includes this file by path: it depends on kube-rs but not
//! on this crate), which restores even when every mirrord process on the user's machine was
//! killed.
//!
//! The replicas are restored only while the workload is still at zero and still carries the
//! annotation of *this* session ([`SCALED_DOWN_BY_ANNOTATION`]); the patch carries the
//! `resourceVersion` it was decided on, so a change in between (the other party, a user's
//! `kubectl scale`) makes it a conflict, and the decision is made again on the new state.

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::json;

/// Annotation on a scaled-down workload: the replica count to restore.
pub const SCALED_DOWN_ANNOTATION: &str = "mirrord.dev/scaled-down-from";
/// Annotation on a scaled-down workload: the session that scaled it down (and may restore it).
pub const SCALED_DOWN_BY_ANNOTATION: &str = "mirrord.dev/scaled-down-by";

/// How many times a restore is decided again after a conflicting change.
const ATTEMPTS: usize = 3;

/// What restoring a workload's replicas did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// Set back to this many replicas.
    Replicas(i32),
    /// Left as it is, for this reason (already restored, or changed by someone else).
    LeftAlone(String),
}

/// The API resource of a scalable workload kind (`deployment`, `statefulset`).
pub(crate) fn workload_resource(kind: &str) -> Option<ApiResource> {
    let (kind, plural) = match kind {
        "deployment" => ("Deployment", "deployments"),
        "statefulset" => ("StatefulSet", "statefulsets"),
        _ => return None,
    };
    Some(ApiResource {
        group: "apps".to_owned(),
        version: "v1".to_owned(),
        api_version: "apps/v1".to_owned(),
        kind: kind.to_owned(),
        plural: plural.to_owned(),
    })
}

/// The merge patch that restores `object` for session `session_id`, or why it is left alone.
pub fn restore_patch(
    object: &DynamicObject,
    session_id: &str,
) -> Result<serde_json::Value, String> {
    let annotations = object.metadata.annotations.clone().unwrap_or_default();
    let Some(by) = annotations.get(SCALED_DOWN_BY_ANNOTATION) else {
        return Err("not scaled down by mirrord (already restored)".to_owned());
    };
    if by != session_id {
        return Err(format!("scaled down by another session ({by})"));
    }
    let replicas = object
        .data
        .pointer("/spec/replicas")
        .and_then(serde_json::Value::as_i64);
    if replicas != Some(0) {
        return Err(format!(
            "its replicas were changed to {} since the session scaled it down",
            replicas.map_or_else(|| "the default".to_owned(), |r| r.to_string())
        ));
    }
    let Some(restore) = annotations
        .get(SCALED_DOWN_ANNOTATION)
        .and_then(|value| value.parse::<i32>().ok())
    else {
        return Err(format!("no replica count in {SCALED_DOWN_ANNOTATION}"));
    };
    Ok(json!({
        "metadata": {
            "resourceVersion": object.metadata.resource_version,
            "annotations": {SCALED_DOWN_ANNOTATION: null, SCALED_DOWN_BY_ANNOTATION: null},
        },
        "spec": {"replicas": restore},
    }))
}

/// Restores the replicas of workload `kind`/`name` that session `session_id` scaled down.
pub async fn restore_replicas(
    client: &kube::Client,
    namespace: &str,
    kind: &str,
    name: &str,
    session_id: &str,
) -> Result<Restored, kube::Error> {
    let Some(resource) = workload_resource(kind) else {
        return Ok(Restored::LeftAlone(format!("{kind} is not scalable")));
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some(object) = api.get_opt(name).await? else {
            return Ok(Restored::LeftAlone("it no longer exists".to_owned()));
        };
        let patch = match restore_patch(&object, session_id) {
            Ok(patch) => patch,
            Err(why) => return Ok(Restored::LeftAlone(why)),
        };
        let replicas = patch["spec"]["replicas"].as_i64().unwrap_or_default();
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(Restored::Replicas(i32::try_from(replicas).unwrap_or(1))),
            Err(kube::Error::Api(status)) if status.code == 409 && attempt < ATTEMPTS => {}
            Err(error) => return Err(error),
        }
    }
}

/// Deletes the copy pod; `false` when it was already gone.
pub(crate) async fn delete_copy(
    client: &kube::Client,
    namespace: &str,
    pod: &str,
) -> Result<bool, kube::Error> {
    let resource = ApiResource {
        group: String::new(),
        version: "v1".to_owned(),
        api_version: "v1".to_owned(),
        kind: "Pod".to_owned(),
        plural: "pods".to_owned(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    match api.delete(pod, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(error) => Err(error),
    }
}
