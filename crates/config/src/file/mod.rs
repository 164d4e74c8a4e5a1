//! The configuration as the user writes it: every key optional, shorthand forms kept as written.
//!
//! These types are the single source of the JSON Schema (`schema/mirrord-schema.json`): their doc
//! comments are the user documentation shown on hover and completion in the IDEs, so they say what
//! a key does, its default, and give an example. Resolution into concrete values lives in
//! [`crate::resolved`].

mod agent;
mod common;
mod feature;
mod internal_proxy;
mod network;
mod target;

pub use agent::*;
pub use common::*;
pub use feature::*;
pub use internal_proxy::*;
pub use network::*;
pub use target::*;

#[cfg(feature = "files")]
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// mirrord configuration: run a local process in the context of a target (a Kubernetes pod,
/// a local process or a built-in sandbox pod).
///
/// Written as `.mirrord/mirrord.json` (or `.toml`, `.yaml`) in the workspace, or passed with
/// `--config-file`. Every key is optional; a minimal config is `{}`.
///
/// Example:
///
/// ```json
/// {
///   "target": "pod/api-7f9c",
///   "feature": { "env": true, "fs": "read", "network": { "incoming": "steal" } }
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "files", derive(JsonSchema))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "files", schemars(title = "mirrord configuration"))]
pub struct FileConfig {
    /// The JSON Schema this file follows; editors use it, mirrord ignores it.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,

    /// The target whose files, environment, network and incoming traffic the local process uses.
    ///
    /// Either a path string or `{ "path": …, "namespace": … }`. Paths: `targetless`,
    /// `pod/NAME[/container/C]`, `deployment/NAME[/container/C]`, `rollout/…`, `statefulset/…`,
    /// `replicaset/…`, `job/…`, `cronjob/…`, `service/…`, a local process `pid/PID`, or a
    /// built-in sandbox pod `sandbox/NAME`.
    ///
    /// Default: none (the IDE asks; the CLI runs targetless). Example: `"target": "deployment/api"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetField>,

    /// Accept invalid TLS certificates (e.g. self-signed) from the Kubernetes API server.
    ///
    /// Default: the kubeconfig's `insecure-skip-tls-verify`. Example: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_invalid_certificates: Option<bool>,

    /// Processes that mirrord must not hook, by executable name; a single name or a list.
    ///
    /// Useful when process A spawns process B and only B should run in the target's context.
    /// Default: none. Example: `["bash", "node"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_processes: Option<StringOrList>,

    /// Skip build tools (`cargo`, `go`, `gcc`, `ld`, `rustc`, `git`, …) so that commands that
    /// build and then run the application only hook the application.
    ///
    /// Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_build_tools: Option<bool>,

    /// Extra executable names to treat as build tools (used when `skip_build_tools` is on).
    ///
    /// Default: none. Example: `["make"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_extra_build_tools: Option<StringOrList>,

    /// Path to a kubeconfig file.
    ///
    /// Default: `$KUBECONFIG`, then `~/.kube/config`, then the in-cluster config.
    /// Example: `"~/clusters/staging.yaml"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,

    /// The kubeconfig context to use.
    ///
    /// Default: the kubeconfig's current context. Example: `"staging"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_context: Option<String>,

    /// Whether to use the mirrord operator. Has no effect here: this implementation has no
    /// operator and never needs one (every target kind works with the agent alone); loading a
    /// config that sets it warns so.
    ///
    /// Default: `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(extend("x-mirrord-unsupported" = true)))]
    pub operator: Option<bool>,

    /// macOS only: binaries to patch for System Integrity Protection. Has no effect on Linux,
    /// the only system this implementation runs on; loading a config that sets it warns so.
    ///
    /// Default: none. Example: `["bash"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(extend("x-mirrord-unsupported" = true)))]
    pub sip_binaries: Option<StringOrList>,

    /// mirrord's "connect to an agent already running at `IP:PORT`" (for debugging mirrord
    /// itself). Not supported: every session starts its own agent, which accepts only that
    /// session's token; loading a config that sets it warns so.
    ///
    /// Default: none. Example: `"10.0.0.5:61337"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(extend("x-mirrord-unsupported" = true)))]
    pub connect_tcp: Option<String>,

    /// mirrord's name of an agent pod that already exists, to attach to. Not supported (see
    /// `connect_tcp`); loading a config that sets it warns so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(extend("x-mirrord-unsupported" = true)))]
    pub connect_agent_name: Option<String>,

    /// mirrord's port of an agent that already exists, to attach to. Not supported (see
    /// `connect_tcp`); loading a config that sets it warns so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(extend("x-mirrord-unsupported" = true)))]
    pub connect_agent_port: Option<u16>,

    /// Deprecated: pausing the target container is not supported; this key is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "files", schemars(extend("deprecated" = true, "deprecationMessage" = "`pause` is not supported and is ignored")))]
    pub pause: Option<bool>,

    /// The agent: the helper that runs in the target's namespaces and does the remote work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentFileConfig>,

    /// Which parts of the target the local process sees: environment, files, network, hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<FeatureFileConfig>,

    /// The internal proxy: one per session, between the local process (and its children) and
    /// the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_proxy: Option<InternalProxyFileConfig>,

    /// mirrord operator profile. Not supported by this implementation; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Unsupported>,

    /// mirrord session key for operator filters. Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Unsupported>,

    /// mirrord's `mirrord container` command settings. Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Unsupported>,

    /// mirrord's external proxy (for `mirrord container`). Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_proxy: Option<Unsupported>,

    /// mirrord's experimental switches. Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experimental: Option<Unsupported>,

    /// mirrord's Kubernetes start-up retry policy. Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_retry: Option<Unsupported>,

    /// mirrord's telemetry switch. This implementation sends no telemetry; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<Unsupported>,

    /// mirrord's `mirrord ci` settings. Not supported; ignored with a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<Unsupported>,
}
