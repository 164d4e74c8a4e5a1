// A node launch patched by the sidecar keeps its inspector local, while the rest of loopback goes
// to the target's own localhost (outgoing.ignore_localhost defaults to false). The pod runs two
// tagged servers on its loopback: one on the inspector's port (a decoy: reaching it would mean the
// inspector port went to the target) and one on another port (reaching it shows the layer sends
// loopback to the pod). The debuggee, started like the debug adapter would with the returned
// environment, asks both — itself and through a child process (curl, a layer of its own).
// Needs root, python3, curl and target/debug/libmirrord_layer.so.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startSidecar, tempWorkspace, mirrord, isRoot, REPO } from './sidecar.mjs';

const SANDBOX = 'ide-inspector';
const INSPECTOR_PORT = 9341;
const POD_ONLY_PORT = 9342;
let workspace;
let sidecar;
const servers = [];

/** Starts a tagged server in the pod's network namespace and waits for its `ready` line. */
function podServer(targetPid, port, tag) {
  const child = spawn(
    'nsenter',
    ['--target', String(targetPid), '--net', '--', 'python3', path.join(REPO, 'tests/e2e/tagged_server.py'), 'tcp', '127.0.0.1', String(port), tag],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  servers.push(child);
  return new Promise((resolve, reject) => {
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
      if (output.includes('ready')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`the pod's server on ${port} exited with ${code}`)));
  });
}

before(async () => {
  assert.ok(isRoot(), 'these tests start a sandbox pod: run them as root');
  const pod = JSON.parse(mirrord(['sandbox', 'up', SANDBOX, '--output', 'json']));
  await podServer(pod.target_pid, INSPECTOR_PORT, 'decoy-in-the-pod');
  await podServer(pod.target_pid, POD_ONLY_PORT, 'from-the-pod');
  workspace = tempWorkspace();
  mkdirSync(path.join(workspace, '.mirrord'));
  writeFileSync(path.join(workspace, '.mirrord', 'mirrord.json'), JSON.stringify({ target: `sandbox/${SANDBOX}` }));
  writeFileSync(
    path.join(workspace, 'app.js'),
    [
      "const http = require('http');",
      "const { execFileSync } = require('child_process');",
      'function get(port) {',
      '  return new Promise((resolve) => {',
      "    http.get(`http://127.0.0.1:${port}/json/version`, (response) => {",
      "      let body = ''; response.on('data', (chunk) => body += chunk); response.on('end', () => resolve(body));",
      "    }).on('error', (error) => resolve('ERR ' + error.code));",
      '  });',
      '}',
      '(async () => {',
      `  console.log('inspector: ' + JSON.stringify(await get(${INSPECTOR_PORT})));`,
      `  console.log('pod: ' + JSON.stringify(await get(${POD_ONLY_PORT})));`,
      `  const child = execFileSync('curl', ['-sS', '--max-time', '10', 'http://127.0.0.1:${INSPECTOR_PORT}/json/version'], { encoding: 'utf8' });`,
      "  console.log('child: ' + JSON.stringify(child));",
      '  process.exit(0);',
      '})();',
    ].join('\n'),
  );
  sidecar = await startSidecar({ workspace });
});

after(async () => {
  if (sidecar) await sidecar.stop();
  for (const server of servers) server.kill('SIGKILL');
  mirrord(['sandbox', 'down', SANDBOX], { allowFailure: true });
  if (workspace) rmSync(workspace, { recursive: true, force: true });
});

test('a node launch patched by the sidecar keeps its inspector port local while loopback reaches the pod', async () => {
  const launchConfig = {
    type: 'node', request: 'launch', name: 'app', program: path.join(workspace, 'app.js'),
    runtimeArgs: [`--inspect=127.0.0.1:${INSPECTOR_PORT}`],
  };
  const result = await sidecar.connection.sendRequest('mirrord/patchLaunchConfig', { launchConfig, workspaceFolder: workspace, ide: 'vscode' });
  assert.ok(result.sessionId, JSON.stringify(result));
  const config = JSON.parse(result.launchConfig.env.MIRRORD_RESOLVED_CONFIG);
  assert.equal(config.feature.network.outgoing.ignore_localhost, false, 'loopback goes to the target by default');

  const env = { ...process.env };
  for (const [name, value] of Object.entries(result.launchConfig.env)) {
    if (value === null) delete env[name];
    else env[name] = value;
  }
  const run = spawnSync('node', [...launchConfig.runtimeArgs, launchConfig.program], { env, encoding: 'utf8', timeout: 30000 });
  assert.equal(run.status, 0, `node failed under the layer:\n${run.stdout}\n${run.stderr}`);
  const line = (key) => JSON.parse(run.stdout.split('\n').find((l) => l.startsWith(`${key}: `)).slice(key.length + 2));
  assert.match(line('inspector'), /"Browser": *"node\.js\//, `the debuggee reaches its own inspector:\n${run.stdout}`);
  assert.match(line('child'), /"Browser": *"node\.js\//, `a child process reaches the debuggee's inspector:\n${run.stdout}`);
  assert.equal(line('pod'), 'from-the-pod', `other loopback ports reach the pod:\n${run.stdout}`);
  assert.deepEqual(await sidecar.connection.sendRequest('mirrord/endSession', { sessionId: result.sessionId }), { ended: true });
});
