//! Letting the agent undo a copy session itself (see `restore.rs`): a ServiceAccount for the
//! agent's Job (unless `agent.service_account` names one) and a Role bound to it that allows
//! exactly what undoing needs — `get`/`patch` on the one scaled-down workload and `delete` on the
//! one copy pod (`resourceNames`) — created per session before the Job, then owned by the Job
//! ([`hand_copy_to_job`](crate::hand_copy_to_job)), so the garbage collector removes them with it.
//!
//! The Role lives in the target's namespace and its owner must too, so this is done only when the
//! agent's Job runs there (not with `agent.namespace` elsewhere, nor for an ephemeral agent, which
//! has no Job); otherwise, or when RBAC refuses, the session goes on and only the internal proxy
//! undoes it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use mirrord_config::resolved::AgentConfig;

use crate::client::Cluster;
use crate::copy::CopySession;
use crate::error::KubeError;
use crate::spec::SESSION_LABEL;

/// The name of the agent's ServiceAccount, Role and RoleBinding (the Job's own name).
pub fn undo_object_name(session_id: &str) -> String {
    format!("mirrord-agent-{session_id}")
}

fn metadata(copy: &CopySession, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(undo_object_name(&copy.session_id)),
        namespace: Some(namespace.to_owned()),
        labels: Some(BTreeMap::from([
            (SESSION_LABEL.to_owned(), copy.session_id.clone()),
            (
                "app.kubernetes.io/managed-by".to_owned(),
                "mirrord".to_owned(),
            ),
        ])),
        ..ObjectMeta::default()
    }
}

/// The Role: `delete` on the copy pod, `get`/`patch` on the scaled-down workload.
pub fn undo_role(copy: &CopySession) -> Role {
    let mut rules = vec![PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["pods".to_owned()]),
        resource_names: Some(vec![copy.copy_pod.clone()]),
        verbs: vec!["delete".to_owned()],
        non_resource_urls: None,
    }];
    if let Some(scaled) = &copy.scaled_down {
        rules.push(PolicyRule {
            api_groups: Some(vec!["apps".to_owned()]),
            resources: Some(vec![format!("{}s", scaled.kind)]),
            resource_names: Some(vec![scaled.name.clone()]),
            verbs: vec!["get".to_owned(), "patch".to_owned()],
            non_resource_urls: None,
        });
    }
    Role {
        metadata: metadata(copy, &copy.namespace),
        rules: Some(rules),
    }
}

/// The agent's service account: `agent.service_account`, else the session's own.
pub fn undo_service_account(agent: &AgentConfig, session_id: &str) -> String {
    agent
        .service_account
        .clone()
        .unwrap_or_else(|| undo_object_name(session_id))
}

/// Creates what lets the agent of `copy` undo it: the ServiceAccount (unless the config names
/// one), the Role and its RoleBinding. On failure, what was created is deleted again.
pub async fn grant_undo(
    cluster: &Cluster,
    agent: &AgentConfig,
    copy: &CopySession,
) -> Result<(), KubeError> {
    if agent.ephemeral {
        return Err(KubeError::Client(
            "an ephemeral agent has no Job to own its permissions".to_owned(),
        ));
    }
    let namespace = copy.namespace.as_str();
    if agent.namespace.as_deref().is_some_and(|ns| ns != namespace) {
        return Err(KubeError::Client(format!(
            "the agent runs in namespace `{}`, not the target's `{namespace}`",
            agent.namespace.as_deref().unwrap_or_default()
        )));
    }
    let client = cluster.client.clone();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let roles: Api<Role> = Api::namespaced(client.clone(), namespace);
    let bindings: Api<RoleBinding> = Api::namespaced(client, namespace);
    let params = PostParams::default();
    let own_account = agent.service_account.is_none();
    if own_account {
        let account = ServiceAccount {
            metadata: metadata(copy, namespace),
            ..ServiceAccount::default()
        };
        accounts
            .create(&params, &account)
            .await
            .map_err(|e| KubeError::from_api(e, "create", "serviceaccounts", Some(namespace)))?;
    }
    let binding = RoleBinding {
        metadata: metadata(copy, namespace),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "Role".to_owned(),
            name: undo_object_name(&copy.session_id),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: undo_service_account(agent, &copy.session_id),
            namespace: Some(namespace.to_owned()),
            api_group: None,
        }]),
    };
    let created = async {
        roles.create(&params, &undo_role(copy)).await.map_err(|e| {
            KubeError::from_api(
                e,
                "create",
                "roles.rbac.authorization.k8s.io",
                Some(namespace),
            )
        })?;
        bindings.create(&params, &binding).await.map_err(|e| {
            KubeError::from_api(
                e,
                "create",
                "rolebindings.rbac.authorization.k8s.io",
                Some(namespace),
            )
        })?;
        Ok(())
    }
    .await;
    if created.is_err() {
        revoke_undo(cluster, copy).await;
    }
    created
}

/// Deletes what [`grant_undo`] created (when the agent could not start); best effort.
pub async fn revoke_undo(cluster: &Cluster, copy: &CopySession) {
    let name = undo_object_name(&copy.session_id);
    let namespace = copy.namespace.as_str();
    let params = DeleteParams::background();
    let client = cluster.client.clone();
    let _ = Api::<RoleBinding>::namespaced(client.clone(), namespace)
        .delete(&name, &params)
        .await;
    let _ = Api::<Role>::namespaced(client.clone(), namespace)
        .delete(&name, &params)
        .await;
    let _ = Api::<ServiceAccount>::namespaced(client, namespace)
        .delete(&name, &params)
        .await;
}
