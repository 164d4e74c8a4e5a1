//! Starting the layer: reading the environment contract and the resolved config, deciding whether this
//! process is one to leave alone, and installing the hooks. Runs once, from the library constructor,
//! before `main` and while the process is single-threaded. It never blocks: the intproxy connection is
//! opened later, by the first remote call.

use std::{ffi::OsStr, net::SocketAddr, os::unix::ffi::OsStrExt, path::Path, sync::OnceLock};

use mirrord_config::{
    ResolvedConfig,
    resolved::{BUILD_TOOLS, FsConfig},
};
use mirrord_protocol::SessionToken;

use crate::{
    connection::Endpoint,
    detour::DetourGuard,
    dns::DnsPolicy,
    fs_policy::{self, FsPolicy, LOCAL_DIR_VARIABLES, ProcessPaths},
    hooks::Installer,
    logging,
    net::{OutgoingPolicy, incoming::IncomingPolicy},
    process,
};

/// `IP:PORT` of the intproxy.
pub(crate) const INTPROXY_ADDR_VARIABLE: &str = "MIRRORD_LAYER_INTPROXY_ADDR";
/// The session token in hex.
pub(crate) const SESSION_TOKEN_VARIABLE: &str = "MIRRORD_LAYER_SESSION_TOKEN";
/// The resolved config as JSON.
pub(crate) const RESOLVED_CONFIG_VARIABLE: &str = "MIRRORD_RESOLVED_CONFIG";
/// The agent's abstract socket that passes file descriptors (targets on this machine only).
pub(crate) const AGENT_FDS_VARIABLE: &str = "MIRRORD_LAYER_AGENT_FDS";

/// Everything the hooks need to know about the session, fixed at start.
#[derive(Debug)]
pub(crate) struct Layer {
    /// Where the intproxy is.
    pub(crate) endpoint: Endpoint,
    /// The file policy; `None` in mode `local` (no file hooks at all).
    pub(crate) fs: Option<FsPolicy>,
    /// How many bytes to read ahead on files opened read-only from the target.
    pub(crate) readonly_file_buffer: usize,
    /// The agent's abstract socket for native file descriptors, when it runs on this machine and
    /// `feature.fs.native_fds` is on.
    pub(crate) agent_fds: Option<String>,
    /// The same socket for outgoing connections (native sockets of the target), whatever
    /// `feature.fs.native_fds` says.
    pub(crate) agent_sockets: Option<String>,
    /// Outgoing connections.
    pub(crate) outgoing: OutgoingPolicy,
    /// Incoming traffic.
    pub(crate) incoming: IncomingPolicy,
    /// Name resolution.
    pub(crate) dns: DnsPolicy,
    /// Whether `gethostname` answers the target's hostname.
    pub(crate) hostname: bool,
}

static LAYER: OnceLock<Layer> = OnceLock::new();

/// The session, once the layer is active.
pub(crate) fn layer() -> Option<&'static Layer> {
    LAYER.get()
}

/// The intproxy's address and the token, once the layer is active.
pub(crate) fn endpoint() -> Option<&'static Endpoint> {
    LAYER.get().map(|layer| &layer.endpoint)
}

/// Why the layer stays inactive.
#[derive(Debug, thiserror::Error)]
enum Inactive {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{variable} is invalid: {message}")]
    Invalid {
        variable: &'static str,
        message: String,
    },
    #[error("process `{0}` is skipped by the config")]
    Skipped(String),
}

/// The library constructor's work. Leaves the process untouched when the layer is not wanted.
pub(crate) fn initialize() {
    let Some(_guard) = DetourGuard::enter() else {
        return;
    };
    logging::initialize();
    let layer = match Layer::from_environment() {
        Ok(layer) => layer,
        Err(Inactive::Missing(variable)) => {
            tracing::debug!(
                variable,
                "the layer stays inactive: the variable is not set"
            );
            return;
        }
        Err(reason) => {
            tracing::info!(%reason, "the layer stays inactive");
            return;
        }
    };
    let layer = LAYER.get_or_init(|| layer);
    process::initialize();

    let mut installer = Installer::default();
    // SAFETY: the constructor runs before `main`, single-threaded, with the guard held; each install
    // function pairs every hook with the shim written for its C signature.
    unsafe {
        crate::files::shims::install_fd_hooks(&mut installer);
        if layer.fs.is_some() {
            crate::files::shims::install_path_hooks(&mut installer);
        }
        crate::dns::shims::install(&mut installer, layer.hostname);
        if layer.outgoing.is_enabled() || layer.incoming.is_enabled() {
            crate::net::shims::install(&mut installer);
        }
        // `listen` also tells which listeners stay local, for loopback `connect`s.
        if layer.incoming.is_enabled() || layer.outgoing.tracks_local_listeners() {
            crate::net::shims::install_incoming(&mut installer);
        }
    }
    let (installed, failed) = installer.report();
    tracing::info!(
        executable = ?std::env::current_exe().ok(),
        hooked = %installed.join(" "),
        "layer active"
    );
    if !failed.is_empty() {
        tracing::info!(missing = %failed.join("; "), "functions not hooked");
    }
}

impl Layer {
    fn from_environment() -> Result<Self, Inactive> {
        let variable =
            |name: &'static str| std::env::var(name).map_err(|_| Inactive::Missing(name));
        let address: SocketAddr = variable(INTPROXY_ADDR_VARIABLE)?.parse().map_err(
            |error: std::net::AddrParseError| Inactive::Invalid {
                variable: INTPROXY_ADDR_VARIABLE,
                message: error.to_string(),
            },
        )?;
        let token: SessionToken = variable(SESSION_TOKEN_VARIABLE)?.trim().parse().map_err(
            |error: mirrord_protocol::token::ParseSessionTokenError| Inactive::Invalid {
                variable: SESSION_TOKEN_VARIABLE,
                message: error.to_string(),
            },
        )?;
        let config =
            ResolvedConfig::from_json(&variable(RESOLVED_CONFIG_VARIABLE)?).map_err(|error| {
                Inactive::Invalid {
                    variable: RESOLVED_CONFIG_VARIABLE,
                    message: error.to_string(),
                }
            })?;
        if let Some(name) = skipped_process(&config, &process_names()) {
            return Err(Inactive::Skipped(name));
        }
        let agent_sockets = std::env::var(AGENT_FDS_VARIABLE)
            .ok()
            .filter(|name| !name.is_empty());
        let mut layer = Self::new(Endpoint { address, token }, &config)?;
        layer.agent_fds = agent_sockets
            .clone()
            .filter(|_| config.feature.fs.native_fds);
        layer.agent_sockets = agent_sockets;
        Ok(layer)
    }

    fn new(endpoint: Endpoint, config: &ResolvedConfig) -> Result<Self, Inactive> {
        let invalid = |message: String| Inactive::Invalid {
            variable: RESOLVED_CONFIG_VARIABLE,
            message,
        };
        let fs = file_policy(&config.feature.fs)
            .map_err(|error| invalid(format!("feature.fs: {error}")))?;
        let network = &config.feature.network;
        let outgoing = OutgoingPolicy::new(network, endpoint.address).map_err(invalid)?;
        let dns = DnsPolicy::new(&network.dns)
            .map_err(|error| invalid(format!("feature.network.dns.filter: {error}")))?;
        let dns = dns.with_ipv6(network.ipv6);
        Ok(Self {
            endpoint,
            fs,
            readonly_file_buffer: usize::try_from(config.feature.fs.readonly_file_buffer)
                .unwrap_or(usize::MAX),
            agent_fds: None,
            agent_sockets: None,
            outgoing,
            incoming: IncomingPolicy::new(&network.incoming),
            dns,
            hostname: config.feature.hostname,
        })
    }
}

fn file_policy(config: &FsConfig) -> Result<Option<FsPolicy>, regex::Error> {
    if config.mode == mirrord_config::file::FsMode::Local {
        return Ok(None);
    }
    FsPolicy::new(config, process_paths()).map(Some)
}

/// The facts the built-in file lists use.
fn process_paths() -> ProcessPaths {
    let absolute = |path: &Path| -> Option<Vec<u8>> {
        let bytes = path.as_os_str().as_bytes();
        (bytes.first() == Some(&b'/')).then(|| fs_policy::normalize(bytes).into_owned())
    };
    ProcessPaths {
        home: std::env::var_os("HOME").and_then(|home| absolute(Path::new(&home))),
        executable: std::fs::read_link("/proc/self/exe")
            .ok()
            .and_then(|path| absolute(&path)),
        startup_cwd: std::env::current_dir().ok().and_then(|cwd| absolute(&cwd)),
        local_dirs: LOCAL_DIR_VARIABLES
            .iter()
            .filter_map(std::env::var_os)
            .filter_map(|dir| absolute(Path::new(&dir)))
            .collect(),
    }
}

/// The names this process goes by: the file name of its executable and of its `argv[0]`.
fn process_names() -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(executable) = std::fs::read_link("/proc/self/exe")
        && let Some(name) = executable.file_name()
    {
        names.push(name.to_string_lossy().into_owned());
    }
    if let Ok(command_line) = std::fs::read("/proc/self/cmdline")
        && let Some(argv0) = command_line.split(|byte| *byte == 0).next()
        && let Some(name) = Path::new(OsStr::from_bytes(argv0)).file_name()
    {
        names.push(name.to_string_lossy().into_owned());
    }
    names
}

/// The first of `names` that the config skips, if any.
fn skipped_process(config: &ResolvedConfig, names: &[String]) -> Option<String> {
    names
        .iter()
        .find(|name| {
            config.skip_processes.iter().any(|skipped| skipped == *name)
                || (config.skip_build_tools
                    && (BUILD_TOOLS.contains(&name.as_str())
                        || config
                            .skip_extra_build_tools
                            .iter()
                            .any(|tool| tool == *name)))
        })
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn skip_processes_match_the_executable_or_argv0() {
        let config = ResolvedConfig {
            skip_processes: vec!["bash".into()],
            skip_build_tools: false,
            ..ResolvedConfig::default()
        };
        assert_eq!(
            skipped_process(&config, &names(&["bash", "sh"])),
            Some("bash".into())
        );
        assert_eq!(
            skipped_process(&config, &names(&["dash", "bash"])),
            Some("bash".into())
        );
        assert_eq!(
            skipped_process(&config, &names(&["python3.11", "python3"])),
            None
        );
    }

    #[test]
    fn build_tools_are_skipped_only_when_asked() {
        let mut config = ResolvedConfig {
            skip_build_tools: true,
            skip_extra_build_tools: vec!["bazel".into()],
            ..ResolvedConfig::default()
        };
        assert_eq!(
            skipped_process(&config, &names(&["cargo"])),
            Some("cargo".into())
        );
        assert_eq!(
            skipped_process(&config, &names(&["bazel"])),
            Some("bazel".into())
        );
        config.skip_build_tools = false;
        assert_eq!(skipped_process(&config, &names(&["cargo", "bazel"])), None);
    }

    #[test]
    fn the_default_config_makes_an_active_layer() {
        let endpoint = Endpoint {
            address: "127.0.0.1:1".parse().unwrap(),
            token: SessionToken::from_bytes([7; 32]),
        };
        let layer = Layer::new(endpoint, &ResolvedConfig::default()).unwrap();
        assert!(layer.fs.is_some());
        assert!(layer.outgoing.is_enabled());
    }

    #[test]
    fn an_invalid_pattern_keeps_the_layer_inactive() {
        let mut config = ResolvedConfig::default();
        config.feature.fs.not_found = vec!["(".into()];
        let endpoint = Endpoint {
            address: "127.0.0.1:1".parse().unwrap(),
            token: SessionToken::from_bytes([7; 32]),
        };
        let error = Layer::new(endpoint, &config).unwrap_err();
        assert!(error.to_string().contains("feature.fs"), "{error}");
    }

    #[test]
    fn process_names_include_this_test_binary() {
        let names = process_names();
        assert!(!names.is_empty());
        assert!(names.iter().all(|name| !name.contains('/')), "{names:?}");
    }
}
