// How a failed sidecar request is shown: one error notification with the sidecar's message and
// a "Show Logs" button (the output channel, and the log file the sidecar names for a session that
// failed to start); for an invalid config, the config file is also opened at its first
// diagnostic.

import { ErrorCodes, type ConfigInvalidData, type Range, type SessionFailedData } from './protocol';
import type { SidecarError } from './requests';

export const SHOW_LOGS = 'Show Logs';

/** The editor operations error display needs. */
export interface ErrorUi {
  /** Shows an error notification; resolves with the button clicked, if any. */
  showErrorMessage(message: string, ...buttons: string[]): PromiseLike<string | undefined>;
  showLogs(): void;
  /** Opens `file` with `range` selected. */
  openAt(file: string, range: Range): PromiseLike<unknown>;
  /** Opens a log file the sidecar named. */
  openLog(file: string): PromiseLike<unknown>;
}

/** The log file a SessionFailed error names (the helper that failed to start), if any. */
export function sessionLog(error: SidecarError): string | undefined {
  if (error.code !== ErrorCodes.sessionFailed || typeof error.data !== 'object' || error.data === null) return undefined;
  const log = (error.data as Partial<SessionFailedData>).log;
  return typeof log === 'string' ? log : undefined;
}

/** The file and range of the first diagnostic of a ConfigInvalid error, if it has one. */
export function firstDiagnostic(error: SidecarError): { file: string; range: Range } | undefined {
  if (error.code !== ErrorCodes.configInvalid || typeof error.data !== 'object' || error.data === null) return undefined;
  const data = error.data as Partial<ConfigInvalidData>;
  const first = data.diagnostics?.[0];
  if (typeof data.configPath !== 'string' || first === undefined) return undefined;
  return { file: data.configPath, range: first.range };
}

export async function showSidecarError(error: SidecarError, ui: ErrorUi): Promise<void> {
  const location = firstDiagnostic(error);
  const opened = location === undefined ? undefined : ui.openAt(location.file, location.range);
  const clicked = await ui.showErrorMessage(`mirrord: ${error.message}`, SHOW_LOGS);
  if (clicked === SHOW_LOGS) {
    ui.showLogs();
    const log = sessionLog(error);
    if (log !== undefined) await ui.openLog(log);
  }
  await opened;
}
