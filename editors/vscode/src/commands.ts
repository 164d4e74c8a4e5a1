// The status-bar toggle and the palette commands (category "mirrord"), each one request to the
// sidecar or one piece of UI, plus the debug provider registration.

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as vscode from 'vscode';
import { chooseTarget, type LaunchDeps } from './launch';
import type { SidecarRequests } from './requests';
import { SidecarError } from './requests';
import type { ActiveSessions, WorkspaceState } from './state';
import { endSessionOnTerminate, launchUi, MirrordDebugProvider } from './ui';

export const Commands = {
  toggle: 'mirrord.toggle',
  selectTarget: 'mirrord.selectTarget',
  openConfiguration: 'mirrord.openConfiguration',
  selectActiveConfiguration: 'mirrord.selectActiveConfiguration',
  showLogs: 'mirrord.showLogs',
  restartSidecar: 'mirrord.restartSidecar',
} as const;

/** The command the status-bar item runs. */
export const STATUS_BAR_COMMAND = Commands.toggle;

/** What the commands need of the sidecar process. */
export interface SidecarHandle {
  requests(): Promise<SidecarRequests>;
  restart(): Promise<void>;
}

/** The files `mirrord/patchLaunchConfig` finds by itself, in its order. */
const DEFAULT_CONFIG_FILES = ['json', 'toml', 'yaml', 'yml'].map((ext) => path.join('.mirrord', `mirrord.${ext}`));

/** Every mirrord config file pattern, for "Select Active Configuration". */
const CONFIG_GLOB = '**/{mirrord.json,*.mirrord.json,.mirrord/*.json,.mirrord/*.toml,.mirrord/*.yaml,.mirrord/*.yml}';

/** What "Open Configuration" writes when the folder has no config (JSON with comments). */
export const STARTER_CONFIG = `// mirrord configuration. Completion and hover work on every key; see also \`mirrord schema\`.
{
  // The target your process runs in the context of: "sandbox/NAME", "pid/N" or "targetless".
  // Without one, mirrord asks when you start debugging.
  // "target": "sandbox/demo",
  "feature": {
    // Read files from the target's file system ("local" keeps them on this machine).
    "fs": "read",
    // Give your process the target's environment variables.
    "env": true,
    "network": {
      // "mirror" copies the target's incoming traffic to your process; "steal" takes it over.
      "incoming": "mirror",
      // Outgoing connections and DNS lookups leave from the target.
      "outgoing": true
    }
  }
}
`;

function updateStatusBar(item: vscode.StatusBarItem, state: WorkspaceState, sessions: ActiveSessions): void {
  const enabled = state.enabled;
  const running = sessions.running;
  item.text = running.length > 0 ? `$(plug) mirrord: ${running.join(', ')}` : enabled ? '$(plug) mirrord' : '$(debug-disconnect) mirrord';
  const lines = [enabled ? 'mirrord is on: debug sessions run in the target\'s context' : 'mirrord is off', 'Click to toggle'];
  for (const target of running) lines.push(`session running on ${target}`);
  if (state.selectedTarget !== undefined) lines.push(`target: ${state.selectedTarget}`);
  if (state.activeConfiguration !== undefined) lines.push(`configuration: ${state.activeConfiguration}`);
  item.tooltip = lines.join('\n');
}

async function pickFolder(): Promise<vscode.WorkspaceFolder | undefined> {
  const folders = vscode.workspace.workspaceFolders ?? [];
  if (folders.length <= 1) return folders[0];
  return vscode.window.showWorkspaceFolderPick({ placeHolder: 'mirrord: which folder?' });
}

/** Opens the active configuration, else the folder's default one, else creates `.mirrord/mirrord.json`. */
async function openConfiguration(state: WorkspaceState): Promise<void> {
  let file = state.activeConfiguration;
  if (file === undefined) {
    const folder = await pickFolder();
    if (folder === undefined) {
      void vscode.window.showErrorMessage('mirrord: open a folder first');
      return;
    }
    const existing = DEFAULT_CONFIG_FILES.map((name) => path.join(folder.uri.fsPath, name)).find((candidate) => existsSync(candidate));
    file = existing ?? path.join(folder.uri.fsPath, DEFAULT_CONFIG_FILES[0] ?? '');
    if (existing === undefined) {
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, STARTER_CONFIG, { flag: 'wx' });
    }
  }
  await vscode.window.showTextDocument(vscode.Uri.file(file));
}

async function selectActiveConfiguration(state: WorkspaceState): Promise<void> {
  const files = await vscode.workspace.findFiles(CONFIG_GLOB, '**/node_modules/**');
  const defaultItem = { label: '$(search) The folder\'s default', description: '.mirrord/mirrord.{json,toml,yaml,yml}', file: undefined };
  const items = [defaultItem, ...files.map((uri) => ({ label: vscode.workspace.asRelativePath(uri), description: '', file: uri.fsPath }))];
  const picked = await vscode.window.showQuickPick(items, { title: 'mirrord: active configuration' });
  if (picked !== undefined) await state.setActiveConfiguration(picked.file);
}

/** Registers the status bar, the commands and the debug provider. */
export function registerCommands(
  context: vscode.ExtensionContext,
  state: WorkspaceState,
  sessions: ActiveSessions,
  sidecar: SidecarHandle,
  output: vscode.OutputChannel,
): void {
  const ui = launchUi(output);
  const deps: LaunchDeps = { state, sessions, requests: () => sidecar.requests(), ui };

  const statusBar = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 0);
  statusBar.name = 'mirrord';
  statusBar.command = STATUS_BAR_COMMAND;
  const refresh = (): void => {
    updateStatusBar(statusBar, state, sessions);
  };
  refresh();
  statusBar.show();
  context.subscriptions.push(statusBar, state.onDidChange(refresh), sessions.onDidChange(refresh));

  const register = (command: string, run: () => Promise<unknown>): void => {
    context.subscriptions.push(
      vscode.commands.registerCommand(command, async () => {
        try {
          await run();
        } catch (error) {
          ui.showError(SidecarError.from(error));
        }
      }),
    );
  };
  register(Commands.toggle, () => state.toggle());
  register(Commands.selectTarget, async () => {
    const picked = await chooseTarget(deps, (await pickFolder())?.uri.fsPath, state.activeConfiguration, true);
    if (picked.kind === 'target') await state.setSelectedTarget(picked.path);
    if (picked.kind === 'fromConfig') await state.setSelectedTarget(undefined);
  });
  register(Commands.openConfiguration, () => openConfiguration(state));
  register(Commands.selectActiveConfiguration, () => selectActiveConfiguration(state));
  register(Commands.showLogs, () => {
    output.show(true);
    return Promise.resolve();
  });
  register(Commands.restartSidecar, () => sidecar.restart());

  context.subscriptions.push(
    vscode.debug.registerDebugConfigurationProvider('*', new MirrordDebugProvider(deps)),
    endSessionOnTerminate(() => sidecar.requests(), sessions, output),
  );
}
