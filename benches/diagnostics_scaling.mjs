// How checking scales with the size of a config, and whether the sidecar stays responsive while
// it checks a large document. Prints figures and ratios; asserts nothing.
//
// 1. `mirrord verify-config` on one-line JSON configs with 10,000 and 100,000 unknown keys
//    (0.14 MB and 1.4 MB): time each, and the ratio of the time per key (1.0 is linear).
// 2. The sidecar: open a one-line 2,000-key document, at once ask `mirrord/verifyConfig` for a
//    small config: how long the answer takes (target ≤ 100 ms), and how long the document's
//    diagnostics take.
// 3. The sidecar: open the 100,000-key document, then send a newer version at once: how long
//    until the newer version's diagnostics arrive, whether the stale one was published; then
//    `exit` while a check runs: how long the process takes to end.
//
//   (cd tests/ide && npm ci) && cargo build --release --bin mirrord
//   node benches/diagnostics_scaling.mjs         # MIRRORD_BIN overrides the binary

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(REPO, 'tests/ide/package.json'));
const rpc = require('vscode-jsonrpc/node');

const release = path.join(REPO, 'target/release/mirrord');
const BIN = path.resolve(REPO, process.env.MIRRORD_BIN ?? (existsSync(release) ? release : 'target/debug/mirrord'));

const now = () => Number(process.hrtime.bigint()) / 1e6;
const ms = (value) => `${value.toFixed(1)} ms`;

/** A one-line JSON config: a target, then `keys` unknown keys. */
function oneLine(keys) {
  const parts = ['"target": "targetless"'];
  for (let i = 0; i < keys; i++) parts.push(`"key${String(i).padStart(6, '0')}":1`);
  return `{${parts.join(',')}}`;
}

function median(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function verifyConfig(file) {
  const start = now();
  const result = spawnSync(BIN, ['verify-config', file], { maxBuffer: 1 << 30 });
  const elapsed = now() - start;
  if (result.status !== 1) throw new Error(`verify-config exited ${result.status}: ${result.stderr}`);
  return { elapsed, lines: result.stdout.toString().split('\n').length - 1 };
}

async function startSidecar() {
  const child = spawn(BIN, ['ide'], { stdio: ['pipe', 'pipe', 'ignore'] });
  const connection = rpc.createMessageConnection(new rpc.StreamMessageReader(child.stdout), new rpc.StreamMessageWriter(child.stdin));
  const published = [];
  const waiters = [];
  connection.onNotification('textDocument/publishDiagnostics', (params) => {
    published.push({ ...params, at: now() });
    for (const waiter of waiters.splice(0)) waiter();
  });
  connection.listen();
  await connection.sendRequest('initialize', {
    processId: process.pid,
    rootUri: null,
    capabilities: {},
    initializationOptions: { diagnosticsDelayMs: 0, watchFiles: false },
  });
  await connection.sendNotification('initialized', {});
  const diagnosticsFor = (uri, version) =>
    new Promise((resolve) => {
      const check = () => {
        const found = published.find((p) => p.uri === uri && p.version === version);
        if (found) resolve(found);
        else waiters.push(check);
      };
      check();
    });
  const exited = new Promise((resolve) => child.on('exit', () => resolve(now())));
  return { child, connection, published, diagnosticsFor, exited };
}

async function main() {
  console.log(`diagnostics scaling — ${BIN}\n`);
  const folder = mkdtempSync(path.join(os.tmpdir(), 'mirrord-scaling-'));
  try {
    const sizes = [10_000, 100_000];
    const figures = [];
    for (const keys of sizes) {
      const file = path.join(folder, `k${keys}.json`);
      const text = oneLine(keys);
      writeFileSync(file, text);
      const runs = [];
      let lines = 0;
      for (let i = 0; i < 3; i++) {
        const run = verifyConfig(file);
        runs.push(run.elapsed);
        lines = run.lines;
      }
      const elapsed = median(runs);
      figures.push({ keys, bytes: text.length, elapsed });
      console.log(`verify-config, one line, ${String(keys).padStart(7)} unknown keys (${(text.length / 1e6).toFixed(2)} MB): ${ms(elapsed)} (median of 3), ${lines} lines printed, ${(elapsed * 1000 / keys).toFixed(2)} µs per key`);
    }
    const [small, large] = figures;
    const ratio = (large.elapsed / large.keys) / (small.elapsed / small.keys);
    console.log(`time per key, 100,000 keys / 10,000 keys: ${ratio.toFixed(2)} (1.0 is linear; quadratic would be 10)\n`);

    // The sidecar answers while it checks.
    const sidecar = await startSidecar();
    const { connection } = sidecar;
    const uri2k = 'file:///bench/k2000.mirrord.json';
    const opened = now();
    await connection.sendNotification('textDocument/didOpen', { textDocument: { uri: uri2k, languageId: 'json', version: 1, text: oneLine(2_000) } });
    const answer = await connection.sendRequest('mirrord/verifyConfig', { text: '{ "target": "targetless" }', format: 'json' });
    const answered = now() - opened;
    const diagnostics = await sidecar.diagnosticsFor(uri2k, 1);
    console.log(`sidecar: mirrord/verifyConfig answered ${ms(answered)} after opening a one-line 2,000-key document (target ≤ 100 ms; valid: ${answer.valid})`);
    console.log(`sidecar: that document's ${diagnostics.diagnostics.length} diagnostics published after ${ms(diagnostics.at - opened)}`);

    // A newer version replaces a stale check of a large document.
    const uriBig = 'file:///bench/k100000.mirrord.json';
    const big = oneLine(100_000);
    const started = now();
    await connection.sendNotification('textDocument/didOpen', { textDocument: { uri: uriBig, languageId: 'json', version: 1, text: big } });
    await connection.sendNotification('textDocument/didChange', { textDocument: { uri: uriBig, version: 2 }, contentChanges: [{ text: oneLine(10) }] });
    const newer = await sidecar.diagnosticsFor(uriBig, 2);
    const stale = sidecar.published.some((p) => p.uri === uriBig && p.version === 1);
    console.log(`sidecar: 100,000-key document then a 10-key version at once: the newer version's diagnostics after ${ms(newer.at - started)}; stale version published: ${stale}`);

    // `exit` while a large check runs.
    await connection.sendNotification('textDocument/didChange', { textDocument: { uri: uriBig, version: 3 }, contentChanges: [{ text: big }] });
    const exitSent = now();
    await connection.sendNotification('exit');
    const exitedAt = await sidecar.exited;
    console.log(`sidecar: exit sent while checking the 100,000-key document: process ended after ${ms(exitedAt - exitSent)}`);
    connection.dispose();
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

await main();
