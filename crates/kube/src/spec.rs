//! The Kubernetes objects that run the agent: a Job pinned to the target's node (host PID
//! namespace, the capabilities the agent needs), or an ephemeral container in the target pod; for
//! a targetless session a Job whose pod is an ordinary pod of the namespace (its own network, no
//! host PID namespace, no added capabilities); and the Secret that carries the session token to
//! it, so the token never appears in a pod spec.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, EphemeralContainer,
    LocalObjectReference, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    PodSpec, PodTemplateSpec, ResourceRequirements, Secret, SecretKeySelector, SecurityContext,
    Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mirrord_config::file::LinuxCapability;
use mirrord_config::resolved::AgentConfig;

use crate::copy::CopySession;
use crate::resolve::ResolvedTarget;
use crate::undo::undo_service_account;

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
    /// A copy session the agent undoes itself when its session ends, having been granted the
    /// permissions for it (`grant_undo`): its Job runs as the service account they are bound to.
    pub undo: Option<&'a CopySession>,
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
        let mut args = Vec::new();
        if !self.target.is_targetless() {
            let container_id = self.target.bare_container_id().unwrap_or_default();
            args.extend(["--container-id".to_owned(), container_id.to_owned()]);
        }
        args.extend([
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
        ]);
        if self.agent.flush_connections {
            args.push("--flush-connections".to_owned());
        }
        if self.agent.json_log {
            args.push("--json-log".to_owned());
        }
        if let Some(copy) = self.undo {
            args.extend([
                "--copy-pod".to_owned(),
                format!("{}/{}", copy.namespace, copy.copy_pod),
                "--session-id".to_owned(),
                copy.session_id.clone(),
            ]);
            if let Some(scaled) = &copy.scaled_down {
                args.extend([
                    "--scaled-down".to_owned(),
                    format!("{}/{}", scaled.kind, scaled.name),
                ]);
            }
        }
        args
    }

    fn capabilities(&self) -> Vec<String> {
        AGENT_CAPABILITIES
            .iter()
            .filter(|c| !self.agent.disabled_capabilities.contains(c))
            .map(serde_name)
            .collect()
    }

    fn security_context(&self) -> SecurityContext {
        SecurityContext {
            run_as_user: Some(0),
            run_as_group: Some(0),
            capabilities: Some(Capabilities {
                add: Some(self.capabilities()),
                drop: None,
            }),
            privileged: self.agent.privileged.then_some(true),
            ..SecurityContext::default()
        }
    }

    fn token_env(&self) -> Vec<EnvVar> {
        vec![EnvVar {
            name: TOKEN_ENV.to_owned(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: self.secret_name(),
                    key: TOKEN_KEY.to_owned(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
        }]
    }

    fn resources(&self) -> ResourceRequirements {
        let quantities = |map: &BTreeMap<String, String>| {
            (!map.is_empty()).then(|| {
                map.iter()
                    .map(|(name, amount)| (name.clone(), Quantity(amount.clone())))
                    .collect()
            })
        };
        ResourceRequirements {
            requests: quantities(&self.agent.resource_requests),
            limits: quantities(&self.agent.resource_limits),
            ..ResourceRequirements::default()
        }
    }

    fn tolerations(&self) -> Vec<Toleration> {
        self.agent
            .tolerations
            .iter()
            .map(|t| Toleration {
                key: t.key.clone(),
                operator: t.operator.as_ref().map(serde_name),
                value: t.value.clone(),
                effect: t.effect.as_ref().map(serde_name),
                toleration_seconds: t.toleration_seconds,
            })
            .collect()
    }

    /// The agent Job: one pod on the target's node, in the host PID namespace (targetless: a pod
    /// of the namespace like any other, on any node), never restarted, removed `agent.ttl`
    /// seconds after it finished.
    pub fn job(&self) -> Job {
        let targetless = self.target.is_targetless();
        let mut pod_annotations: BTreeMap<String, String> = self.agent.annotations.clone();
        // Keep meshes from injecting a sidecar into the agent's pod.
        pod_annotations.insert("sidecar.istio.io/inject".to_owned(), "false".to_owned());
        pod_annotations.insert("linkerd.io/inject".to_owned(), "disabled".to_owned());
        let container = Container {
            name: AGENT_CONTAINER.to_owned(),
            image: Some(self.agent.image.clone()),
            image_pull_policy: Some(serde_name(&self.agent.image_pull_policy)),
            command: Some(vec!["mirrord-agent".to_owned()]),
            args: Some(self.args()),
            env: Some(self.token_env()),
            // Targetless: no namespace to enter, no rule to write; outgoing sockets and DNS are
            // the pod's own.
            security_context: (!targetless).then(|| self.security_context()),
            ports: Some(vec![ContainerPort {
                name: Some("agent".to_owned()),
                container_port: i32::from(self.port),
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            }]),
            resources: Some(self.resources()),
            ..Container::default()
        };
        // Pinned through the scheduler (not `nodeName`), so taints and resources still apply and
        // an unschedulable agent says why.
        let affinity = self.target.node_name.as_ref().map(|node| Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_fields: Some(vec![NodeSelectorRequirement {
                            key: "metadata.name".to_owned(),
                            operator: "In".to_owned(),
                            values: Some(vec![node.clone()]),
                        }]),
                        match_expressions: None,
                    }],
                }),
                ..NodeAffinity::default()
            }),
            ..Affinity::default()
        });
        let pod_spec = PodSpec {
            host_pid: (!targetless).then_some(true),
            restart_policy: Some("Never".to_owned()),
            termination_grace_period_seconds: Some(0),
            containers: vec![container],
            tolerations: Some(self.tolerations()),
            affinity,
            node_selector: (!self.agent.node_selector.is_empty())
                .then(|| self.agent.node_selector.clone()),
            image_pull_secrets: (!self.agent.image_pull_secrets.is_empty()).then(|| {
                self.agent
                    .image_pull_secrets
                    .iter()
                    .map(|name| LocalObjectReference { name: name.clone() })
                    .collect()
            }),
            // The agent needs API access only to undo a copy session; no token otherwise.
            service_account_name: match self.undo {
                Some(copy) => Some(undo_service_account(self.agent, &copy.session_id)),
                None => self.agent.service_account.clone(),
            },
            automount_service_account_token: (self.agent.service_account.is_none()
                && self.undo.is_none())
            .then_some(false),
            ..PodSpec::default()
        };
        Job {
            metadata: ObjectMeta {
                name: Some(self.name()),
                namespace: Some(self.job_namespace().to_owned()),
                labels: Some(self.labels()),
                annotations: (!self.agent.annotations.is_empty())
                    .then(|| self.agent.annotations.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(JobSpec {
                ttl_seconds_after_finished: Some(i32::from(self.agent.ttl)),
                backoff_limit: Some(0),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(self.labels()),
                        annotations: Some(pod_annotations),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(pod_spec),
                },
                ..JobSpec::default()
            }),
            status: None,
        }
    }

    /// The agent as an ephemeral container of the target pod, sharing the target container's
    /// process namespace.
    pub fn ephemeral_container(&self) -> EphemeralContainer {
        EphemeralContainer {
            name: self.name(),
            image: Some(self.agent.image.clone()),
            image_pull_policy: Some(serde_name(&self.agent.image_pull_policy)),
            command: Some(vec!["mirrord-agent".to_owned()]),
            args: Some(self.args()),
            env: Some(self.token_env()),
            security_context: Some(self.security_context()),
            target_container_name: Some(self.target.container_name.clone()),
            ..EphemeralContainer::default()
        }
    }

    /// The Secret holding the session token, in `namespace` (the Job's, or the target pod's for an
    /// ephemeral agent).
    pub fn secret(&self, namespace: &str, token: &str) -> Secret {
        let mut labels = self.labels();
        labels.remove(AGENT_LABEL);
        Secret {
            metadata: ObjectMeta {
                name: Some(self.secret_name()),
                namespace: Some(namespace.to_owned()),
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(BTreeMap::from([(
                TOKEN_KEY.to_owned(),
                ByteString(token.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        }
    }
}

/// The name a config enum serializes to (`NET_ADMIN`, `IfNotPresent`, `NoSchedule`), which is
/// the spelling Kubernetes uses.
fn serde_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
