//! Starting a session for a resolved config: the target's process, the agent next to it, the
//! intproxy, and the environment the user process runs with. Shared by `mirrord exec` and the IDE
//! sidecar. Both run inside the `mirrord` binary, which this crate re-runs as `mirrord intproxy`
//! and `mirrord sandbox serve`.
//!
//! - [`start`] dispatches on the target: `local.rs` (a pid, a sandbox pod, or no target: the
//!   agent runs on this machine) or `cluster.rs` (a Kubernetes target: the agent runs in the
//!   cluster);
//! - `intproxy.rs` builds and starts the intproxy for either, `spawn.rs` starts a helper and
//!   waits for its ready line;
//! - `running.rs` is the running [`Session`] and its helper processes;
//! - `environment.rs` reads the target's environment and builds the user process's;
//! - `targets.rs` lists targets (`mirrord ls`, the sidecar's picker);
//! - `binaries.rs` finds the files shipped beside the `mirrord` binary;
//! - `logs.rs` is the session's log directory.

#![forbid(unsafe_code)]

mod binaries;
mod cluster;
mod environment;
mod intproxy;
mod local;
pub mod logs;
mod running;
mod spawn;
mod targets;

pub use binaries::artifact;
pub use environment::{env_request, fetch_env, user_environment};
pub use running::{Session, SessionProcesses, SessionStatus, wait_for_agent_lost};
pub use spawn::HELPER_FAILED_PREFIX;
pub use targets::{ListedTargets, SandboxTarget, list_targets, sandbox_targets};

use std::io::Read;

use mirrord_config::ResolvedConfig;
use mirrord_config::resolved::Target;
use mirrord_protocol::token::SessionToken;

/// Environment variables the layer reads (see `layer/`).
pub const LAYER_INTPROXY_ADDR_ENV: &str = "MIRRORD_LAYER_INTPROXY_ADDR";
pub const LAYER_TOKEN_ENV: &str = "MIRRORD_LAYER_SESSION_TOKEN";
/// The name of the agent's abstract unix socket that hands out file descriptors (local targets).
pub const LAYER_AGENT_FDS_ENV: &str = "MIRRORD_LAYER_AGENT_FDS";
pub const RESOLVED_CONFIG_ENV: &str = "MIRRORD_RESOLVED_CONFIG";
/// The environment variable that carries the session token to `mirrord intproxy`.
pub const INTPROXY_TOKEN_ENV: &str = "MIRRORD_SESSION_TOKEN";

/// Why a session could not start. Each message says what to do where the user can act.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "local targets need root: the agent enters the target's namespaces (run mirrord with sudo)"
    )]
    NotRoot,
    #[error("target process {0} does not exist")]
    NoSuchProcess(u32),
    #[error(
        "Kubernetes targets are not supported yet ({0}); use a local target `pid/PID` or `sandbox/NAME`"
    )]
    KubernetesTarget(String),
    /// A Kubernetes operation failed; the message ends with what the user can do, if anything.
    #[error("{0}")]
    Kubernetes(String),
    #[error("cannot start sandbox `{name}`: {message}")]
    Sandbox { name: String, message: String },
    #[error("cannot find {what} (looked at {looked_at}); set ${env} to its path")]
    MissingArtifact {
        what: &'static str,
        looked_at: String,
        env: &'static str,
    },
    #[error("cannot start the {what}: {source}")]
    Spawn {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the {what} could not start: {message} (its log: {log})")]
    HelperFailed {
        what: &'static str,
        message: String,
        log: String,
    },
    #[error("the {what} did not start within {seconds} s; see its log at {log}")]
    Startup {
        what: &'static str,
        seconds: u64,
        log: String,
    },
    #[error("cannot read the target's environment: {0}")]
    Environment(String),
    #[error("cannot connect to the session's internal proxy at {intproxy} as a layer: {message}")]
    LayerConnection {
        intproxy: std::net::SocketAddr,
        message: String,
    },
    /// The session's log directory is unsafe or cannot be made.
    #[error(transparent)]
    Logs(#[from] logs::LogError),
    #[error("cannot read the env file {path}: {source}")]
    EnvFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Starts the agent and the intproxy for `config`, reporting each step to `progress`.
pub fn start(
    config: &ResolvedConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<Session, SessionError> {
    match &config.target {
        Target::Kube { .. } => cluster::start(config, progress),
        Target::Targetless | Target::Pid { .. } | Target::Sandbox { .. } => {
            local::start(config, progress)
        }
    }
}

/// A new random session token (also the source of the random ids of cluster sessions).
fn new_token() -> Result<SessionToken, SessionError> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(|source| SessionError::Spawn {
            what: "session (no random source)",
            source,
        })?;
    Ok(SessionToken::from_bytes(bytes))
}
