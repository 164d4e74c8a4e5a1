//! Resolution: how the config as written (`FileConfig`) becomes the [`ResolvedConfig`] a session
//! runs with — every default applied, every shorthand expanded.

use std::collections::BTreeMap;

use crate::file::{
    self, AddressFilter, AgentImage, DnsField, EnvField, FileConfig, FsField, FsMode,
    ImagePullPolicy, IncomingField, IncomingMode, InnerHttpFilter, NetworkField, OutgoingField,
    StringOrList, Toleration, TolerationOperator,
};

use super::{
    AgentConfig, CopyTargetConfig, DEFAULT_AGENT_IMAGE_REPOSITORY, DnsConfig, EnvConfig,
    FeatureConfig, FsConfig, HttpFilter, IncomingConfig, InternalProxyConfig, NetworkConfig,
    OutgoingConfig, ResolvedAddressFilter, ResolvedConfig, Target,
};

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
    let mut config = FsConfig::default();
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
