//! `agent`: how the agent (the helper in the target's namespaces) is started and behaves.

use std::collections::BTreeMap;

#[cfg(feature = "files")]
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Unsupported;

/// The agent: a short-lived helper that runs in the target's namespaces (a Kubernetes Job or
/// ephemeral container, or a local child process for `pid/…` and `sandbox/…` targets) and does
/// the file, environment, DNS and network work for the local process.
///
/// Example: `{ "log_level": "debug", "ttl": 30, "namespace": "mirrord" }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentFileConfig {
    /// The agent's log filter, in `RUST_LOG` syntax.
    ///
    /// Default: `"info"`. Example: `"mirrord=debug,warn"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,

    /// Write the agent's logs as JSON lines instead of human-friendly text.
    ///
    /// Default: `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_log: Option<bool>,

    /// Kubernetes namespace the agent Job is created in (ignored for ephemeral agents).
    ///
    /// Default: the target's namespace. Example: `"mirrord"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// The agent's container image: a full reference, or `{ "registry": …, "tag": … }`.
    ///
    /// Default: this release's agent image. Example: `"registry.internal/mirrord-agent:0.1.0"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<AgentImage>,

    /// When Kubernetes pulls the agent image.
    ///
    /// Default: `"IfNotPresent"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Secrets for pulling the agent image, as `[{ "name": "SECRET" }]`.
    ///
    /// Default: none. Example: `[{ "name": "regcred" }]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<ImagePullSecret>>,

    /// Seconds the agent's pod is kept after the agent exits (the Job's
    /// `ttlSecondsAfterFinished`); useful to collect logs.
    ///
    /// Default: `1`. Example: `30`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u16>,

    /// Run the agent as an ephemeral container in the target pod instead of a Job on its node.
    ///
    /// Default: `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<bool>,

    /// Seconds the agent stays alive with no client connected; each connection keeps it alive
    /// with heartbeats.
    ///
    /// Default: `30`. Example: `60`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communication_timeout: Option<u16>,

    /// Seconds to wait for the agent to start before giving up.
    ///
    /// Default: `60`. Example: `120`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_timeout: Option<u64>,

    /// Close connections that already exist when stealing starts, so that clients reconnect
    /// through the redirect.
    ///
    /// Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush_connections: Option<bool>,

    /// Run the agent container as privileged (needed on some hardened nodes, e.g. Bottlerocket).
    ///
    /// Default: `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,

    /// Linux capabilities to withhold from the agent; it normally gets `NET_ADMIN`,
    /// `SYS_PTRACE`, `SYS_ADMIN` and `NET_RAW`.
    ///
    /// Default: `[]`. Example: `["NET_RAW"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_capabilities: Option<Vec<LinuxCapability>>,

    /// Tolerations of the agent's pod, in Kubernetes' format. An empty list means none.
    ///
    /// Default: `[{ "operator": "Exists" }]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,

    /// Resource requests and limits of the agent's container, in Kubernetes' format.
    ///
    /// Default: requests `cpu: 1m`, `memory: 1Mi`; limits `cpu: 100m`, `memory: 100Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<AgentResources>,

    /// Node selector of a targetless agent's pod (a targeted agent runs on its target's node).
    ///
    /// Default: none. Example: `{ "kubernetes.io/hostname": "node1" }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// Extra labels on the agent's Job and pod.
    ///
    /// Default: none. Example: `{ "team": "payments" }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,

    /// Extra annotations on the agent's Job and pod.
    ///
    /// Default: none. Example: `{ "prometheus.io/scrape": "false" }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,

    /// Service account of the agent's pod.
    ///
    /// Default: the namespace's default. Example: `"mirrord-agent"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,

    /// mirrord's interface for sniffing mirrored traffic. Not needed here: mirroring works by
    /// redirecting the target's connections inside its network namespace, on every interface, so
    /// there is no interface to choose; loading a config that sets it warns so.
    ///
    /// Default: none. Example: `"eth1"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(extend("x-mirrord-unsupported" = true)))]
    pub network_interface: Option<String>,

    /// How the agent resolves names for the local process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<AgentDnsConfig>,

    /// Deprecated: pausing the target is not supported; ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(extend("deprecated" = true, "deprecationMessage" = "`agent.pause` is not supported and is ignored")))]
    pub pause: Option<bool>,

    /// mirrord's check for room on the node. Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_out_of_pods: Option<Unsupported>,

    /// mirrord's iptables clean-up switch. Not needed here (rules never outlive the agent);
    /// ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_iptables_on_start: Option<Unsupported>,

    /// mirrord's mesh sidecar injection switch. Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_mesh_sidecar_injection: Option<Unsupported>,

    /// mirrord's mesh exclusion switch. Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_from_mesh: Option<Unsupported>,

    /// mirrord's response-header injection. Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inject_headers: Option<Unsupported>,

    /// mirrord's HTTP body buffer size. Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_buffer_size: Option<Unsupported>,

    /// mirrord's HTTP body buffer timeout. Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_buffer_timeout: Option<Unsupported>,

    /// mirrord's agent metrics endpoint. Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Unsupported>,

    /// mirrord's iptables backend choice. Not needed here (nftables first, iptables fallback);
    /// ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nftables: Option<Unsupported>,

    /// mirrord's agent priority class. Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class: Option<Unsupported>,

    /// mirrord's agent security context. Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<Unsupported>,
}

/// The agent image: a full reference or its registry and tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(untagged)]
pub enum AgentImage {
    /// A full image reference, e.g. `"registry.internal/mirrord-agent:0.1.0"`.
    Reference(String),
    /// Registry and tag, e.g. `{ "registry": "registry.internal/mirrord-agent", "tag": "0.1.0" }`.
    Parts(AgentImageParts),
}

/// The agent image as registry and tag.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentImageParts {
    /// Image repository. Default: this release's agent repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Image tag. Default: this release's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// Kubernetes image pull policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
pub enum ImagePullPolicy {
    /// Always pull the image.
    Always,
    /// Pull the image only when the node does not have it.
    IfNotPresent,
    /// Never pull; the node must have the image.
    Never,
}

/// An image pull secret reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ImagePullSecret {
    /// Name of a Secret of type `kubernetes.io/dockerconfigjson` in the agent's namespace.
    pub name: String,
}

/// A Linux capability the agent may be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LinuxCapability {
    /// Needed to enter the target's namespaces.
    SysAdmin,
    /// Needed to read the target's root and environment.
    SysPtrace,
    /// Needed for raw sockets.
    NetRaw,
    /// Needed to install traffic redirection rules.
    NetAdmin,
}

/// A Kubernetes toleration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Toleration {
    /// The taint key to tolerate; empty with `Exists` tolerates every taint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `Exists` or `Equal`. Default: `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<TolerationOperator>,
    /// The taint value, for `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The taint effect: `NoSchedule`, `PreferNoSchedule` or `NoExecute`; empty matches all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
    /// For `NoExecute`: seconds the pod stays bound after the taint appears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

/// How a toleration matches a taint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
pub enum TolerationOperator {
    /// Tolerates any value of the key.
    Exists,
    /// Tolerates the given value only.
    Equal,
}

/// A taint effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
pub enum TaintEffect {
    /// Do not schedule new pods.
    NoSchedule,
    /// Avoid scheduling new pods.
    PreferNoSchedule,
    /// Evict running pods.
    NoExecute,
}

/// Resource requests and limits, in Kubernetes' format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentResources {
    /// Requested resources, e.g. `{ "cpu": "10m", "memory": "16Mi" }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<BTreeMap<String, Quantity>>,
    /// Resource limits, e.g. `{ "cpu": "200m", "memory": "128Mi" }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<BTreeMap<String, Quantity>>,
}

/// A Kubernetes resource quantity: `"100m"`, `"64Mi"` or a number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(untagged)]
pub enum Quantity {
    /// A quantity string such as `"100m"`.
    Text(String),
    /// A plain number such as `1`.
    Number(f64),
}

/// How the agent resolves names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentDnsConfig {
    /// Seconds to wait for one DNS answer.
    ///
    /// Default: `1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    /// How many times to ask before failing.
    ///
    /// Default: `1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
}
