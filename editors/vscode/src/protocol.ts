// The sidecar's custom requests as the extension sees them: method names, shapes and error
// codes from docs/ide-protocol.md. Types only; the sidecar (crates/ide/src/protocol.rs) owns them.

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

/** A debug launch configuration: opaque JSON to the extension. */
export type LaunchConfig = Record<string, unknown>;

export interface ListTargetsParams {
  namespace?: string;
  kinds?: string[];
  configPath?: string;
}

export interface TargetInfo {
  path: string;
  kind: string;
  namespace?: string;
  available: boolean;
  detail: string;
}

export interface ListTargetsResult {
  targets: TargetInfo[];
  currentNamespace?: string;
  namespaces: string[];
}

export interface Position {
  line: number;
  character: number;
}

export interface Range {
  start: Position;
  end: Position;
}

export interface ConfigDiagnostic {
  severity: string;
  message: string;
  path: string;
  range: Range;
  replacement?: string;
}

export interface PatchLaunchConfigParams {
  launchConfig: LaunchConfig;
  workspaceFolder: string;
  configPath?: string;
  target?: string;
  ide: 'vscode';
  workDoneToken?: string;
}

export interface PatchLaunchConfigResult {
  launchConfig: LaunchConfig;
  sessionId: string | null;
  warnings: string[];
}

export interface EndSessionResult {
  ended: boolean;
}

export interface SessionEventParams {
  sessionId: string;
  kind: 'agentLost' | 'ended';
  message: string;
}

/** `$/progress` values (LSP work done progress). */
export interface ProgressValue {
  kind: 'begin' | 'report' | 'end';
  title?: string;
  message?: string;
  percentage?: number;
  cancellable?: boolean;
}

/** `data` of a ConfigInvalid error. */
export interface ConfigInvalidData {
  diagnostics: ConfigDiagnostic[];
  configPath: string | null;
}
