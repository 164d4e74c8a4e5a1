// Every shared transcript (tests/ide-transcripts) is either replayed against the extension's
// client code here or in launch/errors tests, or named below with the reason it does not apply.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Commands } from '../src/commands';
import { SESSION_ID_KEY } from '../src/launch';
import { Methods } from '../src/protocol';
import { activate, replay, transcripts } from './helpers';
import { stub, type StubQuickPickItem } from './stub/vscode';

const FOLDER = '/home/dev/api';

/** Where each transcript is replayed, or why it is not. */
const COVERAGE: Record<string, string> = {
  'initialize-schema': 'checked below: the capabilities list every method the extension sends (the lifecycle itself is vscode-languageclient\'s)',
  'list-targets': 'replayed below (Select Target)',
  'verify-config-errors': 'not sent by VS Code: diagnostics come over standard LSP through vscode-languageclient',
  'verify-config-uri': 'not sent by VS Code: diagnostics come over standard LSP through vscode-languageclient',
  'open-config-diagnostics': 'standard LSP, handled by vscode-languageclient',
  'patch-config-invalid': 'replayed in errors.test',
  'patch-config-unreadable': 'replayed in errors.test',
  'patch-outside-workspace': 'replayed in errors.test',
  'patch-session-failed': 'replayed in errors.test',
  'patch-untouched': 'replayed in launch.test',
  'patch-pick-target': 'replayed in launch.test',
  'end-session-unknown': 'replayed below (a debug session with an unknown mirrord session terminates)',
  'unknown-method': 'the extension sends only the methods the sidecar lists (checked below)',
};

test('every transcript is accounted for', async () => {
  const names = [...(await transcripts()).loadTranscripts().keys()].sort();
  assert.deepEqual(names, Object.keys(COVERAGE).sort());
});

test('initialize-schema: the sidecar serves every custom method the extension uses', async () => {
  const transcript = (await transcripts()).loadTranscripts().get('initialize-schema');
  const result = transcript?.exchanges[0]?.response?.result as { capabilities: { experimental: { mirrord: { requests: string[]; notifications: string[] } } } };
  const served = result.capabilities.experimental.mirrord;
  for (const method of [Methods.listTargets, Methods.patchLaunchConfig, Methods.endSession]) assert.ok(served.requests.includes(method), method);
  assert.ok(served.notifications.includes(Methods.sessionEvent));
});

test("list-targets: Select Target shows the sidecar's groups and keeps the pick", async () => {
  const endpoint = await replay('list-targets', FOLDER);
  const extension = activate(endpoint);
  stub.quickPick = (items) => (items as StubQuickPickItem[]).find((item) => item.label === 'sandbox/ide-transcripts');
  await stub.commands.get(Commands.selectTarget)?.();
  endpoint.assertDone();
  assert.equal(extension.state.selectedTarget, 'sandbox/ide-transcripts');
  const [items] = stub.callsTo('showQuickPick')[0] as [StubQuickPickItem[]];
  assert.deepEqual(items.map((i) => i.label), [
    'Sandbox pods', 'sandbox/ide-transcripts', 'Local processes', '${any}', 'No target', 'targetless', '', "$(settings-gear) Use the config's target",
  ]);
  assert.match(stub.statusBarItems[0]?.tooltip ?? '', /target: sandbox\/ide-transcripts/);
});

test('end-session-unknown: ending a session the sidecar does not know is not an error', async () => {
  const endpoint = await replay('end-session-unknown', FOLDER);
  const extension = activate(endpoint);
  await extension.terminate({ type: 'debugpy', request: 'launch', [SESSION_ID_KEY]: 'ide-404' });
  endpoint.assertDone();
  assert.ok(stub.output.includes('session ide-404 had already ended'));
  assert.deepEqual(stub.callsTo('showErrorMessage'), []);
});

test('a debug session without a mirrord session sends nothing when it terminates', async () => {
  const endpoint = await replay('end-session-unknown', FOLDER);
  const extension = activate(endpoint);
  await extension.terminate({ type: 'node', request: 'launch' });
  assert.deepEqual(endpoint.sent, []);
});
