//! The one error type of the sandbox crate: what can go wrong building, inspecting or removing a
//! sandbox pod.

use std::{io, path::PathBuf, time::Duration};

/// Why a sandbox operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The sandbox name does not follow the naming rules.
    #[error("invalid sandbox name `{name}`: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// Namespaces, interfaces and mounts can only be made by root.
    #[error("sandbox pods need root: they create network namespaces, veth pairs and mounts")]
    NotRoot,
    /// Every one of the 254 sandbox address slots is taken.
    #[error("no free sandbox slot: all 254 address ranges in 10.241.0.0/16 are in use")]
    NoFreeSlot,
    /// An external program the sandbox relies on is not installed.
    #[error("`{tool}` was not found on PATH (Debian package `{package}`)")]
    MissingTool {
        /// The program.
        tool: String,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// An external program ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The command line, for the report.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },
    /// A file or process operation failed.
    #[error("could not {action}")]
    Io {
        /// What was being done, e.g. "write /run/mirrord/sandbox/demo/pod.json".
        action: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A state file could not be read back.
    #[error("unreadable sandbox state file {}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The sandbox was built but a service never answered; it has been torn down again.
    #[error(
        "sandbox `{name}` was not ready after {} ms: {problem}{logs}",
        waited.as_millis()
    )]
    NotReady {
        /// The sandbox.
        name: String,
        /// How long `up` waited.
        waited: Duration,
        /// The last failed check.
        problem: String,
        /// The tail of the service logs, already formatted (may be empty).
        logs: String,
    },
    /// `enter_pod` was called in the host's mount or UTS namespace, where it would change the host.
    #[error("refusing to set up a sandbox pod in the host's {namespace} namespace")]
    HostNamespace {
        /// "mount" or "UTS".
        namespace: &'static str,
    },
    /// Processes in the sandbox's namespaces survived SIGKILL (stuck in the kernel).
    #[error("processes {pids:?} of the sandbox would not exit")]
    StillRunning {
        /// Their pids.
        pids: Vec<u32>,
    },
    /// [`crate::UpOptions::helper_command`] is empty.
    #[error("the helper command that runs the sandbox services is empty")]
    NoHelperCommand,
}

impl SandboxError {
    /// Builds [`SandboxError::Io`] from a description of the action and the error.
    pub(crate) fn io(action: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            action: action.into(),
            source,
        }
    }
}
