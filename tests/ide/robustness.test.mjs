// Bad input to the real `mirrord ide`: every bad message or request gets an error response and
// the sidecar keeps serving. Uses a raw JSON-RPC client (to send what no library would) over
// the sidecar's stdio.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync, rmSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { BIN, tempWorkspace, fileUri, mirrord, isRoot } from './sidecar.mjs';

/** A minimal JSON-RPC client that can also send broken frames. */
class RawClient {
  constructor(env = {}) {
    this.child = spawn(BIN, ['ide'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, MIRRORD_IDE_TEST_HOOKS: '1', ...env },
    });
    this.buffer = Buffer.alloc(0);
    this.messages = [];
    /** Every message received, in order (`messages` loses those `next` took). */
    this.received = [];
    this.waiters = [];
    this.stderr = '';
    this.child.stderr.on('data', (chunk) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
    this.child.stdout.on('data', (chunk) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      for (;;) {
        const end = this.buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const header = this.buffer.subarray(0, end).toString();
        const length = Number(/Content-Length: (\d+)/i.exec(header)[1]);
        if (this.buffer.length < end + 4 + length) return;
        const body = this.buffer.subarray(end + 4, end + 4 + length).toString();
        this.buffer = this.buffer.subarray(end + 4 + length);
        const message = JSON.parse(body);
        if (message.method === 'window/workDoneProgress/create') {
          this.send({ jsonrpc: '2.0', id: message.id, result: null });
          continue;
        }
        this.messages.push(message);
        this.received.push(message);
        this.waiters = this.waiters.filter((waiter) => !waiter());
      }
    });
    this.nextId = 100;
  }

  sendRaw(bytes) {
    this.child.stdin.write(bytes);
  }

  send(message) {
    const body = Buffer.from(JSON.stringify(message));
    this.sendRaw(Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`), body]));
  }

  /** Resolves with (and removes) the first message matching `predicate`. */
  next(predicate, what = 'a message', timeoutMs = 15000) {
    return new Promise((resolve, reject) => {
      const attempt = () => {
        const index = this.messages.findIndex(predicate);
        if (index < 0) return false;
        clearTimeout(timer);
        resolve(this.messages.splice(index, 1)[0]);
        return true;
      };
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}\n${this.stderr}`)), timeoutMs);
      if (!attempt()) this.waiters.push(attempt);
    });
  }

  async request(method, params) {
    const id = this.nextId++;
    this.send({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });
    return this.next((m) => m.id === id && !m.method, `the answer to ${method}`);
  }

  /** Shows the sidecar still serves. */
  async alive() {
    const answer = await this.request('mirrord/listTargets', { kinds: ['targetless'] });
    assert.equal(answer.result.groups[0].targets[0].path, 'targetless');
  }
}

let client;
let workspace;

before(async () => {
  workspace = tempWorkspace();
  mkdirSync(path.join(workspace, '.mirrord'));
  client = new RawClient();
  const init = await client.request('initialize', { processId: null, rootUri: fileUri(workspace), capabilities: {} });
  assert.ok(init.result.capabilities);
  client.send({ jsonrpc: '2.0', method: 'initialized', params: {} });
});

after(() => {
  client?.child.kill('SIGKILL');
  if (workspace) rmSync(workspace, { recursive: true, force: true });
});

test('malformed JSON-RPC gets error responses', async () => {
  client.sendRaw('Content-Length: 9\r\n\r\n{bad json');
  const parse = await client.next((m) => m.error && m.id === null, 'a parse error');
  assert.equal(parse.error.code, -32700);
  await client.alive();

  client.send([1, 2]);
  assert.equal((await client.next((m) => m.error && m.id === null)).error.code, -32600);
  client.send({ jsonrpc: '1.0', id: 'old', method: 'initialize' });
  assert.equal((await client.next((m) => m.id === 'old')).error.code, -32600);
  client.sendRaw('X-Nonsense: 1\r\n\r\n');
  assert.equal((await client.next((m) => m.error && m.id === null)).error.code, -32700);
  client.sendRaw('Content-Length: many\r\n\r\n');
  assert.equal((await client.next((m) => m.error && m.id === null)).error.code, -32700);
  await client.alive();
});

test('after a broken frame the sidecar answers it once and keeps serving', async () => {
  const body = JSON.stringify({ jsonrpc: '2.0', id: 'stray', method: 'mirrord/schema' });
  const cases = {
    'no Content-Length': `X-Nonsense: 1\r\n\r\n${body}`,
    'a negative Content-Length': `Content-Length: -5\r\n\r\n${body}`,
    'a Content-Length shorter than the body': `Content-Length: ${body.length - 9}\r\n\r\n${body}`,
    'a Content-Length longer than the body': `Content-Length: ${body.length + 25}\r\n\r\n${body}`,
  };
  for (const [what, broken] of Object.entries(cases)) {
    const before = client.received.length;
    client.sendRaw(broken);
    // The stray bytes used to merge with the next header: every later request got -32700.
    const answer = await client.request('mirrord/listTargets', { kinds: ['targetless'] });
    assert.equal(answer.result?.groups[0].targets[0].path, 'targetless', `${what}: ${JSON.stringify(answer)}`);
    await client.alive();
    const errors = client.received.slice(before).filter((m) => m.error && m.id === null);
    assert.equal(errors.length, 1, `${what}: answered once, ${JSON.stringify(errors)}`);
    assert.equal(errors[0].error.code, -32700, what);
    client.messages = client.messages.filter((m) => !errors.includes(m));
  }
});

test('requests that take no parameters accept {} and null', async () => {
  for (const params of [{}, null, undefined]) {
    const answer = await client.request('mirrord/schema', params);
    assert.equal(answer.result?.title, 'mirrord configuration', `params ${JSON.stringify(params)}: ${JSON.stringify(answer.error)}`);
  }
  const targets = await client.request('mirrord/listTargets', null);
  assert.ok(Array.isArray(targets.result?.groups), JSON.stringify(targets.error));
});

/** A one-line JSON config with `keys` unknown keys. */
function oneLine(keys) {
  const parts = ['"target": "targetless"'];
  for (let i = 0; i < keys; i++) parts.push(`"unknown_${i}": 1`);
  return `{${parts.join(',')}}`;
}

test('the sidecar answers while it checks a large document, and a newer version replaces the check', async () => {
  const uri = fileUri(path.join(workspace, 'wide.mirrord.json'));
  const before = client.received.length;
  client.send({ jsonrpc: '2.0', method: 'textDocument/didOpen', params: { textDocument: { uri, languageId: 'json', version: 1, text: oneLine(2_000) } } });
  // Checking this took the sidecar ~17 s of CPU (N³) on its only thread; nothing was answered meanwhile.
  const answer = await client.request('mirrord/verifyConfig', { text: '{ "target": "targetless" }', format: 'json' });
  assert.equal(answer.result?.valid, true, JSON.stringify(answer.error));
  client.send({ jsonrpc: '2.0', method: 'textDocument/didChange', params: { textDocument: { uri, version: 2 }, contentChanges: [{ text: oneLine(3) }] } });
  const newer = await client.next((m) => m.method === 'textDocument/publishDiagnostics' && m.params.uri === uri && m.params.version === 2);
  assert.equal(newer.params.diagnostics.length, 3);
  await client.alive();
  const published = client.received.slice(before).filter((m) => m.method === 'textDocument/publishDiagnostics' && m.params.uri === uri);
  const versions = published.map((m) => m.params.version);
  assert.equal(versions.at(-1), 2, `the stale check is never published after the newer one: ${versions}`);
  client.messages = client.messages.filter((m) => !published.includes(m));
});

test('exit ends the sidecar while it checks a large document', async () => {
  const own = new RawClient();
  await own.request('initialize', { processId: null, rootUri: null, capabilities: {} });
  const uri = fileUri(path.join(workspace, 'wider.mirrord.json'));
  own.send({ jsonrpc: '2.0', method: 'textDocument/didOpen', params: { textDocument: { uri, languageId: 'json', version: 1, text: oneLine(20_000) } } });
  own.send({ jsonrpc: '2.0', method: 'exit' });
  const limit = new Promise((resolve) => setTimeout(() => resolve('still running 10 s after exit'), 10_000).unref());
  const outcome = await Promise.race([own.exited, limit]);
  own.child.kill('SIGKILL');
  assert.equal(typeof outcome, 'number', `the process ended (exit code), not: ${outcome}`);
});

test('unknown methods and bad params get error responses', async () => {
  assert.equal((await client.request('mirrord/noSuchThing', {})).error.code, -32601);
  client.send({ jsonrpc: '2.0', method: 'mirrord/noSuchNotification', params: {} });
  assert.equal((await client.request('mirrord/listTargets', { kinds: 5 })).error.code, -32602);
  assert.equal((await client.request('mirrord/verifyConfig', {})).error.code, -32602);
  await client.alive();
});

test('huge documents are refused, not checked', async () => {
  const huge = `{ "target": "targetless", "skip_processes": [${'"x",'.repeat(800_000)} "y"] }`;
  const verify = await client.request('mirrord/verifyConfig', { text: huge, format: 'json' });
  assert.equal(verify.error.code, -32015);

  const uri = fileUri(path.join(workspace, 'huge.mirrord.json'));
  client.send({ jsonrpc: '2.0', method: 'textDocument/didOpen', params: { textDocument: { uri, languageId: 'json', version: 1, text: huge } } });
  const published = await client.next((m) => m.method === 'textDocument/publishDiagnostics' && m.params.uri === uri);
  assert.equal(published.params.diagnostics[0].code, 'document-too-large');
  const completion = await client.request('textDocument/completion', { textDocument: { uri }, position: { line: 0, character: 2 } });
  assert.equal(completion.result, null);

  // A message above the frame limit is skipped without being kept, and answered by its id.
  const id = 4242;
  const body = JSON.stringify({ jsonrpc: '2.0', id, method: 'mirrord/verifyConfig', params: { text: 'x'.repeat(33 * 1024 * 1024) } });
  client.sendRaw(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  const refused = await client.next((m) => m.id === id, 'the oversized message refused', 60000);
  assert.equal(refused.error.code, -32600);
  await client.alive();
});

test('a config path outside the workspace is refused', async () => {
  const outside = tempWorkspace('mirrord-outside-');
  writeFileSync(path.join(outside, 'mirrord.json'), '{ "target": "targetless" }');
  const launchConfig = { type: 'node', request: 'launch', program: 'app.js' };
  const explicit = await client.request('mirrord/patchLaunchConfig', {
    launchConfig, workspaceFolder: workspace, configPath: path.join(outside, 'mirrord.json'), ide: 'vscode',
  });
  assert.equal(explicit.error.code, -32012);
  const relative = await client.request('mirrord/patchLaunchConfig', {
    launchConfig, workspaceFolder: workspace, configPath: '../' + path.basename(outside) + '/mirrord.json', ide: 'vscode',
  });
  assert.equal(relative.error.code, -32012);
  const fromEnv = await client.request('mirrord/patchLaunchConfig', {
    launchConfig: { ...launchConfig, env: { MIRRORD_CONFIG_FILE: path.join(outside, 'mirrord.json') } },
    workspaceFolder: workspace, ide: 'vscode',
  });
  assert.equal(fromEnv.error.code, -32012);
  const noFolder = await client.request('mirrord/patchLaunchConfig', { launchConfig, workspaceFolder: '/no/such/folder', ide: 'vscode' });
  assert.equal(noFolder.error.code, -32012);
  rmSync(outside, { recursive: true, force: true });
  await client.alive();
});

test('an invalid config is refused with its diagnostics; a missing target asks for one', async () => {
  writeFileSync(path.join(workspace, '.mirrord', 'mirrord.json'), '{ "tagret": "pid/1" }');
  const launchConfig = { type: 'python', request: 'launch', program: 'app.py' };
  const invalid = await client.request('mirrord/patchLaunchConfig', { launchConfig, workspaceFolder: workspace, ide: 'vscode' });
  assert.equal(invalid.error.code, -32010);
  assert.match(invalid.error.data.diagnostics[0].message, /did you mean `target`/);
  assert.match(invalid.error.data.configPath, /\.mirrord\/mirrord\.json$/);

  writeFileSync(path.join(workspace, '.mirrord', 'mirrord.json'), '{ "feature": { "fs": "read" } }');
  const noTarget = await client.request('mirrord/patchLaunchConfig', { launchConfig, workspaceFolder: workspace, ide: 'vscode' });
  assert.equal(noTarget.error.code, -32013);
  await client.alive();
});

test('a session that cannot start is an error response', async () => {
  assert.ok(isRoot(), 'run as root: local targets need it');
  writeFileSync(path.join(workspace, '.mirrord', 'mirrord.json'), '{ "target": "pid/999999" }');
  const launchConfig = { type: 'node', request: 'launch', program: 'app.js' };
  const missing = await client.request('mirrord/patchLaunchConfig', { launchConfig, workspaceFolder: workspace, ide: 'vscode' });
  assert.equal(missing.error.code, -32014);
  assert.match(missing.error.message, /999999/);

  // An agent binary that exits at once.
  const broken = new RawClient({ MIRRORD_AGENT_BIN: '/bin/false' });
  await broken.request('initialize', { processId: null, rootUri: null, capabilities: {} });
  const agentFailed = await broken.request('mirrord/patchLaunchConfig', {
    launchConfig, workspaceFolder: workspace, target: `pid/${process.pid}`, ide: 'vscode',
  });
  assert.equal(agentFailed.error.code, -32014);
  assert.match(agentFailed.error.message, /agent/);
  await broken.alive();
  broken.child.kill('SIGKILL');
  await client.alive();
});

test('a panicking handler becomes an error response', async () => {
  const answer = await client.request('$/mirrord/test/panic');
  assert.equal(answer.error.code, -32099);
  assert.match(answer.error.message, /panic requested by a test/);
  await client.alive();
});

/** The pids of the sidecar's live children whose command line contains `word`. */
function children(parent, word) {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return Number(fields[1]) === parent && fields[0] !== 'Z'
          && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(word);
      } catch {
        return false;
      }
    });
}

test('a cancelled patchLaunchConfig answers RequestCancelled and leaves no session behind', async () => {
  assert.ok(isRoot(), 'run as root: local targets need it');
  writeFileSync(path.join(workspace, '.mirrord', 'mirrord.json'), `{ "target": "pid/${process.pid}" }`);
  const id = 777;
  client.send({
    jsonrpc: '2.0', id, method: 'mirrord/patchLaunchConfig',
    params: { launchConfig: { type: 'node', request: 'launch' }, workspaceFolder: workspace, ide: 'vscode' },
  });
  client.send({ jsonrpc: '2.0', method: '$/cancelRequest', params: { id } });
  const answer = await client.next((m) => m.id === id);
  assert.equal(answer.error.code, -32800);
  await new Promise((resolve) => setTimeout(resolve, 3000));
  assert.deepEqual(children(client.child.pid, 'intproxy'), []);
  assert.deepEqual(children(client.child.pid, 'mirrord-agent'), []);
  await client.alive();
});

test('closing stdin ends the sidecar and its sessions', async () => {
  assert.ok(isRoot(), 'run as root: local targets need it');
  const own = new RawClient();
  await own.request('initialize', { processId: null, rootUri: null, capabilities: {} });
  writeFileSync(path.join(workspace, '.mirrord', 'mirrord.json'), `{ "target": "pid/${process.pid}" }`);
  const patched = await own.request('mirrord/patchLaunchConfig', {
    launchConfig: { type: 'node', request: 'launch' }, workspaceFolder: workspace, ide: 'vscode',
  });
  assert.ok(patched.result, JSON.stringify(patched.error));
  const intproxies = children(own.child.pid, 'intproxy');
  assert.equal(intproxies.length, 1);
  own.child.stdin.end();
  assert.equal(await own.exited, 0);
  assert.ok(!readdirSync('/proc').includes(intproxies[0]), 'the intproxy was ended');
});

test('a lost agent is reported with mirrord/sessionEvent', async () => {
  assert.ok(isRoot(), 'run as root: local targets need it');
  writeFileSync(path.join(workspace, '.mirrord', 'mirrord.json'), `{ "target": "pid/${process.pid}" }`);
  const patched = await client.request('mirrord/patchLaunchConfig', {
    launchConfig: { type: 'node', request: 'launch' }, workspaceFolder: workspace, ide: 'vscode',
  });
  const sessionId = patched.result.sessionId;
  const agents = children(client.child.pid, 'mirrord-agent');
  assert.equal(agents.length, 1);
  process.kill(Number(agents[0]), 'SIGKILL');
  const lost = await client.next((m) => m.method === 'mirrord/sessionEvent' && m.params.sessionId === sessionId && m.params.kind === 'agentLost');
  assert.match(lost.params.message, /agent/);
  const ended = await client.request('mirrord/endSession', { sessionId });
  assert.equal(typeof ended.result.ended, 'boolean');
  await client.next((m) => m.method === 'mirrord/sessionEvent' && m.params.sessionId === sessionId && m.params.kind === 'ended');
  await client.alive();
});
