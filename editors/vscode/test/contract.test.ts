// Contract test: the real `mirrord ide` binary ($MIRRORD_BIN, default ../../target/debug/mirrord)
// over vscode-jsonrpc, driven by the extension's own provider and request code (with the stub
// `vscode` for the UI). A python (debugpy) launch is resolved against the sandbox pod
// `vscode-ext`, python3 runs with the returned environment and sees the pod's file and
// variables, and the debug session's end ends the mirrord session. Needs root (sandbox pods).

import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import * as rpc from 'vscode-jsonrpc/node';
import { STARTER_CONFIG } from '../src/commands';
import { SESSION_ID_KEY } from '../src/launch';
import type { SessionEventParams } from '../src/protocol';
import type { ProgressValue } from '../src/requests';
import type { RpcEndpoint } from '../src/requests';
import { activate, EXTENSION_DIR, type Extension } from './helpers';
import { stub, type StubQuickPickItem } from './stub/vscode';

const BIN = path.resolve(EXTENSION_DIR, process.env.MIRRORD_BIN ?? '../../target/debug/mirrord');
const SANDBOX = 'vscode-ext';

let workspace = '';
let connection: rpc.MessageConnection | undefined;
const events: SessionEventParams[] = [];

function mirrord(...args: string[]): string {
  return execFileSync(BIN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A vscode-jsonrpc connection as the extension's RpcEndpoint (params omitted when undefined). */
function endpointOf(conn: rpc.MessageConnection): RpcEndpoint {
  return {
    request: (method, params, token) => {
      // As in src/sidecar.ts: an undefined trailing argument would be sent as a parameter.
      const cancel = token as rpc.CancellationToken | undefined;
      if (params === undefined) return cancel === undefined ? conn.sendRequest(method) : conn.sendRequest(method, cancel);
      return cancel === undefined ? conn.sendRequest(method, params) : conn.sendRequest(method, params, cancel);
    },
    onProgress: (token, handler) => conn.onProgress(new rpc.ProgressType<ProgressValue>(), token, handler),
  };
}

before(async () => {
  assert.equal(process.getuid?.(), 0, 'the contract test starts a sandbox pod: run it as root');
  mirrord('sandbox', 'up', SANDBOX);
  workspace = realpathSync(mkdtempSync(path.join(tmpdir(), 'mirrord-vscode-')));
  const child = spawn(BIN, ['ide'], { stdio: ['pipe', 'pipe', 'inherit'] });
  connection = rpc.createMessageConnection(new rpc.StreamMessageReader(child.stdout), new rpc.StreamMessageWriter(child.stdin));
  connection.onNotification('mirrord/sessionEvent', (event: SessionEventParams) => {
    events.push(event);
  });
  connection.listen();
  await connection.sendRequest('initialize', {
    processId: process.pid,
    rootUri: pathToFileURL(workspace).href,
    workspaceFolders: [{ uri: pathToFileURL(workspace).href, name: 'workspace' }],
    capabilities: { window: { workDoneProgress: true } },
  });
  await connection.sendNotification('initialized', {});
});

after(async () => {
  if (connection !== undefined) {
    await connection.sendRequest('shutdown');
    await connection.sendNotification('exit');
    connection.dispose();
  }
  mirrord('sandbox', 'down', SANDBOX);
  if (workspace !== '') rmSync(workspace, { recursive: true, force: true });
});

test('the starter config of "Open Configuration" is valid for the sidecar', async () => {
  assert.ok(connection);
  const report = await connection.sendRequest<{ valid: boolean; diagnostics: unknown[] }>('mirrord/verifyConfig', { text: STARTER_CONFIG, format: 'json' });
  assert.deepEqual(report.diagnostics, []);
  assert.equal(report.valid, true);
});

test('a python launch resolved by the extension runs in the sandbox pod', async () => {
  assert.ok(connection);
  const extension: Extension = activate(endpointOf(connection));
  await extension.state.toggle();
  stub.quickPick = (items) => (items as StubQuickPickItem[]).find((item) => item.label === `sandbox/${SANDBOX}`);
  const launch = { type: 'debugpy', request: 'launch', name: 'app', program: path.join(workspace, 'app.py'), console: 'integratedTerminal', env: { APP_MODE: 'dev' } };

  const resolved = await extension.resolve(workspace, launch);
  assert.deepEqual(stub.callsTo('showErrorMessage'), [], 'no error was shown');
  assert.ok(resolved, 'the launch was resolved');
  assert.equal(stub.callsTo('showQuickPick').length, 1, 'no target in the (absent) config: the quick-pick was shown');
  const sessionId = resolved[SESSION_ID_KEY];
  assert.equal(typeof sessionId, 'string');
  const env = resolved.env as Record<string, string | null>;
  assert.equal(env.APP_MODE, 'dev', "the configuration's own variables stay");
  assert.match(env.LD_PRELOAD ?? '', /(^|\/)libmirrord_layer\.so(:|$)/, 'the layer is preloaded');
  assert.match(env.MIRRORD_LAYER_INTPROXY_ADDR ?? '', /^127\.0\.0\.1:\d+$/, 'the intproxy address');
  const config = JSON.parse(env.MIRRORD_RESOLVED_CONFIG ?? 'null') as { target: { kind: string; name: string }; feature: { network: { outgoing: { ignore_localhost: boolean } } } };
  assert.deepEqual(config.target, { kind: 'sandbox', name: SANDBOX }, 'the resolved config names the picked target');
  assert.equal(config.feature.network.outgoing.ignore_localhost, true, 'debugpy reaches its adapter over loopback');
  assert.ok(stub.callsTo('progress.report').length > 0, "the sidecar's $/progress reached the notification");

  // The debuggee, started the way the debug adapter does: its environment overlaid with `env`.
  const debuggeeEnv: Record<string, string> = { ...(process.env as Record<string, string>) };
  for (const [name, value] of Object.entries(env)) {
    if (value === null) Reflect.deleteProperty(debuggeeEnv, name);
    else debuggeeEnv[name] = value;
  }
  const script = 'import os\nprint(open("/app/data/greeting.txt").read(), end="")\nprint(os.environ["SANDBOX_GREETING"])\n';
  const run = spawnSync('python3', ['-c', script], { env: debuggeeEnv, encoding: 'utf8', timeout: 60000 });
  assert.equal(run.status, 0, `python3 failed under the layer:\n${run.stderr}`);
  assert.equal(run.stdout, `hello from sandbox ${SANDBOX}\nhello from sandbox ${SANDBOX}\n`);

  // The debug session terminates: the extension ends the mirrord session.
  await extension.terminate(resolved);
  assert.ok(stub.output.includes(`session ${String(sessionId)} ended`), stub.output.join('\n'));
  await new Promise<void>((resolve) => {
    const check = (): void => {
      if (events.some((e) => e.sessionId === sessionId && e.kind === 'ended')) resolve();
      else setTimeout(check, 50);
    };
    check();
  });
});
