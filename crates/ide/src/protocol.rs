//! The custom `mirrord/*` requests and notifications: method names, parameter and result types,
//! defined once here. `docs/ide-protocol.md` documents them; a test fails when its method list
//! or its examples drift from these types.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use mirrord_config::{Diagnostic, Format, ResolvedConfig};

/// A custom request: its method name and the shapes of its parameters and result.
pub trait CustomRequest {
    /// The JSON-RPC method.
    const METHOD: &'static str;
    /// What the client sends (`()` when the request takes no parameters).
    type Params: Serialize + DeserializeOwned;
    /// What the sidecar answers.
    type Result: Serialize + DeserializeOwned;
}

/// `mirrord/schema`: the JSON Schema of this binary's config format (no parameters).
#[derive(Debug)]
pub enum Schema {}

impl CustomRequest for Schema {
    const METHOD: &'static str = "mirrord/schema";
    type Params = ();
    type Result = Value;
}

/// `mirrord/listTargets`: the targets a session can use.
#[derive(Debug)]
pub enum ListTargets {}

impl CustomRequest for ListTargets {
    const METHOD: &'static str = "mirrord/listTargets";
    type Params = ListTargetsParams;
    type Result = ListTargetsResult;
}

/// Parameters of `mirrord/listTargets`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListTargetsParams {
    /// Only targets in this namespace (Kubernetes; ignored by local targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Only these kinds (`sandbox`, `pid`, `targetless`, later `pod`, `deployment`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinds: Option<Vec<String>>,
    /// The config whose cluster settings (kubeconfig, context) apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_path: Option<String>,
}

/// Result of `mirrord/listTargets`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTargetsResult {
    /// Every target found, in the order a quick-pick should show them.
    pub targets: Vec<TargetInfo>,
    /// The namespace the cluster's context points at (none for local targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_namespace: Option<String>,
    /// Namespaces the user can pick from (empty for local targets).
    pub namespaces: Vec<String>,
}

/// One target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetInfo {
    /// The target path to write in the config, e.g. `sandbox/demo` or `pid/4242`.
    pub path: String,
    /// `sandbox`, `pid`, `targetless` (later `pod`, `deployment`, …).
    pub kind: String,
    /// The namespace (Kubernetes targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Whether a session can start on it now.
    pub available: bool,
    /// One line for the user: a process's command line, a sandbox's address.
    pub detail: String,
}

/// `mirrord/verifyConfig`: the same report as `mirrord verify-config --output json`.
#[derive(Debug)]
pub enum VerifyConfig {}

impl CustomRequest for VerifyConfig {
    const METHOD: &'static str = "mirrord/verifyConfig";
    type Params = VerifyConfigParams;
    type Result = VerifyConfigResult;
}

/// Parameters of `mirrord/verifyConfig`: a document (`uri`, open in the editor or on disk) or a
/// text with its format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyConfigParams {
    /// A `file://` URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// The config text (instead of `uri`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The format of `text` (default `json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
}

/// Result of `mirrord/verifyConfig`: `{"valid", "diagnostics", "config"}` exactly as
/// `mirrord verify-config --output json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyConfigResult {
    /// Whether the config can be used (warnings allowed).
    pub valid: bool,
    /// Every problem, with LSP ranges.
    pub diagnostics: Vec<Diagnostic>,
    /// The resolved config when valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ResolvedConfig>,
}

/// `mirrord/patchLaunchConfig`: start a session and return the launch configuration with the
/// environment the debuggee must run with.
#[derive(Debug)]
pub enum PatchLaunchConfig {}

impl CustomRequest for PatchLaunchConfig {
    const METHOD: &'static str = "mirrord/patchLaunchConfig";
    type Params = PatchLaunchConfigParams;
    type Result = PatchLaunchConfigResult;
}

/// Which editor is asking (decides the launch configuration's shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ide {
    /// VS Code: `launch.json` configurations.
    Vscode,
    /// IntelliJ-based IDEs: the plugin sends `{type, request, env, …}` in the same shape.
    Jetbrains,
}

/// Parameters of `mirrord/patchLaunchConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchLaunchConfigParams {
    /// The debug launch configuration, after the editor substituted its variables.
    pub launch_config: Value,
    /// The workspace folder (a path or a `file://` URI); config paths must lie inside it.
    pub workspace_folder: String,
    /// The mirrord config to use (relative to the workspace folder, or absolute inside it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_path: Option<String>,
    /// The target, overriding the config's (the user's quick-pick choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The editor.
    pub ide: Ide,
    /// A `$/progress` token of the client's (LSP `WorkDoneProgressParams`); without it the
    /// sidecar creates one when the client supports `window/workDoneProgress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_done_token: Option<Value>,
}

/// Result of `mirrord/patchLaunchConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchLaunchConfigResult {
    /// The launch configuration to run (unchanged when mirrord does not apply to it).
    pub launch_config: Value,
    /// The session started for it; `null` when the configuration was returned untouched.
    pub session_id: Option<String>,
    /// Things the user should know (what was adjusted for the debugger, config warnings).
    pub warnings: Vec<String>,
}

/// `mirrord/endSession`: end a session started by `mirrord/patchLaunchConfig`.
#[derive(Debug)]
pub enum EndSession {}

impl CustomRequest for EndSession {
    const METHOD: &'static str = "mirrord/endSession";
    type Params = EndSessionParams;
    type Result = EndSessionResult;
}

/// Parameters of `mirrord/endSession`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndSessionParams {
    /// From the `mirrord/patchLaunchConfig` result.
    pub session_id: String,
}

/// Result of `mirrord/endSession`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndSessionResult {
    /// `true` when this request ended a running session; `false` when it had already ended.
    pub ended: bool,
}

/// `mirrord/sessionEvent` (sidecar → client notification): something happened to a session.
#[derive(Debug)]
pub enum SessionEvent {}

impl tower_lsp_server::ls_types::notification::Notification for SessionEvent {
    const METHOD: &'static str = "mirrord/sessionEvent";
    type Params = SessionEventParams;
}

/// Parameters of `mirrord/sessionEvent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionEventParams {
    /// The session.
    pub session_id: String,
    /// What happened.
    pub kind: SessionEventKind,
    /// For the user.
    pub message: String,
}

/// Kinds of [`SessionEventParams`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SessionEventKind {
    /// The agent is gone: remote calls of the debuggee fail from now on.
    AgentLost,
    /// The session is over (ended by request, by the sidecar, or because no process used it).
    Ended,
}

/// Every custom request the sidecar serves, by method name.
pub const REQUESTS: &[&str] = &[
    Schema::METHOD,
    ListTargets::METHOD,
    VerifyConfig::METHOD,
    PatchLaunchConfig::METHOD,
    EndSession::METHOD,
];

/// Every custom notification the sidecar sends.
pub const NOTIFICATIONS: &[&str] =
    &[<SessionEvent as tower_lsp_server::ls_types::notification::Notification>::METHOD];

/// `initializationOptions` the sidecar understands (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializationOptions {
    /// Milliseconds to wait after an edit before checking the document (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics_delay_ms: Option<u64>,
    /// Watch the workspace's config files for changes made outside the editor (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_files: Option<bool>,
}
