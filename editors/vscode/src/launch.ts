// The decisions of the debug configuration provider, free of VS Code: whether mirrord applies to
// a launch, the target quick-pick when the sidecar needs a target, and what to do with the
// sidecar's answer. The sidecar does the rest (config, targets, environment).

import { ErrorCodes, type LaunchConfig, type ProgressValue } from './protocol';
import { SidecarError, type CancellationToken, type SidecarRequests } from './requests';
import type { WorkspaceState } from './state';
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
  /** A line for the `mirrord` output channel. */
  log(line: string): void;
}

export interface LaunchDeps {
  state: WorkspaceState;
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
      ui.log(`session ${result.sessionId} started for "${String(config.name ?? config.type)}"`);
      return { ...result.launchConfig, [SESSION_ID_KEY]: result.sessionId };
    } catch (thrown) {
      const error = SidecarError.from(thrown);
      if (error.cancelled) return undefined;
      if (error.code === ErrorCodes.targetRequired && target === undefined) {
        const picked = await chooseTarget(deps, configPath);
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
 * The target quick-pick (also the "Select Target" command): lists the targets, lets the user
 * switch namespace, remembers the pick.
 */
export async function chooseTarget(deps: LaunchDeps, configPath: string | undefined, offerConfigTarget = false): Promise<TargetPick> {
  let namespace: string | undefined;
  for (;;) {
    const requests = await deps.requests();
    const listed = await requests.listTargets({
      ...(namespace === undefined ? {} : { namespace }),
      ...(configPath === undefined ? {} : { configPath }),
    });
    const title = namespace === undefined ? 'mirrord: pick a target' : `mirrord: pick a target in ${namespace}`;
    const picked = await deps.ui.pick(targetPickItems(listed, deps.state.recentTargets, offerConfigTarget), title);
    if (picked?.choice === undefined) return { kind: 'dismissed' };
    if (picked.choice.kind === 'fromConfig') return picked.choice;
    if (picked.choice.kind === 'switchNamespace') {
      const chosen = await deps.ui.pickNamespace(listed.namespaces, namespace ?? listed.currentNamespace);
      if (chosen !== undefined) namespace = chosen;
      continue;
    }
    await deps.state.rememberTarget(picked.choice.path);
    return picked.choice;
  }
}
