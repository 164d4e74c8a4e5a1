//! The custom `mirrord/*` requests and notifications: method names, parameter and result types,
//! defined once here. `docs/ide-protocol.md` documents them; a test fails when its method list
//! or its examples drift from these types.

use std::collections::BTreeMap;

use schemars::JsonSchema;
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListTargetsParams {
    /// Only targets in this namespace (Kubernetes; ignored by local targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Only these kinds (`sandbox`, `pid`, `targetless`, `pod`, `deployment`, …). Asking for
    /// `pid` lists the local processes even when a cluster is reachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinds: Option<Vec<String>>,
    /// The config whose cluster settings (kubeconfig, context) apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_path: Option<String>,
    /// The workspace folder (a path or a `file://` URI) whose recently used targets come first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_folder: Option<String>,
}

/// Result of `mirrord/listTargets`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListTargetsResult {
    /// The picker's groups in display order: the workspace's recently used targets, then one
    /// group per kind (cluster kinds, sandbox pods, local processes), then "No target". Empty
    /// groups are left out.
    pub groups: Vec<TargetGroup>,
    /// The namespace the cluster's context points at (none for local targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_namespace: Option<String>,
    /// Namespaces the user can pick from (empty for local targets).
    pub namespaces: Vec<String>,
}

impl ListTargetsResult {
    /// Every target of every group, in display order (a target is in one group only).
    pub fn targets(&self) -> impl Iterator<Item = &TargetInfo> {
        self.groups.iter().flat_map(|group| group.targets.iter())
    }
}

/// One titled group of the target picker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroup {
    /// `recent`, `targetless`, or the kind of its targets (`deployment`, `sandbox`, `pid`, …).
    pub id: String,
    /// The title to show above it ("Recently used", "Deployments", "Local processes", …).
    pub title: String,
    /// Its targets, in display order.
    pub targets: Vec<TargetInfo>,
    /// Instead of listing the targets: one entry that lists them on its own (local processes
    /// when a cluster is reachable, so that they do not fill the picker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub more: Option<MoreTargets>,
}

/// An entry that stands for a group's targets: picking it sends `mirrord/listTargets` again
/// with `kinds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MoreTargets {
    /// The entry's text, e.g. "Local processes…".
    pub label: String,
    /// One line under it.
    pub detail: String,
    /// The kinds to ask for.
    pub kinds: Vec<String>,
}

/// One target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetInfo {
    /// The target path to write in the config, e.g. `sandbox/demo` or `pid/4242`.
    pub path: String,
    /// `sandbox`, `pid`, `targetless`, `pod`, `deployment`, …
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
    #[schemars(with = "Option<FormatShape>")]
    pub format: Option<Format>,
}

/// Result of `mirrord/verifyConfig`: `{"valid", "diagnostics", "config"}` exactly as
/// `mirrord verify-config --output json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VerifyConfigResult {
    /// Whether the config can be used (warnings allowed).
    pub valid: bool,
    /// Every problem, with LSP ranges.
    #[schemars(with = "Vec<ConfigDiagnostic>")]
    pub diagnostics: Vec<Diagnostic>,
    /// The resolved config when valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, Value>>")]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ide {
    /// VS Code: `launch.json` configurations.
    Vscode,
    /// IntelliJ-based IDEs: the plugin sends `{type, request, env, …}` in the same shape.
    Jetbrains,
}

/// Which editor a launch configuration came from does not change validation; kept for logs.
impl std::fmt::Display for Ide {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Ide::Vscode => "vscode",
            Ide::Jetbrains => "jetbrains",
        })
    }
}

/// Parameters of `mirrord/patchLaunchConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchLaunchConfigParams {
    /// The debug launch configuration, after the editor substituted its variables.
    #[schemars(with = "serde_json::Map<String, Value>")]
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
    #[schemars(with = "Option<ProgressToken>")]
    pub work_done_token: Option<Value>,
}

/// Result of `mirrord/patchLaunchConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchLaunchConfigResult {
    /// The launch configuration to run (unchanged when mirrord does not apply to it).
    #[schemars(with = "serde_json::Map<String, Value>")]
    pub launch_config: Value,
    /// The session started for it; `null` when the configuration was returned untouched.
    pub session_id: Option<String>,
    /// The session's target path (`sandbox/demo`, `deployment/api`, `targetless`), for the
    /// editor's status bar; absent when no session started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The debuggee's environment as the launch must change it, already written into
    /// `launchConfig` for VS Code: each variable's final value (`LD_PRELOAD` with the layer
    /// first, then the launch's own libraries), `null` for a variable to remove. Plugins that
    /// keep the environment elsewhere (JetBrains run configurations) apply exactly this.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, Option<String>>,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndSessionParams {
    /// From the `mirrord/patchLaunchConfig` result.
    pub session_id: String,
}

/// Result of `mirrord/endSession`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InitializationOptions {
    /// Milliseconds to wait after an edit before checking the document (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics_delay_ms: Option<u64>,
    /// Watch the workspace's config files for changes made outside the editor (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_files: Option<bool>,
}

/// A `$/progress` token (LSP `ProgressToken`).
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(
    dead_code,
    reason = "describes the wire format for the generated schema only"
)]
enum ProgressToken {
    /// A string token.
    Text(String),
    /// A number token.
    Number(i32),
}

// Schema only; `protocol_schema::tests` checks it against `mirrord_config::Format`.
/// The format of a config text.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "Format")]
#[allow(
    dead_code,
    reason = "describes the wire format for the generated schema only"
)]
pub(crate) enum FormatShape {
    /// JSON (with comments).
    Json,
    /// TOML.
    Toml,
    /// YAML.
    Yaml,
}

// Schema only; `protocol_schema::tests` checks it against real `mirrord_config::Diagnostic`s.
/// One problem in a config, as `mirrord verify-config` reports it.
#[derive(JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(
    dead_code,
    reason = "describes the wire format for the generated schema only"
)]
pub(crate) struct ConfigDiagnostic {
    /// `error` or `warning`.
    severity: SeverityShape,
    /// What is wrong and, where it can, how to fix it.
    message: String,
    /// The key path, e.g. `feature.network.incoming.mode`; empty for the whole document.
    path: String,
    /// Where in the file.
    range: RangeShape,
    /// A text that can replace the range to fix the problem (a quick fix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replacement: Option<String>,
}

/// How bad a problem is: `error` (the config cannot be used) or `warning`.
#[derive(JsonSchema, Deserialize)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "Severity")]
#[allow(
    dead_code,
    reason = "describes the wire format for the generated schema only"
)]
enum SeverityShape {
    /// The config cannot be used.
    Error,
    /// The config works, but something is deprecated or ignored.
    Warning,
}

/// A range in a config file (LSP: zero-based, end exclusive).
#[derive(JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Range")]
#[allow(
    dead_code,
    reason = "describes the wire format for the generated schema only"
)]
struct RangeShape {
    /// Where it starts.
    start: PositionShape,
    /// Where it ends (exclusive).
    end: PositionShape,
}

/// A position in a config file (LSP: zero-based line and UTF-16 character).
#[derive(JsonSchema, Deserialize)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Position")]
#[allow(
    dead_code,
    reason = "describes the wire format for the generated schema only"
)]
struct PositionShape {
    /// 0-based line.
    line: u32,
    /// 0-based UTF-16 code unit offset in the line.
    character: u32,
}

/// `data` of a `ConfigInvalid` error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigInvalidData {
    /// Every problem of the config.
    #[schemars(with = "Vec<ConfigDiagnostic>")]
    pub diagnostics: Vec<Diagnostic>,
    /// The config file (none: the problems are in the launch's `MIRRORD_*` variables).
    pub config_path: Option<String>,
}

/// `data` of a `SessionFailed` error, when there is more to read than the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionFailedData {
    /// The log file that says more (the agent's or the internal proxy's, when one of them failed
    /// to start); the plugins' "Show logs" opens it.
    pub log: String,
}

/// `data` of a `TargetRequired` error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRequiredData {
    /// The config that names no target (none: no config file).
    pub config_path: Option<String>,
}
