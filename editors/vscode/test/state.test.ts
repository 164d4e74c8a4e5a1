// Toggle state per workspace, the status-bar item, the sidecar binary lookup and restart back-off.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findSidecarBinary, RestartBackoff } from '../src/binary';
import { Commands, STATUS_BAR_COMMAND } from '../src/commands';
import type { ProgressValue } from '../src/requests';
import { activate, MemoryStore } from './helpers';
import { stub } from './stub/vscode';

const idle = {
  request: () => Promise.resolve(null),
  onProgress: (_token: string, _handler: (value: ProgressValue) => void) => ({ dispose: () => undefined }),
};

test('the toggle starts from mirrord.enabledByDefault and is remembered per workspace', async () => {
  const workspaceA = new MemoryStore();
  const workspaceB = new MemoryStore();
  let extension = activate(idle, workspaceA);
  assert.equal(extension.state.enabled, false, 'off by default');
  stub.settings.set('mirrord.enabledByDefault', true);
  assert.equal(extension.state.enabled, true, 'the setting applies while never toggled');
  stub.settings.set('mirrord.enabledByDefault', false);

  const item = stub.statusBarItems[0];
  assert.ok(item?.visible);
  assert.equal(item.command, STATUS_BAR_COMMAND);
  assert.match(item.text, /^\$\(debug-disconnect\) mirrord$/);
  await stub.commands.get(Commands.toggle)?.();
  assert.equal(extension.state.enabled, true);
  assert.match(item.text, /^\$\(plug\) mirrord$/, 'the status bar follows the toggle');
  assert.match(item.tooltip ?? '', /mirrord is on/);

  stub.settings.set('mirrord.enabledByDefault', false);
  assert.equal(extension.state.enabled, true, 'a toggled workspace ignores the default');

  extension = activate(idle, workspaceB);
  stub.settings.set('mirrord.enabledByDefault', true);
  assert.equal(extension.state.enabled, true, 'another workspace has its own state');
  await stub.commands.get(Commands.toggle)?.();
  assert.equal(extension.state.enabled, false);

  extension = activate(idle, workspaceA);
  assert.equal(extension.state.enabled, true, 'reopening workspace A keeps its state');
});

test('the sidecar binary: setting, else bundled, else PATH', () => {
  const executables = new Set(['/ext/bin/mirrord', '/usr/local/bin/mirrord']);
  const exists = (file: string) => executables.has(file);
  assert.equal(findSidecarBinary('/opt/mirrord', '/ext', '/usr/local/bin', exists), '/opt/mirrord');
  assert.equal(findSidecarBinary('', '/ext', '/usr/local/bin', exists), '/ext/bin/mirrord');
  assert.equal(findSidecarBinary(null, '/other', '/usr/bin:/usr/local/bin', exists), '/usr/local/bin/mirrord');
  assert.equal(findSidecarBinary(undefined, '/other', '/usr/bin', exists), undefined);
});

test('restart back-off doubles up to a minute, resets after a healthy run, and notifies once', () => {
  const backoff = new RestartBackoff();
  backoff.started(0);
  assert.deepEqual(backoff.died(10), { delayMs: 1000, notify: true });
  backoff.started(1010);
  assert.deepEqual(backoff.died(1020), { delayMs: 2000, notify: false });
  backoff.started(3020);
  assert.deepEqual(backoff.died(3030), { delayMs: 4000, notify: false });
  for (let i = 0; i < 10; i += 1) backoff.died(3030);
  assert.equal(backoff.died(3030).delayMs, 60000);
  backoff.started(100000);
  assert.deepEqual(backoff.died(100000 + 60000), { delayMs: 1000, notify: false }, 'healthy for a minute: back to 1 s, still no second notification');
});
