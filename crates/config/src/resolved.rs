//! The fully resolved configuration: every default applied, every shorthand expanded.
//!
//! This is what a session runs with. The CLI resolves once and hands the result to the intproxy,
//! the layer in every child process and the agent as JSON ([`ResolvedConfig::to_json`]), so no
//! other process ever reads a config file or environment overrides again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::file::{
    self, AddressFilter, AgentImage, DnsField, EnvField, FileConfig, FsField, FsMode,
    ImagePullPolicy, IncomingField, IncomingMode, InnerHttpFilter, LinuxCapability, NetworkField,
    OutgoingField, StringOrList, TARGET_PATH_PATTERN, Toleration, TolerationOperator,
};

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

/// Applies every default and expands every shorthand. `file` must have passed validation (an
/// unparsable target path resolves to `targetless`).
pub fn resolve(file: &FileConfig) -> ResolvedConfig {
    let (target, target_namespace) = match &file.target {
        None => (Target::Targetless, None),
        Some(file::TargetField::Path(path)) => {
            (Target::parse(&path.0).unwrap_or(Target::Targetless), None)
        }
        Some(file::TargetField::Object(object)) => (
            object
                .path
                .as_ref()
                .and_then(|path| Target::parse(&path.0))
                .unwrap_or(Target::Targetless),
            object.namespace.clone(),
        ),
    };
    let list =
        |value: &Option<StringOrList>| value.as_ref().map(StringOrList::to_vec).unwrap_or_default();
    ResolvedConfig {
        target,
        target_namespace,
        accept_invalid_certificates: file.accept_invalid_certificates,
        skip_processes: list(&file.skip_processes),
        skip_build_tools: file.skip_build_tools.unwrap_or(true),
        skip_extra_build_tools: list(&file.skip_extra_build_tools),
        kubeconfig: file.kubeconfig.clone(),
        kube_context: file.kube_context.clone(),
        connect_tcp: file.connect_tcp.clone(),
        agent: resolve_agent(file.agent.as_ref()),
        feature: resolve_feature(file.feature.as_ref()),
        internal_proxy: resolve_internal_proxy(file.internal_proxy.as_ref()),
    }
}

fn resolve_agent(agent: Option<&file::AgentFileConfig>) -> AgentConfig {
    let default = file::AgentFileConfig::default();
    let agent = agent.unwrap_or(&default);
    let version = env!("CARGO_PKG_VERSION");
    let image = match &agent.image {
        None => format!("{DEFAULT_AGENT_IMAGE_REPOSITORY}:{version}"),
        Some(AgentImage::Reference(reference)) => reference.clone(),
        Some(AgentImage::Parts(parts)) => format!(
            "{}:{}",
            parts
                .registry
                .as_deref()
                .unwrap_or(DEFAULT_AGENT_IMAGE_REPOSITORY),
            parts.tag.as_deref().unwrap_or(version)
        ),
    };
    let quantities = |map: Option<&BTreeMap<String, file::Quantity>>,
                      defaults: [(&str, &str); 2]|
     -> BTreeMap<String, String> {
        match map {
            None => defaults
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            Some(map) => map
                .iter()
                .map(|(name, quantity)| {
                    let text = match quantity {
                        file::Quantity::Text(text) => text.clone(),
                        file::Quantity::Number(number) => number.to_string(),
                    };
                    (name.clone(), text)
                })
                .collect(),
        }
    };
    let resources = agent.resources.clone().unwrap_or_default();
    AgentConfig {
        log_level: agent.log_level.clone().unwrap_or_else(|| "info".to_owned()),
        json_log: agent.json_log.unwrap_or(false),
        namespace: agent.namespace.clone(),
        image,
        image_pull_policy: agent
            .image_pull_policy
            .unwrap_or(ImagePullPolicy::IfNotPresent),
        image_pull_secrets: agent
            .image_pull_secrets
            .iter()
            .flatten()
            .map(|secret| secret.name.clone())
            .collect(),
        ttl: agent.ttl.unwrap_or(1),
        ephemeral: agent.ephemeral.unwrap_or(false),
        communication_timeout: agent.communication_timeout.unwrap_or(30),
        startup_timeout: agent.startup_timeout.unwrap_or(60),
        flush_connections: agent.flush_connections.unwrap_or(true),
        privileged: agent.privileged.unwrap_or(false),
        disabled_capabilities: agent.disabled_capabilities.clone().unwrap_or_default(),
        tolerations: agent.tolerations.clone().unwrap_or_else(|| {
            vec![Toleration {
                operator: Some(TolerationOperator::Exists),
                ..Toleration::default()
            }]
        }),
        resource_requests: quantities(
            resources.requests.as_ref(),
            [("cpu", "1m"), ("memory", "1Mi")],
        ),
        resource_limits: quantities(
            resources.limits.as_ref(),
            [("cpu", "100m"), ("memory", "100Mi")],
        ),
        node_selector: agent.node_selector.clone().unwrap_or_default(),
        labels: agent.labels.clone().unwrap_or_default(),
        annotations: agent.annotations.clone().unwrap_or_default(),
        service_account: agent.service_account.clone(),
        network_interface: agent.network_interface.clone(),
        dns_timeout: agent.dns.as_ref().and_then(|dns| dns.timeout).unwrap_or(1),
        dns_attempts: agent.dns.as_ref().and_then(|dns| dns.attempts).unwrap_or(1),
    }
}

fn resolve_feature(feature: Option<&file::FeatureFileConfig>) -> FeatureConfig {
    let default = file::FeatureFileConfig::default();
    let feature = feature.unwrap_or(&default);
    FeatureConfig {
        env: resolve_env(feature.env.as_ref()),
        fs: resolve_fs(feature.fs.as_ref()),
        network: resolve_network(feature.network.as_ref()),
        hostname: feature.hostname.unwrap_or(true),
        capture_error_trace: feature.capture_error_trace.unwrap_or(false),
        copy_target: resolve_copy_target(feature.copy_target.as_ref()),
    }
}

fn resolve_copy_target(copy: Option<&file::CopyTargetField>) -> CopyTargetConfig {
    match copy {
        None => CopyTargetConfig::default(),
        Some(file::CopyTargetField::Enabled(enabled)) => CopyTargetConfig {
            enabled: *enabled,
            ..CopyTargetConfig::default()
        },
        Some(file::CopyTargetField::Detailed(detailed)) => CopyTargetConfig {
            enabled: detailed.enabled.unwrap_or(true),
            scale_down: detailed.scale_down.unwrap_or(false),
            exclude_containers: detailed.exclude_containers.clone().unwrap_or_default(),
            exclude_init_containers: detailed.exclude_init_containers.clone().unwrap_or_default(),
        },
    }
}

fn resolve_env(env: Option<&EnvField>) -> EnvConfig {
    match env {
        None | Some(EnvField::Enabled(true)) => EnvConfig {
            enabled: true,
            ..EnvConfig::default()
        },
        Some(EnvField::Enabled(false)) => EnvConfig {
            enabled: false,
            ..EnvConfig::default()
        },
        Some(EnvField::Detailed(env)) => EnvConfig {
            enabled: true,
            include: env.include.as_ref().map(StringOrList::split_semicolons),
            exclude: env
                .exclude
                .as_ref()
                .map(StringOrList::split_semicolons)
                .unwrap_or_default(),
            r#override: env.r#override.clone().unwrap_or_default(),
            unset: env
                .unset
                .as_ref()
                .map(StringOrList::split_semicolons)
                .unwrap_or_default(),
            env_file: env.env_file.clone(),
            mapping: env.mapping.clone().unwrap_or_default(),
        },
    }
}

fn resolve_fs(fs: Option<&FsField>) -> FsConfig {
    let mut config = FsConfig {
        mode: FsMode::Read,
        read_write: Vec::new(),
        read_only: Vec::new(),
        local: Vec::new(),
        not_found: Vec::new(),
        mapping: BTreeMap::new(),
        readonly_file_buffer: 128_000,
        native_fds: true,
    };
    match fs {
        None | Some(FsField::Enabled(true)) => {}
        Some(FsField::Enabled(false)) => config.mode = FsMode::Local,
        Some(FsField::Mode(mode)) => config.mode = *mode,
        Some(FsField::Detailed(fs)) => {
            let list = |value: &Option<StringOrList>| {
                value.as_ref().map(StringOrList::to_vec).unwrap_or_default()
            };
            config.mode = fs.mode.unwrap_or(FsMode::Read);
            config.read_write = list(&fs.read_write);
            config.read_write.extend(list(&fs.include));
            config.read_only = list(&fs.read_only);
            config.local = list(&fs.local);
            config.local.extend(list(&fs.exclude));
            config.not_found = list(&fs.not_found);
            config.mapping = fs.mapping.clone().unwrap_or_default();
            config.readonly_file_buffer = fs.readonly_file_buffer.unwrap_or(128_000);
            config.native_fds = fs.native_fds.unwrap_or(true);
        }
    }
    config
}

fn resolve_network(network: Option<&NetworkField>) -> NetworkConfig {
    let default = file::NetworkFileConfig::default();
    let (network, all_off) = match network {
        None | Some(NetworkField::Enabled(true)) => (&default, false),
        Some(NetworkField::Enabled(false)) => (&default, true),
        Some(NetworkField::Detailed(network)) => (network, false),
    };
    let mut incoming = resolve_incoming(network.incoming.as_ref());
    let mut outgoing = resolve_outgoing(network.outgoing.as_ref());
    let mut dns = match &network.dns {
        None | Some(DnsField::Enabled(true)) => DnsConfig {
            enabled: true,
            filter: None,
        },
        Some(DnsField::Enabled(false)) => DnsConfig {
            enabled: false,
            filter: None,
        },
        Some(DnsField::Detailed(dns)) => DnsConfig {
            enabled: dns.enabled.unwrap_or(true),
            filter: dns.filter.as_ref().map(resolve_address_filter),
        },
    };
    if all_off {
        incoming.mode = IncomingMode::Off;
        outgoing.tcp = false;
        outgoing.udp = false;
        dns.enabled = false;
    }
    NetworkConfig {
        incoming,
        outgoing,
        dns,
        ipv6: network.ipv6.unwrap_or(false),
    }
}

fn resolve_incoming(incoming: Option<&IncomingField>) -> IncomingConfig {
    let mut config = IncomingConfig {
        mode: IncomingMode::Mirror,
        http_filter: None,
        http_filter_ports: None,
        port_mapping: Vec::new(),
        listen_ports: Vec::new(),
        ignore_localhost: false,
        ignore_ports: Vec::new(),
        ports: None,
    };
    match incoming {
        None | Some(IncomingField::Enabled(true)) => {}
        Some(IncomingField::Enabled(false)) => config.mode = IncomingMode::Off,
        Some(IncomingField::Mode(mode)) => config.mode = *mode,
        Some(IncomingField::Detailed(incoming)) => {
            config.mode = incoming.mode.unwrap_or(IncomingMode::Mirror);
            if let Some(filter) = &incoming.http_filter {
                config.http_filter = resolve_http_filter(filter);
                config.http_filter_ports = filter.ports.clone();
            } else if let Some(old) = &incoming.http_header_filter {
                config.http_filter = old.filter.clone().map(HttpFilter::Header);
                config.http_filter_ports =
                    Some(old.ports.clone().unwrap_or_else(|| vec![80, 8080]));
            }
            config.port_mapping = incoming.port_mapping.clone().unwrap_or_default();
            config.listen_ports = incoming.listen_ports.clone().unwrap_or_default();
            config.ignore_localhost = incoming.ignore_localhost.unwrap_or(false);
            config.ignore_ports = incoming.ignore_ports.clone().unwrap_or_default();
            config.ports = incoming.ports.clone();
        }
    }
    config
}

fn resolve_http_filter(filter: &file::HttpFilterFileConfig) -> Option<HttpFilter> {
    let inner = |filters: &Vec<InnerHttpFilter>| {
        filters
            .iter()
            .map(|filter| match filter {
                InnerHttpFilter::Header { header } => HttpFilter::Header(header.clone()),
                InnerHttpFilter::Path { path } => HttpFilter::Path(path.clone()),
                InnerHttpFilter::Method { method } => HttpFilter::Method(method.clone()),
            })
            .collect::<Vec<_>>()
    };
    let mut filters = Vec::new();
    filters.extend(filter.header_filter.clone().map(HttpFilter::Header));
    filters.extend(filter.path_filter.clone().map(HttpFilter::Path));
    filters.extend(filter.method_filter.clone().map(HttpFilter::Method));
    filters.extend(
        filter
            .all_of
            .as_ref()
            .map(|all| HttpFilter::AllOf(inner(all))),
    );
    filters.extend(
        filter
            .any_of
            .as_ref()
            .map(|any| HttpFilter::AnyOf(inner(any))),
    );
    match filters.len() {
        0 => None,
        1 => filters.pop(),
        _ => Some(HttpFilter::AllOf(filters)),
    }
}

fn resolve_outgoing(outgoing: Option<&OutgoingField>) -> OutgoingConfig {
    let mut config = OutgoingConfig {
        tcp: true,
        udp: true,
        ignore_localhost: false,
        filter: None,
        unix_streams: Vec::new(),
    };
    match outgoing {
        None | Some(OutgoingField::Enabled(true)) => {}
        Some(OutgoingField::Enabled(false)) => {
            config.tcp = false;
            config.udp = false;
        }
        Some(OutgoingField::Detailed(outgoing)) => {
            config.tcp = outgoing.tcp.unwrap_or(true);
            config.udp = outgoing.udp.unwrap_or(true);
            config.ignore_localhost = outgoing.ignore_localhost.unwrap_or(false);
            config.filter = outgoing.filter.as_ref().map(resolve_address_filter);
            config.unix_streams = outgoing
                .unix_streams
                .as_ref()
                .map(StringOrList::to_vec)
                .unwrap_or_default();
        }
    }
    config
}

fn resolve_address_filter(filter: &AddressFilter) -> ResolvedAddressFilter {
    match filter {
        AddressFilter::Remote(list) => ResolvedAddressFilter::Remote(list.to_vec()),
        AddressFilter::Local(list) => ResolvedAddressFilter::Local(list.to_vec()),
    }
}

fn resolve_internal_proxy(proxy: Option<&file::InternalProxyFileConfig>) -> InternalProxyConfig {
    let default = file::InternalProxyFileConfig::default();
    let proxy = proxy.unwrap_or(&default);
    InternalProxyConfig {
        start_idle_timeout: proxy.start_idle_timeout.unwrap_or(60),
        idle_timeout: proxy.idle_timeout.unwrap_or(5),
        log_level: proxy
            .log_level
            .clone()
            .unwrap_or_else(|| "mirrord=info,warn".to_owned()),
        log_destination: proxy.log_destination.clone(),
        json_log: proxy.json_log.unwrap_or(false),
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
