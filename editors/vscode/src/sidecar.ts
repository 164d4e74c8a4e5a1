// The `mirrord ide` process behind a vscode-languageclient LanguageClient: found by
// `findSidecarBinary`, started on demand, started again with a back-off when it dies (the user
// is told once), its log in the `mirrord` output channel.

import { accessSync, chmodSync, constants, existsSync } from 'node:fs';
import path from 'node:path';
import * as vscode from 'vscode';
import { CloseAction, ErrorAction, LanguageClient, WorkDoneProgress, type LanguageClientOptions, type ServerOptions } from 'vscode-languageclient/node';
import { findSidecarBinary, RestartBackoff } from './binary';
import type { SidecarHandle } from './commands';
import { SHOW_LOGS } from './errors';
import { Methods, type SessionEventParams } from './protocol';
import { SidecarError, SidecarRequests, type ProgressValue, type RpcEndpoint } from './requests';
import type { ActiveSessions } from './state';

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The documents the sidecar serves (the same patterns as `docs/ide-protocol.md`). */
const DOCUMENT_SELECTOR = [
  { scheme: 'file', pattern: '**/mirrord.json' },
  { scheme: 'file', pattern: '**/*.mirrord.json' },
  { scheme: 'file', pattern: '**/.mirrord/*.{json,toml,yaml,yml}' },
  { language: 'mirrord-config' },
];

/** A LanguageClient as an `RpcEndpoint`. */
function endpoint(client: LanguageClient): RpcEndpoint {
  return {
    request: (method, params, token) => {
      // Both trailing arguments are positional: an undefined one would be sent as a parameter.
      const cancel = token as vscode.CancellationToken | undefined;
      if (params === undefined) return cancel === undefined ? client.sendRequest(method) : client.sendRequest(method, cancel);
      return cancel === undefined ? client.sendRequest(method, params) : client.sendRequest(method, params, cancel);
    },
    onProgress: (token, handler: (value: ProgressValue) => void) => client.onProgress(WorkDoneProgress.type, token, handler),
  };
}

export class Sidecar implements SidecarHandle, vscode.Disposable {
  private client: LanguageClient | undefined;
  private starting: Promise<LanguageClient> | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private disposed = false;
  private readonly backoff = new RestartBackoff();

  constructor(
    private readonly extensionPath: string,
    private readonly output: vscode.OutputChannel,
    private readonly sessions: ActiveSessions,
  ) {}

  async requests(): Promise<SidecarRequests> {
    return new SidecarRequests(endpoint(await this.ready()));
  }

  private ready(): Promise<LanguageClient> {
    this.starting ??= this.start().catch((error: unknown) => {
      this.starting = undefined;
      throw SidecarError.from(error);
    });
    return this.starting;
  }

  private async start(): Promise<LanguageClient> {
    // A .vsix may lose the executable bits of the bundled binaries.
    for (const file of ['mirrord', 'mirrord-agent']) {
      const bundled = path.join(this.extensionPath, 'bin', file);
      if (existsSync(bundled) && !isExecutable(bundled)) chmodSync(bundled, 0o755);
    }
    const settings = vscode.workspace.getConfiguration('mirrord');
    const binary = findSidecarBinary(settings.get<string | null>('binaryPath'), this.extensionPath, process.env.PATH, isExecutable);
    if (binary === undefined) {
      throw new SidecarError(0, 'cannot find the mirrord binary: set `mirrord.binaryPath`, or put `mirrord` on PATH', undefined);
    }
    this.output.appendLine(`starting ${binary} ide`);
    const server: ServerOptions = {
      command: binary,
      args: ['ide'],
      options: { env: { ...process.env, MIRRORD_IDE_LOG: settings.get<string>('logLevel', 'info') } },
    };
    const options: LanguageClientOptions = {
      documentSelector: DOCUMENT_SELECTOR,
      outputChannel: this.output,
      initializationOptions: { diagnosticsDelayMs: settings.get<number>('diagnosticsDelayMs', 100) },
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue }),
        closed: () => {
          this.died();
          return { action: CloseAction.DoNotRestart, handled: true };
        },
      },
    };
    const client = new LanguageClient('mirrord', 'mirrord', server, options);
    client.onNotification(Methods.sessionEvent, (event: SessionEventParams) => {
      this.output.appendLine(`session ${event.sessionId}: ${event.kind}: ${event.message}`);
      if (event.kind === 'ended') this.sessions.ended(event.sessionId);
      if (event.kind === 'agentLost') {
        void vscode.window.showWarningMessage(`mirrord: ${event.message}`, SHOW_LOGS).then((clicked) => {
          if (clicked === SHOW_LOGS) this.output.show(true);
        });
      }
    });
    await client.start();
    this.backoff.started(Date.now());
    this.client = client;
    return client;
  }

  /** The sidecar exited: start it again after the back-off, telling the user the first time. */
  private died(): void {
    this.client = undefined;
    this.starting = undefined;
    // Its sessions ended with it.
    for (const sessionId of this.sessions.ids) this.sessions.ended(sessionId);
    if (this.disposed) return;
    const { delayMs, notify } = this.backoff.died(Date.now());
    this.output.appendLine(`the sidecar exited; starting it again in ${delayMs} ms`);
    if (notify) {
      void vscode.window.showWarningMessage('mirrord: the sidecar exited and is being restarted', SHOW_LOGS).then((clicked) => {
        if (clicked === SHOW_LOGS) this.output.show(true);
      });
    }
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      this.ready().catch((error: unknown) => {
        this.output.appendLine(`the sidecar did not start: ${SidecarError.from(error).message}`);
      });
    }, delayMs);
  }

  /** Starts the sidecar now (at activation: documents open in the editor get diagnostics). */
  async startNow(): Promise<void> {
    await this.ready();
  }

  async restart(): Promise<void> {
    clearTimeout(this.restartTimer);
    const client = this.client;
    this.client = undefined;
    this.starting = undefined;
    this.disposed = true;
    try {
      if (client !== undefined) await client.stop();
    } finally {
      this.disposed = false;
    }
    await this.ready();
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    clearTimeout(this.restartTimer);
    await this.client?.stop();
  }
}
