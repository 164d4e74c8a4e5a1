// A Go launch through a real Delve: mirrord/patchLaunchConfig patches a `go` launch configuration
// against a sandbox pod, then the test does what the VS Code Go extension does with it — runs
// `dlvToolPath dap --listen=…` with its own environment overlaid with the configuration's `env`,
// and sends the configuration as the DAP `launch` request — and reads what the debuggee prints.
// The Go probe (tests/e2e/go/probe.go), built with cgo and statically, must see the pod's file
// and variable: the debuggee takes the system-call path under `mirrord supervise`, while Delve
// itself keeps this machine's view.
//
// Needs root, Go, and Delve built by tests/dlv/build.sh (cached in /var/cache/mirrord-ci/dlv;
// .ci/run builds it).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, rmSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startSidecar, tempWorkspace, mirrord, isRoot, REPO } from './sidecar.mjs';

const SANDBOX = 'ide-dlv';
const GO_CACHE = '/var/cache/mirrord-ci/go-build';
const LIMIT_MS = 60_000;
let workspace;
let sidecar;
let dlv;
let expectedConfig;
let expectedGreeting;
const probes = {};

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 600_000, ...options });
  assert.equal(result.status, 0, `${command} ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

before(async () => {
  assert.ok(isRoot(), 'these tests start a sandbox pod: run them as root');
  assert.ok(!existsSync('/app/config.yaml'), 'this machine has /app/config.yaml, so the test could not tell');
  dlv = run('bash', [path.join(REPO, 'tests/dlv/build.sh')]).trim();
  workspace = tempWorkspace('mirrord-ide-dlv-');
  for (const [name, cgo] of [['probe-cgo', '1'], ['probe-static', '0']]) {
    probes[name] = path.join(workspace, name);
    run('go', ['build', '-o', probes[name], '.'], {
      cwd: path.join(REPO, 'tests/e2e/go'),
      env: { ...process.env, GOCACHE: GO_CACHE, GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local', CGO_ENABLED: cgo },
    });
  }
  mirrord(['sandbox', 'up', SANDBOX]);
  const listed = JSON.parse(mirrord(['sandbox', 'list', '--output', 'json']));
  const pod = (Array.isArray(listed) ? listed : listed.sandboxes).find((s) => s.name === SANDBOX);
  expectedConfig = pod.files.find((f) => f.path === '/app/config.yaml').contents.split('\n')[0];
  expectedGreeting = pod.env.SANDBOX_GREETING;
  mkdirSync(path.join(workspace, '.mirrord'));
  writeFileSync(
    path.join(workspace, '.mirrord', 'mirrord.json'),
    JSON.stringify({ target: `sandbox/${SANDBOX}`, feature: { fs: 'read', env: true } }),
  );
  sidecar = await startSidecar({ workspace, env: { XDG_STATE_HOME: path.join(workspace, 'state') } });
});

after(async () => {
  if (sidecar) await sidecar.stop();
  mirrord(['sandbox', 'down', SANDBOX], { allowFailure: true });
  if (workspace) rmSync(workspace, { recursive: true, force: true });
});

/** The environment the Go extension gives `dlv dap`: its own, overlaid with the launch's `env`. */
function launchEnv(env) {
  const merged = { ...process.env };
  for (const [name, value] of Object.entries(env)) {
    if (value === null) delete merged[name];
    else merged[name] = value;
  }
  return merged;
}

/** A DAP client over `socket`: `request(command, args)` and the events seen so far. */
function dapClient(socket) {
  let buffer = Buffer.alloc(0);
  let seq = 1;
  const pending = new Map();
  const events = [];
  const waiters = new Set();
  socket.on('data', (chunk) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/Content-Length: *(\d+)/i.exec(buffer.subarray(0, end).toString())[1]);
      if (buffer.length < end + 4 + length) return;
      const message = JSON.parse(buffer.subarray(end + 4, end + 4 + length).toString());
      buffer = buffer.subarray(end + 4 + length);
      if (message.type === 'response') pending.get(message.request_seq)?.(message);
      if (message.type === 'event') events.push(message);
      for (const waiter of [...waiters]) waiter();
    }
  });
  return {
    events,
    request(command, args) {
      const message = JSON.stringify({ seq: seq, type: 'request', command, arguments: args });
      const id = seq++;
      return new Promise((resolve) => {
        pending.set(id, resolve);
        socket.write(`Content-Length: ${Buffer.byteLength(message)}\r\n\r\n${message}`);
      });
    },
    waitForEvent(name, what) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = events.find((event) => event.event === name);
          if (found) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(found);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${what} within ${LIMIT_MS} ms; events: ${JSON.stringify(events)}`));
        }, LIMIT_MS);
        waiters.add(check);
        check();
      });
    },
  };
}

/** Runs the patched launch as the Go extension does; returns the debuggee's output. */
async function debugWithDelve(launchConfig) {
  // The Go extension runs Delve in the program's directory (`__buildDir`, set by its resolver).
  const child = spawn(launchConfig.dlvToolPath, ['dap', '--listen=127.0.0.1:0'], {
    cwd: launchConfig.__buildDir ?? workspace,
    env: launchEnv(launchConfig.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const address = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dlv dap did not listen within ${LIMIT_MS} ms:\n${stdout}\n${stderr}`)), LIMIT_MS);
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stdout.on('data', () => {
      const found = /DAP server listening at: (\S+):(\d+)/.exec(stdout);
      if (found) {
        clearTimeout(timer);
        resolve({ host: found[1], port: Number(found[2]) });
      }
    });
    child.on('exit', () => reject(new Error(`dlv dap exited before listening:\n${stdout}\n${stderr}`)));
  });
  const socket = net.createConnection(address.port, address.host);
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const dap = dapClient(socket);
  try {
    const initialized = await dap.request('initialize', { clientID: 'vscode', adapterID: 'go', linesStartAt1: true, columnsStartAt1: true, pathFormat: 'path' });
    assert.ok(initialized.success, JSON.stringify(initialized));
    const launched = await dap.request('launch', launchConfig);
    assert.ok(launched.success, `launch: ${JSON.stringify(launched)}\n${stderr}\n${stdout}\n${JSON.stringify(dap.events)}`);
    await dap.waitForEvent('initialized', 'initialized event');
    await dap.request('configurationDone', {});
    await dap.waitForEvent('terminated', 'terminated event (the debuggee ran to its end)');
    await dap.request('disconnect', {});
  } finally {
    socket.destroy();
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  // The debuggee writes to Delve's own standard output, which the Go extension shows in the
  // debug console; DAP output events carry the rest.
  const events = dap.events
    .filter((event) => event.event === 'output')
    .map((event) => event.body.output)
    .join('');
  return { output: stdout, stderr: `${stderr}\n${events}` };
}

for (const [name, label] of [['probe-cgo', 'built with cgo'], ['probe-static', 'built statically']]) {
  test(`a Go launch debugged by Delve reads the pod's file and variable (${label})`, async () => {
    const launchConfig = {
      type: 'go', request: 'launch', name, mode: 'exec', program: probes[name],
      args: ['file:/app/config.yaml', 'env:SANDBOX_GREETING'],
      dlvToolPath: dlv,
    };
    const result = await sidecar.connection.sendRequest('mirrord/patchLaunchConfig', {
      launchConfig, workspaceFolder: workspace, ide: 'vscode',
    });
    assert.ok(result.sessionId, JSON.stringify(result));
    const patched = result.launchConfig;
    assert.notEqual(patched.dlvToolPath, dlv, 'the debugger is routed through the wrapper');
    assert.ok(patched.dlvToolPath.startsWith(path.join(workspace, 'state', 'mirrord')), patched.dlvToolPath);
    assert.ok(statSync(patched.dlvToolPath).mode & 0o100, 'the wrapper is executable');
    assert.match(readFileSync(patched.dlvToolPath, 'utf8'), / supervise -- /);
    assert.equal(patched.env.MIRRORD_DLV_PATH, dlv, 'the Delve the launch named is the one that runs');
    assert.ok(!result.warnings.some((w) => /cgo \(CGO_ENABLED=1\)/.test(w)), 'no advice to build with cgo');

    const { output, stderr } = await debugWithDelve(patched);
    assert.match(stderr, /runs under the system-call supervisor/, 'the wrapper ran Delve under the supervisor');
    assert.ok(output.includes(`file /app/config.yaml: ${expectedConfig}\n`), `the pod's file, in:\n${output}\n${stderr}`);
    assert.ok(output.includes(`env SANDBOX_GREETING: ${expectedGreeting}\n`), `the pod's variable, in:\n${output}\n${stderr}`);

    assert.deepEqual(await sidecar.connection.sendRequest('mirrord/endSession', { sessionId: result.sessionId }), { ended: true });
  });
}

test("a Go launch in debug mode: Delve builds the program with the go and C toolchains (cgo; they keep this machine's view), and the debuggee reads the pod's file", async () => {
  const output = path.join(workspace, 'debug-build');
  const launchConfig = {
    type: 'go', request: 'launch', name: 'debug-mode', mode: 'debug',
    program: path.join(REPO, 'tests/e2e/go'), __buildDir: path.join(REPO, 'tests/e2e/go'), output,
    args: ['file:/app/config.yaml', 'env:SANDBOX_GREETING'],
    env: { GOCACHE: GO_CACHE, GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local', CGO_ENABLED: '1' },
    dlvToolPath: dlv,
  };
  const result = await sidecar.connection.sendRequest('mirrord/patchLaunchConfig', {
    launchConfig, workspaceFolder: workspace, ide: 'vscode',
  });
  assert.ok(result.sessionId, JSON.stringify(result));
  const run = await debugWithDelve(result.launchConfig);
  // Delve removes the binary it built once the session ends; its output says it built it.
  assert.match(run.stderr, /Building /, `Delve built the program (the toolchain read this machine's sources):\n${run.stderr}`);
  assert.ok(run.output.includes(`file /app/config.yaml: ${expectedConfig}\n`), `the pod's file, in:\n${run.output}\n${run.stderr}`);
  assert.ok(run.output.includes(`env SANDBOX_GREETING: ${expectedGreeting}\n`), `the pod's variable, in:\n${run.output}\n${run.stderr}`);
  assert.deepEqual(await sidecar.connection.sendRequest('mirrord/endSession', { sessionId: result.sessionId }), { ended: true });
});
