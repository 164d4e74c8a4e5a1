// Shared test helpers: a workspace-state store in memory, the extension's commands registered
// against the stub `vscode`, and a JSON-RPC endpoint that replays a recorded sidecar transcript.

import assert from 'node:assert/strict';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as vscode from 'vscode';
import { registerCommands, type SidecarHandle } from '../src/commands';
import type { ProgressValue } from '../src/requests';
import { SidecarRequests, type CancellationToken, type RpcEndpoint } from '../src/requests';
import { ActiveSessions, WorkspaceState, type StateStore } from '../src/state';
import { stub, window } from './stub/vscode';

export const EXTENSION_DIR = path.resolve(__dirname, '../..');
export const REPO = path.resolve(EXTENSION_DIR, '../..');

export class MemoryStore implements StateStore {
  readonly values = new Map<string, unknown>();
  get(key: string): unknown {
    return this.values.get(key);
  }
  update(key: string, value: unknown): Promise<void> {
    if (value === undefined) this.values.delete(key);
    else this.values.set(key, value);
    return Promise.resolve();
  }
}

export interface Extension {
  state: WorkspaceState;
  sessions: ActiveSessions;
  store: MemoryStore;
  /** Resolves a launch the way VS Code does, through the registered provider. */
  resolve(folder: string | undefined, config: Record<string, unknown>): Promise<Record<string, unknown> | undefined>;
  /** Fires onDidTerminateDebugSession for a debug session run with `config`. */
  terminate(config: Record<string, unknown> | undefined, parentSession?: unknown): Promise<void>;
}

/** Registers the extension's commands and provider with the stub, over `endpoint`. */
export function activate(endpoint: RpcEndpoint, store = new MemoryStore()): Extension {
  stub.reset();
  const state = new WorkspaceState(store, () => stub.settings.get('mirrord.enabledByDefault') === true);
  const sessions = new ActiveSessions();
  const sidecar: SidecarHandle = {
    requests: () => Promise.resolve(new SidecarRequests(endpoint)),
    restart: () => Promise.resolve(),
  };
  const context = { subscriptions: [] as unknown[] } as unknown as vscode.ExtensionContext;
  registerCommands(context, state, sessions, sidecar, window.createOutputChannel('mirrord') as unknown as vscode.OutputChannel);
  const registered = stub.providers.find((p) => p.type === '*');
  assert.ok(registered, 'a debug configuration provider for every type');
  const provider = registered.provider as vscode.DebugConfigurationProvider;
  return {
    state,
    sessions,
    store,
    async resolve(folder, config) {
      const workspaceFolder = folder === undefined ? undefined : ({ uri: { fsPath: folder }, name: 'workspace', index: 0 } as unknown as vscode.WorkspaceFolder);
      const resolved = await provider.resolveDebugConfigurationWithSubstitutedVariables?.(workspaceFolder, config as vscode.DebugConfiguration);
      return resolved ?? undefined;
    },
    terminate: (config, parentSession) => stub.terminated.fire({ configuration: config ?? {}, parentSession }),
  };
}

/** Lets pending promise callbacks (a notification's button) run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

// ---- transcripts (tests/ide-transcripts, format in its README) ----

export interface Exchange {
  request?: { method: string; params?: unknown };
  requestMatch?: string;
  notification?: { method: string; params?: unknown };
  response?: { result?: unknown; error?: { code: number; message: string; data?: unknown } };
  match?: string;
  notifications?: { method: string; params: unknown }[];
}

export interface Transcript {
  name: string;
  description: string;
  files?: Record<string, string>;
  exchanges: Exchange[];
}

interface TranscriptModule {
  loadTranscripts(): Map<string, Transcript>;
  substitute(value: unknown, vars: Record<string, string>): unknown;
  compare(actual: unknown, expected: unknown, mode: string): string[];
  placeholders(workspaceFolder: string, ide: string): Record<string, string>;
}

/** The shared helper tests/ide-transcripts/transcript.mjs (an ES module). */
export async function transcripts(): Promise<TranscriptModule> {
  return (await import(pathToFileURL(path.join(REPO, 'tests/ide-transcripts/transcript.mjs')).href)) as TranscriptModule;
}

/** The LSP lifecycle is vscode-languageclient's: replays skip it and start at the custom requests. */
const LIFECYCLE = new Set(['initialize', 'initialized', 'shutdown', 'exit']);

/**
 * An endpoint that expects exactly the transcript's requests, in order, and answers each with
 * its recorded response (after its recorded `$/progress` notifications).
 */
export class ReplayEndpoint implements RpcEndpoint {
  readonly sent: { method: string; params: unknown }[] = [];
  private readonly pending: Exchange[];
  private readonly progress = new Map<string, (value: ProgressValue) => void>();

  constructor(
    private readonly module: TranscriptModule,
    readonly transcript: Transcript,
    private readonly vars: Record<string, string>,
  ) {
    this.pending = transcript.exchanges.filter((e) => e.request !== undefined && !LIFECYCLE.has(e.request.method));
  }

  request(method: string, params: unknown, _token?: CancellationToken): Promise<unknown> {
    // What goes on the wire: undefined members vanish.
    const wire: unknown = params === undefined ? undefined : JSON.parse(JSON.stringify(params));
    this.sent.push({ method, params: wire });
    const next = this.pending.shift();
    assert.ok(next?.request, `${this.transcript.name}: unexpected request ${method} ${JSON.stringify(wire)}`);
    assert.equal(method, next.request.method, `${this.transcript.name}: request ${this.sent.length}`);
    const expected = this.module.substitute(next.request.params, this.vars);
    if (expected === undefined) {
      assert.equal(wire, undefined, `${this.transcript.name}: ${method} takes no params`);
    } else {
      const problems = this.module.compare(wire, expected, next.requestMatch ?? 'exact');
      assert.deepEqual(problems, [], `${this.transcript.name}: ${method} params differ from the recording`);
    }
    const workDoneToken = typeof wire === 'object' && wire !== null && 'workDoneToken' in wire ? String(wire.workDoneToken) : '';
    for (const notification of next.notifications ?? []) {
      if (notification.method !== '$/progress') continue;
      const delivered = this.module.substitute(notification.params, { ...this.vars, workDoneToken }) as { token: string; value: ProgressValue };
      this.progress.get(delivered.token)?.(delivered.value);
    }
    const response = this.module.substitute(next.response, this.vars) as NonNullable<Exchange['response']>;
    if (response.error !== undefined) return Promise.reject(response.error);
    return Promise.resolve(response.result);
  }

  onProgress(token: string, handler: (value: ProgressValue) => void): { dispose(): void } {
    this.progress.set(token, handler);
    return { dispose: () => this.progress.delete(token) };
  }

  /** Every recorded request was sent. */
  assertDone(): void {
    assert.deepEqual(this.pending.map((e) => e.request?.method), [], `${this.transcript.name}: requests the client did not send`);
  }
}

/** A replay of transcript `name` for a workspace folder at `folder`. */
export async function replay(name: string, folder: string): Promise<ReplayEndpoint> {
  const module = await transcripts();
  const transcript = module.loadTranscripts().get(name);
  assert.ok(transcript, `transcript ${name} exists`);
  return new ReplayEndpoint(module, transcript, module.placeholders(folder, 'vscode'));
}
