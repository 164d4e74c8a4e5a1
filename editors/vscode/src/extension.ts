// The extension's entry point: wires the sidecar, the per-workspace state and the commands.

import * as vscode from 'vscode';
import { registerCommands } from './commands';
import { Sidecar } from './sidecar';
import { ActiveSessions, WorkspaceState } from './state';

export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel('mirrord');
  const sessions = new ActiveSessions();
  const sidecar = new Sidecar(context.extensionPath, output, sessions);
  const state = new WorkspaceState(context.workspaceState, () =>
    vscode.workspace.getConfiguration('mirrord').get<boolean>('enabledByDefault', false),
  );
  context.subscriptions.push(output, sidecar);
  registerCommands(context, state, sessions, sidecar, output);
  sidecar.startNow().catch((error: unknown) => {
    output.appendLine(`the sidecar did not start: ${error instanceof Error ? error.message : String(error)}`);
  });
}

export function deactivate(): void {
  // The sidecar is stopped through context.subscriptions.
}
