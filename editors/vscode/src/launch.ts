// The decisions of the debug configuration provider, free of VS Code: whether mirrord applies to
// a launch, the target quick-pick when the sidecar needs a target, and what to do with the
// sidecar's answer. The sidecar does the rest (config, targets, environment).

import { ErrorCodes } from './protocol';
import { SidecarError, type CancellationToken, type LaunchConfig, type ProgressValue, type SidecarRequests } from './requests';
import type { ActiveSessions, WorkspaceState } from './state';
import { targetPickItems, type PickItem } from './targetPick';

/** The key of a patched launch configuration that holds its mirrord session id. */
export const SESSION_ID_KEY = '__mirrordSessionId';

/** The editor operations a launch needs. */
export interface LaunchUi {
  /** Shows the quick-pick; undefined when the user dismissed it. */
  pick(items: PickItem[], title: string): PromiseLike<PickItem | undefined>;
  /** Asks for a namespace among `namespaces`; undefined when dismissed. */
  pickNamespace(namespaces: string[], current: string | undefined): PromiseLike<string | undefined>;
  /** Runs `task` under a cancellable progress notification. */
  withProgress<T>(title: string, task: (report: (message: string) => void, token: CancellationToken) => Promise<T>): PromiseLike<T>;
  /** Shows a failed request (does not wait for the user). */
  showError(error: SidecarError): void;
  /** Shows a launch's warning as a notification with "Show Logs" (does not wait for the user). */
  showWarning(message: string): void;
  /** A line for the `mirrord` output channel. */
  log(line: string): void;
}

export interface LaunchDeps {
  state: WorkspaceState;
  sessions: ActiveSessions;
  requests: () => Promise<SidecarRequests>;
  ui: LaunchUi;
}

/** `env.MIRRORD_ACTIVE` of a launch configuration, if it is set. */
function mirrordActive(config: LaunchConfig): unknown {
  const env = config.env;
  return typeof env === 'object' && env !== null ? (env as Record<string, unknown>).MIRRORD_ACTIVE : undefined;
}

/**
 * Resolves a debug launch: the configuration to run (untouched when mirrord is off, patched by
 * the sidecar otherwise), or undefined to abort the launch (the user cancelled, or an error was
 * shown). Attach requests, child sessions and `MIRRORD_ACTIVE=0` are the sidecar's to decide.
 */
export async function resolveLaunch(folder: string | undefined, config: LaunchConfig, deps: LaunchDeps): Promise<LaunchConfig | undefined> {
  const { state, ui } = deps;
  const active = mirrordActive(config);
  if (!state.enabled && active !== '1' && active !== 1) return config;
  if (folder === undefined) {
    ui.showError(new SidecarError(0, 'debugging with mirrord needs a workspace folder; open one, or turn mirrord off', undefined));
    return undefined;
  }
  const configPath = state.activeConfiguration;
  let target = state.selectedTarget;
  for (;;) {
    try {
      const requests = await deps.requests();
      const result = await ui.withProgress('mirrord', async (report, token) => {
        const patched = await requests.patchLaunchConfig(
          { launchConfig: config, workspaceFolder: folder, ide: 'vscode', ...(configPath === undefined ? {} : { configPath }), ...(target === undefined ? {} : { target }) },
          (value: ProgressValue) => {
            if (value.message !== undefined) report(value.message);
          },
          token,
        );
        if (token.isCancellationRequested && patched.sessionId !== null) {
          // Cancelled just as the answer came: the session is not wanted.
          await requests.endSession(patched.sessionId);
          throw new SidecarError(ErrorCodes.requestCancelled, 'cancelled', undefined);
        }
        return patched;
      });
      for (const warning of result.warnings) ui.log(`warning: ${warning}`);
      if (result.sessionId === null) return result.launchConfig;
      // What the user should know about a session that started: one notification.
      if (result.warnings.length > 0) ui.showWarning(result.warnings.join(' · '));
      ui.log(`session ${result.sessionId} started for "${String(config.name ?? config.type)}"`);
      deps.sessions.started(result.sessionId, result.target ?? 'a target');
      return { ...result.launchConfig, [SESSION_ID_KEY]: result.sessionId };
    } catch (thrown) {
      const error = SidecarError.from(thrown);
      if (error.cancelled) return undefined;
      if (error.code === ErrorCodes.targetRequired && target === undefined) {
        const picked = await chooseTarget(deps, folder, configPath);
        if (picked.kind !== 'target') return undefined;
        target = picked.path;
        continue;
      }
      ui.showError(error);
      return undefined;
    }
  }
}

/** The outcome of the target quick-pick. */
export type TargetPick = { kind: 'target'; path: string } | { kind: 'fromConfig' } | { kind: 'dismissed' };

/**
 * The target quick-pick (also the "Select Target" command): lists the sidecar's groups, lets the
 * user open "Local processes…" or switch namespace. The sidecar remembers the pick once a
 * session starts with it.
 */
export async function chooseTarget(deps: LaunchDeps, folder: string | undefined, configPath: string | undefined, offerConfigTarget = false): Promise<TargetPick> {
  let namespace: string | undefined;
  let kinds: string[] | undefined;
  for (;;) {
    const requests = await deps.requests();
    const listed = await requests.listTargets({
      ...(namespace === undefined ? {} : { namespace }),
      ...(kinds === undefined ? {} : { kinds }),
      ...(configPath === undefined ? {} : { configPath }),
      ...(folder === undefined ? {} : { workspaceFolder: folder }),
    });
    const title = namespace === undefined ? 'mirrord: pick a target' : `mirrord: pick a target in ${namespace}`;
    const picked = await deps.ui.pick(targetPickItems(listed, offerConfigTarget), title);
    if (picked?.choice === undefined) return { kind: 'dismissed' };
    const choice = picked.choice;
    if (choice.kind === 'fromConfig') return choice;
    if (choice.kind === 'more') {
      kinds = choice.kinds;
      continue;
    }
    if (choice.kind === 'switchNamespace') {
      const chosen = await deps.ui.pickNamespace(listed.namespaces, namespace ?? listed.currentNamespace ?? undefined);
      if (chosen !== undefined) namespace = chosen;
      kinds = undefined;
      continue;
    }
    return choice;
  }
}
