//! Overrides on top of the file: `MIRRORD_*` environment variables and CLI flags, with
//! precedence CLI flag > environment > file > default.

use crate::diagnostic::{Diagnostic, Position, Range, Severity};
use crate::file::{
    AgentFileConfig, AgentImage, DnsField, EnvField, EnvFileConfig, FeatureFileConfig, FileConfig,
    FsField, FsMode, IncomingField, IncomingMode, NetworkField, NetworkFileConfig, OutgoingField,
    OutgoingFileConfig, StringOrList, TargetField, TargetObject, TargetPath,
};

/// Settings that can come from the command line or the environment. `None` leaves the file's
/// value alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--target` / `MIRRORD_IMPERSONATED_TARGET`.
    pub target: Option<String>,
    /// `--target-namespace` / `MIRRORD_TARGET_NAMESPACE`.
    pub target_namespace: Option<String>,
    /// `--fs-mode` / `MIRRORD_FILE_MODE`.
    pub fs_mode: Option<String>,
    /// `--steal` / `MIRRORD_AGENT_TCP_STEAL_TRAFFIC`.
    pub steal: Option<bool>,
    /// `-s` / `MIRRORD_OVERRIDE_ENV_VARS_INCLUDE` (`;`-separated).
    pub env_include: Option<String>,
    /// `-x` / `MIRRORD_OVERRIDE_ENV_VARS_EXCLUDE` (`;`-separated).
    pub env_exclude: Option<String>,
    /// `--skip-processes` / `MIRRORD_SKIP_PROCESSES` (`;`-separated).
    pub skip_processes: Option<String>,
    /// `--no-remote-dns` / `MIRRORD_REMOTE_DNS`.
    pub remote_dns: Option<bool>,
    /// `--no-outgoing` / `MIRRORD_TCP_OUTGOING`.
    pub tcp_outgoing: Option<bool>,
    /// `--no-outgoing` / `MIRRORD_UDP_OUTGOING`.
    pub udp_outgoing: Option<bool>,
    /// `--agent-image` / `MIRRORD_AGENT_IMAGE`.
    pub agent_image: Option<String>,
    /// `--agent-ttl` / `MIRRORD_AGENT_TTL`.
    pub agent_ttl: Option<String>,
    /// `--agent-log-level` / `MIRRORD_AGENT_RUST_LOG`.
    pub agent_log_level: Option<String>,
}

/// The environment variables read by [`Overrides::from_env`], with the field each sets.
pub const ENV_VARIABLES: &[&str] = &[
    "MIRRORD_IMPERSONATED_TARGET",
    "MIRRORD_TARGET_NAMESPACE",
    "MIRRORD_FILE_MODE",
    "MIRRORD_AGENT_TCP_STEAL_TRAFFIC",
    "MIRRORD_OVERRIDE_ENV_VARS_INCLUDE",
    "MIRRORD_OVERRIDE_ENV_VARS_EXCLUDE",
    "MIRRORD_SKIP_PROCESSES",
    "MIRRORD_REMOTE_DNS",
    "MIRRORD_TCP_OUTGOING",
    "MIRRORD_UDP_OUTGOING",
    "MIRRORD_AGENT_IMAGE",
    "MIRRORD_AGENT_TTL",
    "MIRRORD_AGENT_RUST_LOG",
];

impl Overrides {
    /// Reads the `MIRRORD_*` variables through `lookup` (usually `std::env::var`). Invalid values
    /// are reported as diagnostics naming the variable.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> (Overrides, Vec<Diagnostic>) {
        let mut diagnostics = Vec::new();
        let mut flag = |name: &str| -> Option<bool> {
            let value = lookup(name)?;
            match parse_bool(&value) {
                Some(flag) => Some(flag),
                None => {
                    diagnostics.push(env_error(
                        name,
                        &format!("invalid value `{value}` in ${name}: expected `true` or `false`"),
                    ));
                    None
                }
            }
        };
        let steal = flag("MIRRORD_AGENT_TCP_STEAL_TRAFFIC");
        let remote_dns = flag("MIRRORD_REMOTE_DNS");
        let tcp_outgoing = flag("MIRRORD_TCP_OUTGOING");
        let udp_outgoing = flag("MIRRORD_UDP_OUTGOING");
        let overrides = Overrides {
            target: lookup("MIRRORD_IMPERSONATED_TARGET"),
            target_namespace: lookup("MIRRORD_TARGET_NAMESPACE"),
            fs_mode: lookup("MIRRORD_FILE_MODE"),
            steal,
            env_include: lookup("MIRRORD_OVERRIDE_ENV_VARS_INCLUDE"),
            env_exclude: lookup("MIRRORD_OVERRIDE_ENV_VARS_EXCLUDE"),
            skip_processes: lookup("MIRRORD_SKIP_PROCESSES"),
            remote_dns,
            tcp_outgoing,
            udp_outgoing,
            agent_image: lookup("MIRRORD_AGENT_IMAGE"),
            agent_ttl: lookup("MIRRORD_AGENT_TTL"),
            agent_log_level: lookup("MIRRORD_AGENT_RUST_LOG"),
        };
        (overrides, diagnostics)
    }

    /// These overrides with every value of `higher` that is set taking precedence.
    pub fn overlaid_by(self, higher: Overrides) -> Overrides {
        Overrides {
            target: higher.target.or(self.target),
            target_namespace: higher.target_namespace.or(self.target_namespace),
            fs_mode: higher.fs_mode.or(self.fs_mode),
            steal: higher.steal.or(self.steal),
            env_include: higher.env_include.or(self.env_include),
            env_exclude: higher.env_exclude.or(self.env_exclude),
            skip_processes: higher.skip_processes.or(self.skip_processes),
            remote_dns: higher.remote_dns.or(self.remote_dns),
            tcp_outgoing: higher.tcp_outgoing.or(self.tcp_outgoing),
            udp_outgoing: higher.udp_outgoing.or(self.udp_outgoing),
            agent_image: higher.agent_image.or(self.agent_image),
            agent_ttl: higher.agent_ttl.or(self.agent_ttl),
            agent_log_level: higher.agent_log_level.or(self.agent_log_level),
        }
    }

    /// Writes the overrides into `config`; problems (a bad target path, an unknown fs mode) are
    /// returned as diagnostics and leave the file's value in place.
    pub fn apply(&self, config: &mut FileConfig) -> Vec<Diagnostic> {
        let mut diagnostics = Vec::new();
        if let Some(target) = &self.target {
            if crate::resolved::Target::parse(target).is_some() {
                let namespace = match &config.target {
                    Some(TargetField::Object(object)) => object.namespace.clone(),
                    _ => None,
                };
                config.target = Some(TargetField::Object(TargetObject {
                    path: Some(TargetPath(target.clone())),
                    namespace,
                }));
            } else {
                diagnostics.push(env_error(
                    "target",
                    &format!("{}, found `{target}`", crate::file::TARGET_PATH_HELP),
                ));
            }
        }
        if let Some(namespace) = &self.target_namespace {
            let path = match &config.target {
                Some(TargetField::Path(path)) => Some(path.clone()),
                Some(TargetField::Object(object)) => object.path.clone(),
                None => None,
            };
            config.target = Some(TargetField::Object(TargetObject {
                path,
                namespace: Some(namespace.clone()),
            }));
        }
        if let Some(skip) = &self.skip_processes {
            config.skip_processes = Some(StringOrList::Many(
                StringOrList::One(skip.clone()).split_semicolons(),
            ));
        }
        let agent = config.agent.get_or_insert_with(AgentFileConfig::default);
        if let Some(image) = &self.agent_image {
            agent.image = Some(AgentImage::Reference(image.clone()));
        }
        if let Some(ttl) = &self.agent_ttl {
            match ttl.trim().parse::<u16>() {
                Ok(ttl) => agent.ttl = Some(ttl),
                Err(_) => diagnostics.push(env_error(
                    "agent.ttl",
                    &format!(
                        "invalid agent ttl `{ttl}`: expected a number of seconds from 0 to 65535"
                    ),
                )),
            }
        }
        if let Some(level) = &self.agent_log_level {
            agent.log_level = Some(level.clone());
        }
        if config.agent == Some(AgentFileConfig::default()) {
            config.agent = None;
        }
        let feature = config
            .feature
            .get_or_insert_with(FeatureFileConfig::default);
        if let Some(mode) = &self.fs_mode {
            match serde_json::from_value::<FsMode>(mode.to_ascii_lowercase().into()) {
                Ok(mode) => match &mut feature.fs {
                    Some(FsField::Detailed(fs)) => fs.mode = Some(mode),
                    other => *other = Some(FsField::Mode(mode)),
                },
                Err(_) => diagnostics.push(env_error(
                    "feature.fs.mode",
                    &format!("invalid file mode `{mode}`: expected one of `local`, `localwithoverrides`, `read`, `write`"),
                )),
            }
        }
        if self.env_include.is_some() || self.env_exclude.is_some() {
            let mut env = match feature.env.take() {
                Some(EnvField::Detailed(env)) => env,
                _ => EnvFileConfig::default(),
            };
            if let Some(include) = &self.env_include {
                env.include = Some(StringOrList::One(include.clone()));
                env.exclude = None;
            }
            if let Some(exclude) = &self.env_exclude {
                env.exclude = Some(StringOrList::One(exclude.clone()));
                if self.env_include.is_none() {
                    env.include = None;
                }
            }
            feature.env = Some(EnvField::Detailed(env));
        }
        if self.steal.is_some()
            || self.remote_dns.is_some()
            || self.tcp_outgoing.is_some()
            || self.udp_outgoing.is_some()
        {
            let mut network = match feature.network.take() {
                Some(NetworkField::Detailed(network)) => network,
                Some(NetworkField::Enabled(false)) => NetworkFileConfig {
                    incoming: Some(IncomingField::Enabled(false)),
                    outgoing: Some(OutgoingField::Enabled(false)),
                    dns: Some(DnsField::Enabled(false)),
                    ipv6: None,
                },
                _ => NetworkFileConfig::default(),
            };
            if self.steal == Some(true) {
                match &mut network.incoming {
                    Some(IncomingField::Detailed(incoming)) => {
                        incoming.mode = Some(IncomingMode::Steal)
                    }
                    other => *other = Some(IncomingField::Mode(IncomingMode::Steal)),
                }
            }
            if let Some(remote_dns) = self.remote_dns {
                network.dns = match network.dns.take() {
                    Some(DnsField::Detailed(mut dns)) => {
                        dns.enabled = Some(remote_dns);
                        Some(DnsField::Detailed(dns))
                    }
                    _ => Some(DnsField::Enabled(remote_dns)),
                };
            }
            if self.tcp_outgoing.is_some() || self.udp_outgoing.is_some() {
                let mut outgoing = match network.outgoing.take() {
                    Some(OutgoingField::Detailed(outgoing)) => outgoing,
                    Some(OutgoingField::Enabled(enabled)) => OutgoingFileConfig {
                        tcp: Some(enabled),
                        udp: Some(enabled),
                        ..OutgoingFileConfig::default()
                    },
                    None => OutgoingFileConfig::default(),
                };
                if let Some(tcp) = self.tcp_outgoing {
                    outgoing.tcp = Some(tcp);
                }
                if let Some(udp) = self.udp_outgoing {
                    outgoing.udp = Some(udp);
                }
                network.outgoing = Some(OutgoingField::Detailed(outgoing));
            }
            feature.network = Some(NetworkField::Detailed(network));
        }
        if config.feature == Some(FeatureFileConfig::default()) {
            config.feature = None;
        }
        diagnostics
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn env_error(path: &str, message: &str) -> Diagnostic {
    let origin = Position {
        line: 0,
        character: 0,
    };
    Diagnostic {
        severity: Severity::Error,
        message: message.to_owned(),
        path: path.to_owned(),
        range: Range {
            start: origin,
            end: origin,
        },
        replacement: None,
    }
}
