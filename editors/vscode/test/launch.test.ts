// The debug configuration provider's decision table, through the registered provider and the
// stub `vscode`: recorded sidecar transcripts where the sidecar is involved, a scripted
// endpoint for the rest.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SESSION_ID_KEY } from '../src/launch';
import { ErrorCodes } from '../src/protocol';
import type { CancellationToken, ProgressValue, RpcEndpoint } from '../src/requests';
import { activate, replay, settle, type ReplayEndpoint } from './helpers';
import { stub, type StubQuickPickItem } from './stub/vscode';

const FOLDER = '/home/dev/api';

const PYTHON = { type: 'debugpy', request: 'launch', name: 'app', program: `${FOLDER}/app.py`, console: 'integratedTerminal' };

/** An endpoint answering with `answer`, recording the requests. */
function scripted(answer: (method: string, params: unknown, token?: CancellationToken) => Promise<unknown>): RpcEndpoint & { sent: { method: string; params: unknown }[] } {
  const sent: { method: string; params: unknown }[] = [];
  return {
    sent,
    request: (method, params, token) => {
      sent.push({ method, params });
      return answer(method, params, token);
    },
    onProgress: (_token: string, _handler: (value: ProgressValue) => void) => ({ dispose: () => undefined }),
  };
}

/** The sidecar's answer for a configuration it leaves alone. */
const untouched = (method: string, params: unknown) =>
  Promise.resolve(method === 'mirrord/patchLaunchConfig' ? { launchConfig: (params as { launchConfig: unknown }).launchConfig, sessionId: null, warnings: ['left alone'] } : null);

async function enabled(endpoint: RpcEndpoint) {
  const extension = activate(endpoint);
  await extension.state.toggle();
  assert.equal(extension.state.enabled, true);
  return extension;
}

function pickByLabel(label: string) {
  return (items: readonly StubQuickPickItem[] | readonly string[]) => (items as StubQuickPickItem[]).find((item) => item.label === label);
}

test('disabled: the configuration runs untouched and the sidecar is not asked', async () => {
  const endpoint = scripted(untouched);
  const extension = activate(endpoint);
  assert.deepEqual(await extension.resolve(FOLDER, PYTHON), PYTHON);
  assert.deepEqual(endpoint.sent, []);
  assert.deepEqual(stub.callsTo('withProgress'), []);
});

test('disabled but env.MIRRORD_ACTIVE=1: the sidecar patches it', async () => {
  const endpoint = scripted((_method, params) =>
    Promise.resolve({ launchConfig: { ...(params as { launchConfig: object }).launchConfig, env: { LD_PRELOAD: 'layer.so' } }, sessionId: 'ide-7', warnings: [] }),
  );
  const extension = activate(endpoint);
  const config = { ...PYTHON, env: { MIRRORD_ACTIVE: '1' } };
  const resolved = await extension.resolve(FOLDER, config);
  assert.equal(endpoint.sent.length, 1);
  assert.equal(endpoint.sent[0]?.method, 'mirrord/patchLaunchConfig');
  assert.deepEqual(resolved?.env, { LD_PRELOAD: 'layer.so' });
  assert.equal(resolved[SESSION_ID_KEY], 'ide-7');
});

test('enabled with env.MIRRORD_ACTIVE=0, and child sessions: the sidecar decides, its untouched answer runs', async () => {
  for (const config of [{ ...PYTHON, env: { MIRRORD_ACTIVE: '0' } }, { type: 'pwa-node', request: 'launch', name: 'child', __parentId: 'abc' }]) {
    const endpoint = scripted(untouched);
    const extension = await enabled(endpoint);
    const resolved = await extension.resolve(FOLDER, config);
    assert.deepEqual(resolved, config, 'no session key is added');
    assert.deepEqual(endpoint.sent.map((s) => s.method), ['mirrord/patchLaunchConfig']);
    assert.deepEqual(stub.callsTo('showErrorMessage'), []);
    assert.deepEqual(stub.output, ['warning: left alone']);
  }
});

test('an attach request is sent as recorded and returned untouched (transcript patch-untouched)', async () => {
  const endpoint = await replay('patch-untouched', FOLDER);
  const extension = await enabled(endpoint);
  const attach = { type: 'debugpy', request: 'attach', name: 'attach', connect: { host: 'localhost', port: 5678 } };
  assert.deepEqual(await extension.resolve(FOLDER, attach), attach);
  endpoint.assertDone();
  assert.deepEqual(stub.callsTo('showQuickPick'), []);
});

async function pickTarget(endpoint: ReplayEndpoint) {
  const extension = await enabled(endpoint);
  stub.quickPick = pickByLabel('sandbox/ide-transcripts');
  const resolved = await extension.resolve(FOLDER, PYTHON);
  return { extension, resolved };
}

test('no target: the quick-pick lists the targets, the pick is sent, the session ends with the debug session (transcript patch-pick-target)', async () => {
  const endpoint = await replay('patch-pick-target', FOLDER);
  const { extension, resolved } = await pickTarget(endpoint);
  assert.ok(resolved);
  assert.equal(resolved[SESSION_ID_KEY], 'ide-1');
  assert.equal((resolved.env as Record<string, string>).SANDBOX_GREETING, 'hello from sandbox ide-transcripts');
  assert.equal(resolved.program, PYTHON.program);
  const [items] = stub.callsTo('showQuickPick')[0] as [StubQuickPickItem[]];
  assert.deepEqual(
    items.map((i) => i.label),
    ['Sandbox pods', 'sandbox/ide-transcripts', 'No target', 'targetless'],
    "the sidecar's groups and titles, no namespace entry without namespaces",
  );
  const listed = endpoint.sent.find((s) => s.method === 'mirrord/listTargets');
  assert.deepEqual(listed?.params, { workspaceFolder: FOLDER }, 'the sidecar keeps the recents of this folder');
  assert.match(stub.statusBarItems[0]?.text ?? '', /mirrord: sandbox\/ide-transcripts/, 'the status bar shows the session');
  // The sidecar's progress messages reached the notification.
  assert.ok(stub.callsTo('progress.report').some(([value]) => (value as { message: string }).message === 'starting the agent'));

  // A child debug session ending leaves the session alone; the top-level one ends it, twice is harmless.
  await extension.terminate(resolved, { id: 'parent' });
  assert.match(stub.statusBarItems[0]?.text ?? '', /sandbox/, 'a child session ending leaves the status bar');
  await extension.terminate(resolved);
  assert.doesNotMatch(stub.statusBarItems[0]?.text ?? '', /sandbox/, 'the session left the status bar');
  await extension.terminate(resolved);
  endpoint.assertDone();
  assert.ok(stub.output.includes('session ide-1 ended'));
  assert.ok(stub.output.includes('session ide-1 had already ended'));
});

test("the sidecar's groups render in order; \"Local processes…\" and \"switch namespace\" list again", async () => {
  const target = (path: string, kind: string, available = true) => ({ path, kind, available, detail: path });
  const listed = {
    groups: [
      { id: 'recent', title: 'Recently used', targets: [target('sandbox/b', 'sandbox')] },
      { id: 'sandbox', title: 'Sandbox pods', targets: [target('sandbox/a', 'sandbox')] },
      { id: 'pid', title: 'Local processes', targets: [], more: { label: 'Local processes…', detail: '2 processes on this machine', kinds: ['pid'] } },
      { id: 'targetless', title: 'No target', targets: [target('targetless', 'targetless')] },
    ],
    namespaces: ['default', 'staging'],
    currentNamespace: 'default',
  };
  const processes = { groups: [{ id: 'pid', title: 'Local processes', targets: [target('pid/42', 'pid', false), target('pid/43', 'pid')] }], namespaces: ['default', 'staging'], currentNamespace: 'staging' };
  let patches = 0;
  let lists = 0;
  const endpoint = scripted((method, params) => {
    if (method === 'mirrord/listTargets') {
      lists += 1;
      return Promise.resolve(lists === 3 ? processes : listed);
    }
    patches += 1;
    if (patches === 1) return Promise.reject({ code: ErrorCodes.targetRequired, message: 'no target' });
    return Promise.resolve({ launchConfig: (params as { launchConfig: unknown }).launchConfig, sessionId: 'ide-2', target: 'pid/43', warnings: ['one', 'two'] });
  });
  const extension = await enabled(endpoint);
  let picks = 0;
  stub.quickPick = (items) => {
    picks += 1;
    if (picks === 1) return pickByLabel('$(arrow-swap) Switch namespace… (now default)')(items);
    if (picks === 2) return 'staging';
    if (picks === 3) return pickByLabel('$(list-unordered) Local processes…')(items);
    return pickByLabel('pid/43')(items);
  };
  const resolved = await extension.resolve(FOLDER, PYTHON);
  assert.equal(resolved?.[SESSION_ID_KEY], 'ide-2');
  const [first] = stub.callsTo('showQuickPick')[0] as [StubQuickPickItem[]];
  assert.deepEqual(first.map((i) => [i.label, i.description]), [
    ['Recently used', undefined],
    ['sandbox/b', undefined],
    ['Sandbox pods', undefined],
    ['sandbox/a', undefined],
    ['Local processes', undefined],
    ['$(list-unordered) Local processes…', undefined],
    ['No target', undefined],
    ['targetless', undefined],
    ['', undefined],
    ['$(arrow-swap) Switch namespace… (now default)', undefined],
  ]);
  const [last] = stub.callsTo('showQuickPick').at(-1) as [StubQuickPickItem[]];
  assert.deepEqual(last.map((i) => [i.label, i.description]).slice(0, 3), [['Local processes', undefined], ['pid/42', 'not available'], ['pid/43', undefined]]);
  assert.deepEqual(endpoint.sent.map((s) => [s.method, s.params]).slice(0, 4), [
    ['mirrord/patchLaunchConfig', endpoint.sent[0]?.params],
    ['mirrord/listTargets', { workspaceFolder: FOLDER }],
    ['mirrord/listTargets', { namespace: 'staging', workspaceFolder: FOLDER }],
    ['mirrord/listTargets', { namespace: 'staging', kinds: ['pid'], workspaceFolder: FOLDER }],
  ]);
  assert.equal((endpoint.sent[4]?.params as { target: string }).target, 'pid/43');
  assert.deepEqual(stub.callsTo('showWarningMessage'), [['mirrord: one · two', 'Show Logs']], "the session's warnings as one notification with Show Logs");
  assert.match(stub.statusBarItems[0]?.text ?? '', /mirrord: pid\/43/);
});

test('dismissing the target quick-pick cancels the launch without an error', async () => {
  const endpoint = await replay('patch-pick-target', FOLDER);
  const extension = await enabled(endpoint);
  stub.quickPick = () => undefined;
  assert.equal(await extension.resolve(FOLDER, PYTHON), undefined);
  assert.deepEqual(endpoint.sent.map((s) => s.method), ['mirrord/patchLaunchConfig', 'mirrord/listTargets']);
  assert.deepEqual(stub.callsTo('showErrorMessage'), []);
});

test('cancelling the progress notification cancels the request: no launch, no error', async () => {
  const endpoint = scripted((_method, _params, token) =>
    new Promise((_resolve, reject) => {
      token?.onCancellationRequested(() => {
        reject({ code: ErrorCodes.requestCancelled, message: 'cancelled' });
      });
    }),
  );
  const extension = await enabled(endpoint);
  stub.cancelProgress = true;
  assert.equal(await extension.resolve(FOLDER, PYTHON), undefined);
  assert.deepEqual(stub.callsTo('showErrorMessage'), []);
});

test('the selected target and the active configuration go with every launch', async () => {
  const endpoint = scripted(untouched);
  const extension = await enabled(endpoint);
  await extension.state.setSelectedTarget('sandbox/demo');
  await extension.state.setActiveConfiguration(`${FOLDER}/.mirrord/staging.toml`);
  await extension.resolve(FOLDER, PYTHON);
  assert.deepEqual(endpoint.sent[0]?.params, {
    launchConfig: PYTHON,
    workspaceFolder: FOLDER,
    ide: 'vscode',
    configPath: `${FOLDER}/.mirrord/staging.toml`,
    target: 'sandbox/demo',
    workDoneToken: (endpoint.sent[0]?.params as { workDoneToken: string }).workDoneToken,
  });
});

test('no workspace folder: an error, and the launch does not run', async () => {
  const endpoint = scripted(untouched);
  const extension = await enabled(endpoint);
  assert.equal(await extension.resolve(undefined, PYTHON), undefined);
  assert.deepEqual(endpoint.sent, []);
  assert.equal(stub.callsTo('showErrorMessage').length, 1);
  await settle();
});
