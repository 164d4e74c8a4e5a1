//! `internal_proxy`: the per-session process between the layer instances and the agent.

#[cfg(feature = "files")]
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Unsupported;

/// The internal proxy: one per session, it holds the agent connection for the local process and
/// every child it forks or execs.
///
/// Example: `{ "start_idle_timeout": 60, "idle_timeout": 5 }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct InternalProxyFileConfig {
    /// Seconds to wait for the first local process to connect (raise it when a debugger holds the
    /// process at start).
    ///
    /// Default: `60`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_idle_timeout: Option<u64>,

    /// Seconds to stay alive after the last local process disconnected.
    ///
    /// Default: `5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<u64>,

    /// Log filter, in `RUST_LOG` syntax.
    ///
    /// Default: `"mirrord=info,warn"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,

    /// Log file, or a directory (ending in `/`) to create one in.
    ///
    /// Default: `intproxy.log` in the session's own directory under
    /// `$XDG_STATE_HOME/mirrord/logs/` (`~/.local/state/mirrord/logs/`). Example:
    /// `"/tmp/mirrord-intproxy.log"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_destination: Option<String>,

    /// Write logs as JSON lines.
    ///
    /// Default: `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_log: Option<bool>,

    /// mirrord's periodic process logging. Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_logging_interval: Option<Unsupported>,
}
