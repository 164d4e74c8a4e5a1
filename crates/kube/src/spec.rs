//! The Kubernetes objects that run the agent: a Job pinned to the target's node (host PID
//! namespace, the capabilities the agent needs), or an ephemeral container in the target pod; and
//! the Secret that carries the session token to it, so the token never appears in a pod spec.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EphemeralContainer, Secret};
use mirrord_config::file::LinuxCapability;
use mirrord_config::resolved::AgentConfig;
use serde_json::{Value, json};

use crate::resolve::ResolvedTarget;

/// Label on every agent pod and Job; target listings exclude objects that have it.
pub const AGENT_LABEL: &str = "mirrord.dev/agent";
/// Label naming the session an agent belongs to.
pub const SESSION_LABEL: &str = "mirrord.dev/session";
/// The agent container's name in a Job.
pub const AGENT_CONTAINER: &str = "mirrord-agent";
/// The key of the token in the agent's Secret.
pub const TOKEN_KEY: &str = "token";
/// The environment variable the agent reads its token from.
pub const TOKEN_ENV: &str = "MIRRORD_AGENT_TOKEN";

/// The capabilities the agent needs: enter namespaces, read the target's memory maps and root,
/// raw sockets, and redirect rules.
pub const AGENT_CAPABILITIES: [LinuxCapability; 4] = [
    LinuxCapability::NetAdmin,
    LinuxCapability::SysPtrace,
    LinuxCapability::SysAdmin,
    LinuxCapability::NetRaw,
];

/// Everything the agent's objects are made from.
#[derive(Debug, Clone)]
pub struct AgentSpec<'a> {
    /// `agent.*` of the config.
    pub agent: &'a AgentConfig,
    /// The pod and container to work on.
    pub target: &'a ResolvedTarget,
    /// A short lowercase id naming this session's objects.
    pub session_id: &'a str,
    /// The port the agent listens on inside its pod.
    pub port: u16,
}

impl AgentSpec<'_> {
    /// The Job's (and ephemeral container's) name.
    pub fn name(&self) -> String {
        format!("mirrord-agent-{}", self.session_id)
    }

    /// The token Secret's name.
    pub fn secret_name(&self) -> String {
        format!("mirrord-agent-{}-token", self.session_id)
    }

    /// The namespace of the Job and Secret: `agent.namespace`, else the target's.
    pub fn job_namespace(&self) -> &str {
        self.agent
            .namespace
            .as_deref()
            .unwrap_or(&self.target.namespace)
    }

    fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.agent.labels.clone();
        labels.insert(
            "app.kubernetes.io/name".to_owned(),
            "mirrord-agent".to_owned(),
        );
        labels.insert(
            "app.kubernetes.io/managed-by".to_owned(),
            "mirrord".to_owned(),
        );
        labels.insert(AGENT_LABEL.to_owned(), "true".to_owned());
        labels.insert(SESSION_LABEL.to_owned(), self.session_id.to_owned());
        labels
    }

    /// The agent's command line (the token comes from the environment).
    fn args(&self) -> Vec<String> {
        let container_id = self.target.bare_container_id().unwrap_or_default();
        let mut args = vec![
            "--container-id".to_owned(),
            container_id.to_owned(),
            "--listen".to_owned(),
            format!("0.0.0.0:{}", self.port),
            "--communication-timeout".to_owned(),
            self.agent.communication_timeout.to_string(),
            "--dns-timeout".to_owned(),
            self.agent.dns_timeout.to_string(),
            "--dns-attempts".to_owned(),
            self.agent.dns_attempts.to_string(),
            "--log-level".to_owned(),
            self.agent.log_level.clone(),
        ];
        if self.agent.flush_connections {
            args.push("--flush-connections".to_owned());
        }
        args
    }

    fn capabilities(&self) -> Vec<String> {
        AGENT_CAPABILITIES
            .iter()
            .filter(|c| !self.agent.disabled_capabilities.contains(c))
            .map(|c| {
                serde_json::to_value(c)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            })
            .collect()
    }

    fn security_context(&self) -> Value {
        let mut context = json!({
            "runAsUser": 0,
            "runAsGroup": 0,
            "capabilities": {"add": self.capabilities()},
        });
        if self.agent.privileged {
            context["privileged"] = json!(true);
        }
        context
    }

    fn token_env(&self) -> Value {
        json!([{
            "name": TOKEN_ENV,
            "valueFrom": {"secretKeyRef": {"name": self.secret_name(), "key": TOKEN_KEY}},
        }])
    }

    /// The agent Job: one pod on the target's node, in the host PID namespace, never restarted,
    /// removed `agent.ttl` seconds after it finished.
    pub fn job(&self) -> Job {
        let mut pod_annotations: BTreeMap<String, String> = self.agent.annotations.clone();
        // Keep meshes from injecting a sidecar into the agent's pod.
        pod_annotations.insert("sidecar.istio.io/inject".to_owned(), "false".to_owned());
        pod_annotations.insert("linkerd.io/inject".to_owned(), "disabled".to_owned());
        let mut container = json!({
            "name": AGENT_CONTAINER,
            "image": self.agent.image,
            "imagePullPolicy": self.agent.image_pull_policy,
            "command": ["mirrord-agent"],
            "args": self.args(),
            "env": self.token_env(),
            "securityContext": self.security_context(),
            "ports": [{"name": "agent", "containerPort": self.port, "protocol": "TCP"}],
        });
        let mut resources = json!({});
        if !self.agent.resource_requests.is_empty() {
            resources["requests"] = json!(self.agent.resource_requests);
        }
        if !self.agent.resource_limits.is_empty() {
            resources["limits"] = json!(self.agent.resource_limits);
        }
        container["resources"] = resources;
        let mut pod_spec = json!({
            "hostPID": true,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [container],
            "tolerations": self.agent.tolerations,
        });
        if let Some(node) = &self.target.node_name {
            // Pinned through the scheduler (not `nodeName`), so taints and resources still apply
            // and an unschedulable agent says why.
            pod_spec["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}],
            }}});
        }
        if !self.agent.node_selector.is_empty() {
            pod_spec["nodeSelector"] = json!(self.agent.node_selector);
        }
        if !self.agent.image_pull_secrets.is_empty() {
            pod_spec["imagePullSecrets"] = json!(
                self.agent
                    .image_pull_secrets
                    .iter()
                    .map(|name| json!({"name": name}))
                    .collect::<Vec<_>>()
            );
        }
        match &self.agent.service_account {
            Some(account) => pod_spec["serviceAccountName"] = json!(account),
            None => pod_spec["automountServiceAccountToken"] = json!(false),
        }
        let mut metadata = json!({
            "name": self.name(),
            "namespace": self.job_namespace(),
            "labels": self.labels(),
        });
        if !self.agent.annotations.is_empty() {
            metadata["annotations"] = json!(self.agent.annotations);
        }
        let job = json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": metadata,
            "spec": {
                "ttlSecondsAfterFinished": self.agent.ttl,
                "backoffLimit": 0,
                "template": {
                    "metadata": {"labels": self.labels(), "annotations": pod_annotations},
                    "spec": pod_spec,
                },
            },
        });
        serde_json::from_value(job).expect("the agent Job is a valid Job")
    }

    /// The agent as an ephemeral container of the target pod, sharing the target container's
    /// process namespace.
    pub fn ephemeral_container(&self) -> EphemeralContainer {
        let container = json!({
            "name": self.name(),
            "image": self.agent.image,
            "imagePullPolicy": self.agent.image_pull_policy,
            "command": ["mirrord-agent"],
            "args": self.args(),
            "env": self.token_env(),
            "securityContext": self.security_context(),
            "targetContainerName": self.target.container_name,
        });
        serde_json::from_value(container)
            .expect("the agent container is a valid EphemeralContainer")
    }

    /// The Secret holding the session token, in `namespace` (the Job's, or the target pod's for an
    /// ephemeral agent).
    pub fn secret(&self, namespace: &str, token: &str) -> Secret {
        let mut labels = self.labels();
        labels.remove(AGENT_LABEL);
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": self.secret_name(), "namespace": namespace, "labels": labels},
            "type": "Opaque",
        });
        let mut secret: Secret = serde_json::from_value(secret).expect("a valid Secret");
        secret.data = Some(BTreeMap::from([(
            TOKEN_KEY.to_owned(),
            ByteString(token.as_bytes().to_vec()),
        )]));
        secret
    }
}
