//! The fully resolved configuration: every default applied, every shorthand expanded.
//!
//! This is what a session runs with. The CLI resolves once and hands the result to the intproxy,
//! the layer in every child process and the agent as JSON ([`ResolvedConfig::to_json`]), so no
//! other process ever reads a config file or environment overrides again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::file::{
    FileConfig, FsMode, ImagePullPolicy, IncomingMode, LinuxCapability, TARGET_PATH_PATTERN,
    Toleration,
};

mod resolve;

pub use resolve::resolve;

/// The agent image used when the config names none.
pub const DEFAULT_AGENT_IMAGE_REPOSITORY: &str = "ghcr.io/mirrord-rs/mirrord-agent";

/// Executables skipped when `skip_build_tools` is on (the same list as mirrord's).
pub const BUILD_TOOLS: &[&str] = &[
    "as",
    "cc",
    "ld",
    "go",
    "air",
    "asm",
    "cc1",
    "cgo",
    "dlv",
    "gcc",
    "git",
    "link",
    "math",
    "cargo",
    "hpack",
    "rustc",
    "compile",
    "collect2",
    "cargo-watch",
    "debugserver",
];

/// The resolved configuration of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedConfig {
    /// What to run against.
    pub target: Target,
    /// The target's namespace, when given.
    pub target_namespace: Option<String>,
    /// Accept invalid TLS certificates from the API server (`None`: as the kubeconfig says).
    pub accept_invalid_certificates: Option<bool>,
    /// Executable names the layer stays inactive in.
    pub skip_processes: Vec<String>,
    /// Whether build tools are skipped too.
    pub skip_build_tools: bool,
    /// Extra build tool names.
    pub skip_extra_build_tools: Vec<String>,
    /// Kubeconfig path, if given.
    pub kubeconfig: Option<String>,
    /// Kube context, if given.
    pub kube_context: Option<String>,
    /// Connect to an existing agent at this address instead of starting one.
    pub connect_tcp: Option<String>,
    /// The agent.
    pub agent: AgentConfig,
    /// The features.
    pub feature: FeatureConfig,
    /// The internal proxy.
    pub internal_proxy: InternalProxyConfig,
}

/// A resolved target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Target {
    /// No target: outgoing traffic and DNS from the cluster, no files or incoming traffic.
    Targetless,
    /// A Kubernetes resource.
    Kube {
        /// What kind of resource.
        resource: KubeResource,
        /// Its name.
        name: String,
        /// The container, if named.
        container: Option<String>,
    },
    /// A process on this machine.
    Pid {
        /// Its process ID.
        pid: u32,
    },
    /// A built-in sandbox pod.
    Sandbox {
        /// Its name.
        name: String,
    },
}

/// Kinds of Kubernetes targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KubeResource {
    /// A pod.
    Pod,
    /// A deployment (one of its ready pods).
    Deployment,
    /// An Argo rollout.
    Rollout,
    /// A statefulset.
    Statefulset,
    /// A replicaset.
    Replicaset,
    /// A job.
    Job,
    /// A cronjob.
    Cronjob,
    /// A service (one of the pods it selects).
    Service,
}

impl KubeResource {
    /// The word used in target paths.
    pub fn as_str(self) -> &'static str {
        match self {
            KubeResource::Pod => "pod",
            KubeResource::Deployment => "deployment",
            KubeResource::Rollout => "rollout",
            KubeResource::Statefulset => "statefulset",
            KubeResource::Replicaset => "replicaset",
            KubeResource::Job => "job",
            KubeResource::Cronjob => "cronjob",
            KubeResource::Service => "service",
        }
    }
}

impl Target {
    /// Parses a target path (see [`TARGET_PATH_PATTERN`]); `None` when it is not one.
    pub fn parse(path: &str) -> Option<Target> {
        static PATTERN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(TARGET_PATH_PATTERN).expect("valid pattern")
        });
        if !PATTERN.is_match(path) {
            return None;
        }
        let parts: Vec<&str> = path.split('/').collect();
        let target = match parts.as_slice() {
            ["targetless"] => Target::Targetless,
            ["pid", pid] => Target::Pid {
                pid: pid.parse().ok()?,
            },
            ["sandbox", name] => Target::Sandbox {
                name: (*name).to_owned(),
            },
            [kind, name, rest @ ..] => {
                let resource = match *kind {
                    "pod" | "podname" => KubeResource::Pod,
                    "deployment" => KubeResource::Deployment,
                    "rollout" => KubeResource::Rollout,
                    "statefulset" => KubeResource::Statefulset,
                    "replicaset" => KubeResource::Replicaset,
                    "job" => KubeResource::Job,
                    "cronjob" => KubeResource::Cronjob,
                    "service" => KubeResource::Service,
                    _ => return None,
                };
                let container = match rest {
                    [] => None,
                    ["container", container] => Some((*container).to_owned()),
                    _ => return None,
                };
                Target::Kube {
                    resource,
                    name: (*name).to_owned(),
                    container,
                }
            }
            _ => return None,
        };
        Some(target)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Targetless => formatter.write_str("targetless"),
            Target::Kube {
                resource,
                name,
                container: None,
            } => write!(formatter, "{}/{name}", resource.as_str()),
            Target::Kube {
                resource,
                name,
                container: Some(container),
            } => {
                write!(
                    formatter,
                    "{}/{name}/container/{container}",
                    resource.as_str()
                )
            }
            Target::Pid { pid } => write!(formatter, "pid/{pid}"),
            Target::Sandbox { name } => write!(formatter, "sandbox/{name}"),
        }
    }
}

/// The resolved agent settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentConfig {
    /// `RUST_LOG`-style filter.
    pub log_level: String,
    /// JSON logs.
    pub json_log: bool,
    /// Namespace for the agent Job, if not the target's.
    pub namespace: Option<String>,
    /// Full image reference.
    pub image: String,
    /// Pull policy.
    pub image_pull_policy: ImagePullPolicy,
    /// Pull secret names.
    pub image_pull_secrets: Vec<String>,
    /// Seconds the agent pod is kept after exiting.
    pub ttl: u16,
    /// Ephemeral container instead of a Job.
    pub ephemeral: bool,
    /// Seconds the agent lives with no client.
    pub communication_timeout: u16,
    /// Seconds to wait for the agent to start.
    pub startup_timeout: u64,
    /// Close existing connections when stealing starts.
    pub flush_connections: bool,
    /// Privileged container.
    pub privileged: bool,
    /// Capabilities withheld.
    pub disabled_capabilities: Vec<LinuxCapability>,
    /// Pod tolerations.
    pub tolerations: Vec<Toleration>,
    /// Resource requests (name → quantity).
    pub resource_requests: BTreeMap<String, String>,
    /// Resource limits (name → quantity).
    pub resource_limits: BTreeMap<String, String>,
    /// Node selector.
    pub node_selector: BTreeMap<String, String>,
    /// Extra labels.
    pub labels: BTreeMap<String, String>,
    /// Extra annotations.
    pub annotations: BTreeMap<String, String>,
    /// Service account.
    pub service_account: Option<String>,
    /// Network interface.
    pub network_interface: Option<String>,
    /// Seconds per DNS attempt.
    pub dns_timeout: u32,
    /// DNS attempts.
    pub dns_attempts: u32,
}

/// The resolved features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureConfig {
    /// Environment.
    pub env: EnvConfig,
    /// Files.
    pub fs: FsConfig,
    /// Network.
    pub network: NetworkConfig,
    /// `gethostname` returns the target's hostname.
    pub hostname: bool,
    /// Write crash reports.
    pub capture_error_trace: bool,
    /// Run against a copy of the target's pod.
    #[serde(default)]
    pub copy_target: CopyTargetConfig,
}

/// The resolved `feature.copy_target`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyTargetConfig {
    /// Copy the target's pod.
    pub enabled: bool,
    /// Scale the target's workload to zero for the session.
    pub scale_down: bool,
    /// Containers left out of the copy.
    pub exclude_containers: Vec<String>,
    /// Init containers left out of the copy.
    pub exclude_init_containers: Vec<String>,
}

/// The resolved environment feature.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvConfig {
    /// Load the target's environment at all.
    pub enabled: bool,
    /// Only these names (wildcards `*`, `?`); `None` means all.
    pub include: Option<Vec<String>>,
    /// Not these names (wildcards).
    pub exclude: Vec<String>,
    /// Set these locally.
    pub r#override: BTreeMap<String, String>,
    /// Remove these (case-insensitive).
    pub unset: Vec<String>,
    /// Read overrides from this file.
    pub env_file: Option<String>,
    /// Regex → replacement value.
    pub mapping: BTreeMap<String, String>,
}

/// The resolved file feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsConfig {
    /// Default mode.
    pub mode: FsMode,
    /// Remote read-write patterns.
    pub read_write: Vec<String>,
    /// Remote read-only patterns.
    pub read_only: Vec<String>,
    /// Local patterns.
    pub local: Vec<String>,
    /// Not-found patterns.
    pub not_found: Vec<String>,
    /// Path rewrites.
    pub mapping: BTreeMap<String, String>,
    /// Read buffer for read-only remote files.
    pub readonly_file_buffer: u64,
    /// Remote files of targets on this machine are passed as file descriptors.
    pub native_fds: bool,
}

impl Default for FsConfig {
    /// What a config without `feature.fs` resolves to: read mode, no patterns, no rewrites.
    fn default() -> Self {
        FsConfig {
            mode: FsMode::Read,
            read_write: Vec::new(),
            read_only: Vec::new(),
            local: Vec::new(),
            not_found: Vec::new(),
            mapping: BTreeMap::new(),
            readonly_file_buffer: 128_000,
            native_fds: true,
        }
    }
}

/// The resolved network feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// Incoming traffic.
    pub incoming: IncomingConfig,
    /// Outgoing traffic.
    pub outgoing: OutgoingConfig,
    /// DNS.
    pub dns: DnsConfig,
    /// IPv6 sockets.
    pub ipv6: bool,
}

/// The resolved incoming feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncomingConfig {
    /// Mode.
    pub mode: IncomingMode,
    /// HTTP filter for stealing, if any.
    pub http_filter: Option<HttpFilter>,
    /// Ports the HTTP filter applies to (`None`: all stolen ports).
    pub http_filter_ports: Option<Vec<u16>>,
    /// Local port → remote port.
    pub port_mapping: Vec<(u16, u16)>,
    /// Port → port really listened on locally.
    pub listen_ports: Vec<(u16, u16)>,
    /// Leave localhost-only listeners alone.
    pub ignore_localhost: bool,
    /// Ports left alone.
    pub ignore_ports: Vec<u16>,
    /// Only these ports (`None`: all).
    pub ports: Option<Vec<u16>>,
}

/// A resolved HTTP filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpFilter {
    /// A `Name: value` header line matches this regex.
    Header(String),
    /// The path matches this regex.
    Path(String),
    /// The method is this one.
    Method(String),
    /// Every filter matches.
    AllOf(Vec<HttpFilter>),
    /// At least one filter matches.
    AnyOf(Vec<HttpFilter>),
}

/// The resolved outgoing feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingConfig {
    /// TCP through the target.
    pub tcp: bool,
    /// UDP through the target.
    pub udp: bool,
    /// Localhost stays local.
    pub ignore_localhost: bool,
    /// Destination filter.
    pub filter: Option<ResolvedAddressFilter>,
    /// Unix socket path regexes connected remotely.
    pub unix_streams: Vec<String>,
}

/// A resolved `remote`/`local` filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResolvedAddressFilter {
    /// Only these go through the target.
    Remote(Vec<String>),
    /// These stay local.
    Local(Vec<String>),
}

/// The resolved DNS feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    /// Resolve through the target.
    pub enabled: bool,
    /// Name filter.
    pub filter: Option<ResolvedAddressFilter>,
}

/// The resolved internal proxy settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternalProxyConfig {
    /// Seconds to wait for the first layer.
    pub start_idle_timeout: u64,
    /// Seconds to linger after the last layer.
    pub idle_timeout: u64,
    /// Log filter.
    pub log_level: String,
    /// Log file or directory.
    pub log_destination: Option<String>,
    /// JSON logs.
    pub json_log: bool,
}

impl ResolvedConfig {
    /// Serializes for the environment of child processes.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("the resolved config always serializes")
    }

    /// Reads what [`ResolvedConfig::to_json`] wrote.
    pub fn from_json(text: &str) -> Result<ResolvedConfig, serde_json::Error> {
        serde_json::from_str(text)
    }
}

impl Default for ResolvedConfig {
    fn default() -> Self {
        resolve(&FileConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_target_paths() {
        assert_eq!(Target::parse("targetless"), Some(Target::Targetless));
        assert_eq!(Target::parse("pid/42"), Some(Target::Pid { pid: 42 }));
        assert_eq!(
            Target::parse("sandbox/demo"),
            Some(Target::Sandbox {
                name: "demo".into()
            })
        );
        assert_eq!(
            Target::parse("deployment/api/container/main"),
            Some(Target::Kube {
                resource: KubeResource::Deployment,
                name: "api".into(),
                container: Some("main".into())
            })
        );
        for bad in [
            "pod",
            "pod/",
            "pod/A",
            "pid/0",
            "pod/a/container",
            "cat/a",
            "pod/a/b/c",
        ] {
            assert_eq!(Target::parse(bad), None, "{bad}");
        }
        for good in [
            "pod/api-7f9c",
            "statefulset/db/container/pg",
            "cronjob/nightly",
            "service/web",
        ] {
            assert_eq!(Target::parse(good).unwrap().to_string(), good);
        }
    }

    #[test]
    fn defaults_match_mirrord() {
        let config = ResolvedConfig::default();
        assert_eq!(config.target, Target::Targetless);
        assert_eq!(config.feature.fs.mode, FsMode::Read);
        assert_eq!(config.feature.network.incoming.mode, IncomingMode::Mirror);
        assert!(config.feature.network.outgoing.tcp && config.feature.network.outgoing.udp);
        assert!(
            config.feature.network.dns.enabled
                && config.feature.env.enabled
                && config.feature.hostname
        );
        assert!(config.skip_build_tools);
        assert_eq!(config.agent.ttl, 1);
        assert_eq!(config.internal_proxy.idle_timeout, 5);
        assert_eq!(
            ResolvedConfig::from_json(&config.to_json()).unwrap(),
            config
        );
    }
}
