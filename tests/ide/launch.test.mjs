// mirrord/patchLaunchConfig end to end: a debugpy and a node launch configuration are patched
// against a sandbox pod, then the debuggee is started with the returned environment the way the
// debug adapter would (its own environment overlaid with the configuration's `env`) and reads
// the pod's file and environment through the layer. Needs root and target/debug/libmirrord_layer.so.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startSidecar, tempWorkspace, mirrord, isRoot } from './sidecar.mjs';

const SANDBOX = 'ide-test';
let workspace;
let sidecar;
let expectedConfig;
let expectedGreeting;

before(async () => {
  assert.ok(isRoot(), 'these tests start a sandbox pod: run them as root');
  mirrord(['sandbox', 'up', SANDBOX]);
  const listed = JSON.parse(mirrord(['sandbox', 'list', '--output', 'json']));
  const pod = (Array.isArray(listed) ? listed : listed.sandboxes).find((s) => s.name === SANDBOX);
  expectedConfig = pod.files.find((f) => f.path === '/app/config.yaml').contents;
  expectedGreeting = pod.env.SANDBOX_GREETING;
  workspace = tempWorkspace();
  mkdirSync(path.join(workspace, '.mirrord'));
  writeFileSync(
    path.join(workspace, '.mirrord', 'mirrord.json'),
    JSON.stringify({ target: `sandbox/${SANDBOX}`, feature: { fs: 'read', env: true } }),
  );
  writeFileSync(
    path.join(workspace, 'app.py'),
    'import os\nprint(open("/app/config.yaml").read(), end="")\nprint("GREETING=" + os.environ["SANDBOX_GREETING"])\n',
  );
  writeFileSync(
    path.join(workspace, 'app.js'),
    'const fs = require("fs");\nprocess.stdout.write(fs.readFileSync("/app/config.yaml", "utf8"));\nconsole.log("GREETING=" + process.env.SANDBOX_GREETING);\n',
  );
  sidecar = await startSidecar({ workspace });
});

after(async () => {
  if (sidecar) await sidecar.stop();
  mirrord(['sandbox', 'down', SANDBOX], { allowFailure: true });
  if (workspace) rmSync(workspace, { recursive: true, force: true });
});

/** The debuggee's environment as a debug adapter builds it: its own, overlaid with `env`. */
function debuggeeEnv(env) {
  const merged = { ...process.env };
  for (const [name, value] of Object.entries(env)) {
    if (value === null) delete merged[name];
    else merged[name] = value;
  }
  return merged;
}

async function patch(launchConfig) {
  const result = await sidecar.connection.sendRequest('mirrord/patchLaunchConfig', {
    launchConfig,
    workspaceFolder: workspace,
    ide: 'vscode',
  });
  assert.ok(result.sessionId, JSON.stringify(result));
  return result;
}

function checkEnvironment(env) {
  assert.match(env.LD_PRELOAD, /libmirrord_layer\.so/);
  assert.match(env.MIRRORD_LAYER_INTPROXY_ADDR, /^127\.0\.0\.1:\d+$/);
  assert.ok(env.MIRRORD_LAYER_SESSION_TOKEN);
  assert.equal(env.SANDBOX_GREETING, expectedGreeting, "the target's variables are included");
  assert.equal(env.PATH, undefined, "the sidecar's own variables are not copied");
  return JSON.parse(env.MIRRORD_RESOLVED_CONFIG);
}

test('a debugpy launch configuration gets the session environment', async () => {
  const launchConfig = {
    type: 'debugpy', request: 'launch', name: 'app', program: path.join(workspace, 'app.py'),
    console: 'integratedTerminal', env: { APP_MODE: 'dev', LD_PRELOAD: '/usr/lib/x86_64-linux-gnu/libc.so.6' },
  };
  const result = await patch(launchConfig);
  const env = result.launchConfig.env;
  assert.equal(env.APP_MODE, 'dev', "the configuration's own variables stay");
  assert.match(env.LD_PRELOAD, /libmirrord_layer\.so:\/usr\/lib\/x86_64-linux-gnu\/libc\.so\.6$/, 'the layer is prepended');
  const config = checkEnvironment(env);
  assert.ok(config.skip_processes.includes('bash'), 'the terminal shell is skipped');
  assert.equal(config.feature.network.outgoing.ignore_localhost, true, 'debugpy reaches its adapter over loopback');
  // `$/progress` reported the start (notifications may arrive just after the response).
  await sidecar.waitFor(() => sidecar.progress.some((p) => p.value.kind === 'end'), 'the end of $/progress');
  assert.ok(sidecar.progress.some((p) => p.value.kind === 'report' && /agent/.test(p.value.message)));
  assert.equal(result.launchConfig.program, launchConfig.program, 'nothing else changes');

  const run = spawnSync('python3', [launchConfig.program], { env: debuggeeEnv(env), encoding: 'utf8', timeout: 30000 });
  assert.equal(run.status, 0, `python3 failed under the layer:\n${run.stderr}`);
  assert.equal(run.stdout, `${expectedConfig}GREETING=${expectedGreeting}\n`);

  assert.deepEqual(await sidecar.connection.sendRequest('mirrord/endSession', { sessionId: result.sessionId }), { ended: true });
  await sidecar.waitFor(() => sidecar.events.find((e) => e.sessionId === result.sessionId && e.kind === 'ended'), 'the ended event');
});

test('a node launch configuration gets the session environment', async () => {
  const launchConfig = { type: 'node', request: 'launch', name: 'app', program: path.join(workspace, 'app.js'), runtimeArgs: ['--inspect=9339'] };
  const result = await patch(launchConfig);
  const config = checkEnvironment(result.launchConfig.env);
  assert.ok(config.feature.network.incoming.ignore_ports.includes(9339), 'the inspector port is left alone');
  assert.equal(config.feature.network.incoming.ignore_localhost, true);

  const run = spawnSync('node', [launchConfig.program], { env: debuggeeEnv(result.launchConfig.env), encoding: 'utf8', timeout: 30000 });
  assert.equal(run.status, 0, `node failed under the layer:\n${run.stderr}`);
  assert.equal(run.stdout, `${expectedConfig}GREETING=${expectedGreeting}\n`);
  assert.deepEqual(await sidecar.connection.sendRequest('mirrord/endSession', { sessionId: result.sessionId }), { ended: true });
  assert.deepEqual(await sidecar.connection.sendRequest('mirrord/endSession', { sessionId: result.sessionId }), { ended: false });
});

test('attach requests, child sessions and MIRRORD_ACTIVE=0 are returned untouched', async () => {
  for (const launchConfig of [
    { type: 'debugpy', request: 'attach', connect: { port: 5678 } },
    { type: 'pwa-node', request: 'launch', __parentId: 'abc' },
    { type: 'node', request: 'launch', env: { MIRRORD_ACTIVE: '0' } },
  ]) {
    const result = await sidecar.connection.sendRequest('mirrord/patchLaunchConfig', { launchConfig, workspaceFolder: workspace, ide: 'vscode' });
    assert.deepEqual(result.launchConfig, launchConfig);
    assert.equal(result.sessionId, null);
    assert.equal(result.warnings.length, 1);
  }
});
