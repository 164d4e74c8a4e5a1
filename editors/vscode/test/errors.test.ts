// Error display: one notification with the sidecar's message and "Show Logs"; an invalid config
// is also opened at its first diagnostic. Driven by recorded transcripts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ProgressValue } from '../src/requests';
import { activate, replay, settle } from './helpers';
import { Range, stub } from './stub/vscode';

const FOLDER = '/home/dev/api';
const PYTHON = { type: 'debugpy', request: 'launch', name: 'app', program: `${FOLDER}/app.py`, console: 'integratedTerminal' };

test('an invalid config: one error with the message and "Show Logs", and the file opened at the first diagnostic (transcript patch-config-invalid)', async () => {
  const endpoint = await replay('patch-config-invalid', FOLDER);
  const extension = activate(endpoint);
  await extension.state.toggle();
  stub.messageButton = 'Show Logs';
  assert.equal(await extension.resolve(FOLDER, PYTHON), undefined, 'the launch does not run');
  await settle();
  endpoint.assertDone();
  assert.deepEqual(stub.callsTo('showErrorMessage'), [
    [`mirrord: the mirrord config ${FOLDER}/.mirrord/mirrord.json has 1 error`, 'Show Logs'],
  ]);
  assert.deepEqual(stub.callsTo('openTextDocument'), [[`${FOLDER}/.mirrord/mirrord.json`]]);
  const [[, options]] = stub.callsTo('showTextDocument') as [[unknown, { selection: Range }]];
  assert.deepEqual(options.selection, new Range(2, 31, 2, 38));
  assert.equal(stub.outputShown, 1, '"Show Logs" shows the output channel');
});

const OTHER_ERRORS: [string, (extension: ReturnType<typeof activate>) => Promise<void>, string][] = [
  ['patch-session-failed', (e) => e.state.setSelectedTarget('pid/999999999'), 'mirrord: cannot start the session: target process 999999999 does not exist'],
  ['patch-config-unreadable', (e) => e.state.setActiveConfiguration('.mirrord/missing.json'), `mirrord: cannot read the mirrord config ${FOLDER}/.mirrord/missing.json: No such file or directory (os error 2)`],
  ['patch-outside-workspace', (e) => e.state.setActiveConfiguration('/etc/passwd'), `mirrord: the mirrord config /etc/passwd is outside the workspace folder ${FOLDER}`],
];

for (const [name, setUp, message] of OTHER_ERRORS) {
  test(`${name}: one error with the sidecar's message, nothing opened`, async () => {
    const endpoint = await replay(name, FOLDER);
    const extension = activate(endpoint);
    await extension.state.toggle();
    await setUp(extension);
    assert.equal(await extension.resolve(FOLDER, PYTHON), undefined);
    await settle();
    endpoint.assertDone();
    assert.deepEqual(stub.callsTo('showErrorMessage'), [[message, 'Show Logs']]);
    assert.deepEqual(stub.callsTo('openTextDocument'), []);
    assert.equal(stub.outputShown, 0, 'the logs are shown only on request');
  });
}

test('a sidecar that cannot start: the launch shows why', async () => {
  const extension = activate({
    request: () => Promise.reject(new Error('spawn mirrord ENOENT')),
    onProgress: (_token: string, _handler: (value: ProgressValue) => void) => ({ dispose: () => undefined }),
  });
  await extension.state.toggle();
  assert.equal(await extension.resolve(FOLDER, PYTHON), undefined);
  assert.deepEqual(stub.callsTo('showErrorMessage'), [['mirrord: spawn mirrord ENOENT', 'Show Logs']]);
});

test("a session whose helper failed to start: \"Show Logs\" shows the output channel and opens the log the sidecar names", async () => {
  const log = '/home/dev/.local/state/mirrord/logs/session-1/agent.log';
  const message = 'cannot start the session: the agent could not start: cannot bind (its log: ' + log + ')';
  const extension = activate({
    request: () => Promise.reject({ code: -32014, message, data: { log } }),
    onProgress: (_token: string, _handler: (value: ProgressValue) => void) => ({ dispose: () => undefined }),
  });
  await extension.state.toggle();
  stub.messageButton = 'Show Logs';
  assert.equal(await extension.resolve(FOLDER, PYTHON), undefined, 'the launch does not run');
  await settle();
  assert.deepEqual(stub.callsTo('showErrorMessage'), [[`mirrord: ${message}`, 'Show Logs']]);
  assert.equal(stub.outputShown, 1, '"Show Logs" shows the output channel');
  assert.deepEqual(stub.callsTo('openTextDocument'), [[log]], 'and opens the log the sidecar named');
});
