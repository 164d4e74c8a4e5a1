// The sidecar's custom protocol: method names, error codes and types. GENERATED from
// crates/ide/src/protocol.rs (schema/ide-protocol.json) by
// `UPDATE_EXPECT=1 cargo test -p mirrord-ide --test generated_protocol`; do not edit.

export const Methods = {
  schema: 'mirrord/schema',
  listTargets: 'mirrord/listTargets',
  verifyConfig: 'mirrord/verifyConfig',
  patchLaunchConfig: 'mirrord/patchLaunchConfig',
  endSession: 'mirrord/endSession',
  sessionEvent: 'mirrord/sessionEvent',
} as const;

/** The stable JSON-RPC error codes of the custom requests. */
export const ErrorCodes = {
  configInvalid: -32010,
  configUnreadable: -32011,
  pathOutsideWorkspace: -32012,
  targetRequired: -32013,
  sessionFailed: -32014,
  documentTooLarge: -32015,
  targetsFailed: -32016,
  internalPanic: -32099,
  requestCancelled: -32800,
} as const;

/** One problem in a config, as `mirrord verify-config` reports it. */
export interface ConfigDiagnostic {
  /** `error` or `warning`. */
  severity: Severity;
  /** What is wrong and, where it can, how to fix it. */
  message: string;
  /** The key path, e.g. `feature.network.incoming.mode`; empty for the whole document. */
  path: string;
  /** Where in the file. */
  range: Range;
  /** A text that can replace the range to fix the problem (a quick fix). */
  replacement?: string | null;
}

/** `data` of a `ConfigInvalid` error. */
export interface ConfigInvalidData {
  /** Every problem of the config. */
  diagnostics: ConfigDiagnostic[];
  /** The config file (none: the problems are in the launch's `MIRRORD_*` variables). */
  configPath: string | null;
}

/** Parameters of `mirrord/endSession`. */
export interface EndSessionParams {
  /** From the `mirrord/patchLaunchConfig` result. */
  sessionId: string;
}

/** Result of `mirrord/endSession`. */
export interface EndSessionResult {
  /** `true` when this request ended a running session; `false` when it had already ended. */
  ended: boolean;
}

/** The format of a config text. */
export type Format = 'json' | 'toml' | 'yaml';

/** Which editor is asking (decides the launch configuration's shape). */
export type Ide = 'vscode' | 'jetbrains';

/** `initializationOptions` the sidecar understands (all optional). */
export interface InitializationOptions {
  /** Milliseconds to wait after an edit before checking the document (default 100). */
  diagnosticsDelayMs?: number | null;
  /** Watch the workspace's config files for changes made outside the editor (default true). */
  watchFiles?: boolean | null;
}

/** Parameters of `mirrord/listTargets`. */
export interface ListTargetsParams {
  /** Only targets in this namespace (Kubernetes; ignored by local targets). */
  namespace?: string | null;
  /** Only these kinds (`sandbox`, `pid`, `targetless`, `pod`, `deployment`, …). Asking for `pid` lists the local processes even when a cluster is reachable. */
  kinds?: string[] | null;
  /** The config whose cluster settings (kubeconfig, context) apply. */
  configPath?: string | null;
  /** The workspace folder (a path or a `file://` URI) whose recently used targets come first. */
  workspaceFolder?: string | null;
}

/** Result of `mirrord/listTargets`. */
export interface ListTargetsResult {
  /** The picker's groups in display order: the workspace's recently used targets, then one group per kind (cluster kinds, sandbox pods, local processes), then "No target". Empty groups are left out. */
  groups: TargetGroup[];
  /** The namespace the cluster's context points at (none for local targets). */
  currentNamespace?: string | null;
  /** Namespaces the user can pick from (empty for local targets). */
  namespaces: string[];
}

/** An entry that stands for a group's targets: picking it sends `mirrord/listTargets` again with `kinds`. */
export interface MoreTargets {
  /** The entry's text, e.g. "Local processes…". */
  label: string;
  /** One line under it. */
  detail: string;
  /** The kinds to ask for. */
  kinds: string[];
}

/** Parameters of `mirrord/patchLaunchConfig`. */
export interface PatchLaunchConfigParams {
  /** The debug launch configuration, after the editor substituted its variables. */
  launchConfig: Record<string, unknown>;
  /** The workspace folder (a path or a `file://` URI); config paths must lie inside it. */
  workspaceFolder: string;
  /** The mirrord config to use (relative to the workspace folder, or absolute inside it). */
  configPath?: string | null;
  /** The target, overriding the config's (the user's quick-pick choice). */
  target?: string | null;
  /** The editor. */
  ide: Ide;
  /** A `$/progress` token of the client's (LSP `WorkDoneProgressParams`); without it the sidecar creates one when the client supports `window/workDoneProgress`. */
  workDoneToken?: ProgressToken | null;
}

/** Result of `mirrord/patchLaunchConfig`. */
export interface PatchLaunchConfigResult {
  /** The launch configuration to run (unchanged when mirrord does not apply to it). */
  launchConfig: Record<string, unknown>;
  /** The session started for it; `null` when the configuration was returned untouched. */
  sessionId: string | null;
  /** The session's target path (`sandbox/demo`, `deployment/api`, `targetless`), for the editor's status bar; absent when no session started. */
  target?: string | null;
  /** The debuggee's environment as the launch must change it, already written into `launchConfig` for VS Code: each variable's final value (`LD_PRELOAD` with the layer first, then the launch's own libraries), `null` for a variable to remove. Plugins that keep the environment elsewhere (JetBrains run configurations) apply exactly this. */
  environment?: Record<string, string | null>;
  /** Things the user should know (what was adjusted for the debugger, config warnings). */
  warnings: string[];
}

/** A position in a config file (LSP: zero-based line and UTF-16 character). */
export interface Position {
  /** 0-based line. */
  line: number;
  /** 0-based UTF-16 code unit offset in the line. */
  character: number;
}

/** A `$/progress` token (LSP `ProgressToken`). */
export type ProgressToken = string | number;

/** A range in a config file (LSP: zero-based, end exclusive). */
export interface Range {
  /** Where it starts. */
  start: Position;
  /** Where it ends (exclusive). */
  end: Position;
}

/** Kinds of [`SessionEventParams`]. */
export type SessionEventKind = 'agentLost' | 'ended';

/** Parameters of `mirrord/sessionEvent`. */
export interface SessionEventParams {
  /** The session. */
  sessionId: string;
  /** What happened. */
  kind: SessionEventKind;
  /** For the user. */
  message: string;
}

/** `data` of a `SessionFailed` error, when there is more to read than the message. */
export interface SessionFailedData {
  /** The log file that says more (the agent's or the internal proxy's, when one of them failed to start); the plugins' "Show logs" opens it. */
  log: string;
}

/** How bad a problem is: `error` (the config cannot be used) or `warning`. */
export type Severity = 'error' | 'warning';

/** One titled group of the target picker. */
export interface TargetGroup {
  /** `recent`, `targetless`, or the kind of its targets (`deployment`, `sandbox`, `pid`, …). */
  id: string;
  /** The title to show above it ("Recently used", "Deployments", "Local processes", …). */
  title: string;
  /** Its targets, in display order. */
  targets: TargetInfo[];
  /** Instead of listing the targets: one entry that lists them on its own (local processes when a cluster is reachable, so that they do not fill the picker). */
  more?: MoreTargets | null;
}

/** One target. */
export interface TargetInfo {
  /** The target path to write in the config, e.g. `sandbox/demo` or `pid/4242`. */
  path: string;
  /** `sandbox`, `pid`, `targetless`, `pod`, `deployment`, … */
  kind: string;
  /** The namespace (Kubernetes targets). */
  namespace?: string | null;
  /** Whether a session can start on it now. */
  available: boolean;
  /** One line for the user: a process's command line, a sandbox's address. */
  detail: string;
}

/** `data` of a `TargetRequired` error. */
export interface TargetRequiredData {
  /** The config that names no target (none: no config file). */
  configPath: string | null;
}

/** Parameters of `mirrord/verifyConfig`: a document (`uri`, open in the editor or on disk) or a text with its format. */
export interface VerifyConfigParams {
  /** A `file://` URI. */
  uri?: string | null;
  /** The config text (instead of `uri`). */
  text?: string | null;
  /** The format of `text` (default `json`). */
  format?: Format | null;
}

/** Result of `mirrord/verifyConfig`: `{"valid", "diagnostics", "config"}` exactly as `mirrord verify-config --output json` prints it. */
export interface VerifyConfigResult {
  /** Whether the config can be used (warnings allowed). */
  valid: boolean;
  /** Every problem, with LSP ranges. */
  diagnostics: ConfigDiagnostic[];
  /** The resolved config when valid. */
  config?: Record<string, unknown> | null;
}
