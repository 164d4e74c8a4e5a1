// VS Code's side of the launch and error interfaces, the debug configuration provider for every
// debugger type, and the end of a mirrord session when its debug session terminates.

import * as vscode from 'vscode';
import { SHOW_LOGS, sessionLog, showSidecarError, type ErrorUi } from './errors';
import { resolveLaunch, SESSION_ID_KEY, type LaunchDeps, type LaunchUi } from './launch';
import type { SidecarRequests } from './requests';
import type { ActiveSessions } from './state';
import type { PickItem } from './targetPick';

export function errorUi(output: vscode.OutputChannel): ErrorUi {
  return {
    showErrorMessage: (message, ...buttons) => vscode.window.showErrorMessage(message, ...buttons),
    showLogs: () => {
      output.show(true);
    },
    openAt: async (file, range) => {
      const document = await vscode.workspace.openTextDocument(vscode.Uri.file(file));
      const selection = new vscode.Range(range.start.line, range.start.character, range.end.line, range.end.character);
      return vscode.window.showTextDocument(document, { selection });
    },
    openLog: async (file) => {
      const document = await vscode.workspace.openTextDocument(vscode.Uri.file(file));
      return vscode.window.showTextDocument(document, { preview: true });
    },
  };
}

interface VscodePickItem extends vscode.QuickPickItem {
  item: PickItem;
}

export function launchUi(output: vscode.OutputChannel): LaunchUi {
  const errors = errorUi(output);
  return {
    pick: async (items, title) => {
      const picks: VscodePickItem[] = items.map((item) => ({
        label: item.label,
        ...(item.description === undefined ? {} : { description: item.description }),
        ...(item.detail === undefined ? {} : { detail: item.detail }),
        ...(item.separator === true ? { kind: vscode.QuickPickItemKind.Separator } : {}),
        item,
      }));
      const picked = await vscode.window.showQuickPick(picks, { title, matchOnDescription: true, matchOnDetail: true });
      return picked?.item;
    },
    pickNamespace: (namespaces, current) =>
      vscode.window.showQuickPick(namespaces, {
        title: 'mirrord: namespace',
        ...(current === undefined ? {} : { placeHolder: `now ${current}` }),
      }),
    withProgress: (title, task) =>
      vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, (progress, token) =>
        task((message) => {
          progress.report({ message });
        }, token),
      ),
    showError: (error) => {
      output.appendLine(`error ${error.code}: ${error.message}`);
      const log = sessionLog(error);
      if (log !== undefined) output.appendLine(`  log: ${log}`);
      void showSidecarError(error, errors);
    },
    showWarning: (message) => {
      void vscode.window.showWarningMessage(`mirrord: ${message}`, SHOW_LOGS).then((clicked) => {
        if (clicked === SHOW_LOGS) output.show(true);
      });
    },
    log: (line) => {
      output.appendLine(line);
    },
  };
}

/** The provider for `*`: every launch goes through `resolveLaunch`. */
export class MirrordDebugProvider implements vscode.DebugConfigurationProvider {
  constructor(private readonly deps: LaunchDeps) {}

  async resolveDebugConfigurationWithSubstitutedVariables(
    folder: vscode.WorkspaceFolder | undefined,
    config: vscode.DebugConfiguration,
  ): Promise<vscode.DebugConfiguration | undefined> {
    const resolved = await resolveLaunch(folder?.uri.fsPath, config, this.deps);
    return resolved as vscode.DebugConfiguration | undefined;
  }
}

/** Ends the mirrord session of a top-level debug session when it terminates. */
export function endSessionOnTerminate(requests: () => Promise<SidecarRequests>, sessions: ActiveSessions, output: vscode.OutputChannel): vscode.Disposable {
  return vscode.debug.onDidTerminateDebugSession(async (session) => {
    const sessionId: unknown = session.configuration[SESSION_ID_KEY];
    if (typeof sessionId !== 'string' || session.parentSession !== undefined) return;
    sessions.ended(sessionId);
    try {
      const { ended } = await (await requests()).endSession(sessionId);
      output.appendLine(`session ${sessionId} ${ended ? 'ended' : 'had already ended'}`);
    } catch (error) {
      output.appendLine(`session ${sessionId} could not be ended: ${error instanceof Error ? error.message : String(error)}`);
    }
  });
}
