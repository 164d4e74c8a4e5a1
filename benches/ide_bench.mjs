// Benchmarks of the IDE sidecar (`mirrord ide`), driven over stdio by a real LSP client
// (vscode-jsonrpc), with VS Code's own JSON language service (vscode-json-languageservice, in
// this node process, no IPC) measured on the same documents in the same run.
//
// Prints figures and ratios; asserts nothing. Targets (DESIGN.md §4): cold start to the
// `initialize` reply ≤ 50 ms, diagnostics for a 200-line config ≤ 2 ms, completion ≤ 5 ms,
// idle RSS ≤ 25 MB, validation faster than VS Code's JSON language service.
//
//   (cd tests/ide && npm ci) && cargo build --release --bin mirrord
//   node benches/ide_bench.mjs            # MIRRORD_BIN overrides the binary
//
// The sidecar's figures include the round trip through its stdio (framing, JSON, pipes); VS
// Code's do not, so the ratios are conservative.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(REPO, 'tests/ide/package.json'));
const rpc = require('vscode-jsonrpc/node');
const { getLanguageService } = require('vscode-json-languageservice');
const { TextDocument } = require('vscode-languageserver-textdocument');

const release = path.join(REPO, 'target/release/mirrord');
const BIN = path.resolve(REPO, process.env.MIRRORD_BIN ?? (existsSync(release) ? release : 'target/debug/mirrord'));
const ROUNDS = Number(process.env.ROUNDS ?? 200);

const now = () => Number(process.hrtime.bigint()) / 1e6;
function stats(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { median: at(0.5), p90: at(0.9), p99: at(0.99), min: sorted[0] };
}
const ms = (value) => `${value.toFixed(3)} ms`;
function line(name, figure, target, extra = '') {
  const ratio = target ? `  (${(figure / target).toFixed(2)}× the target ${target} ${name.includes('RSS') ? 'MB' : 'ms'})` : '';
  console.log(`${name.padEnd(44)} ${name.includes('RSS') ? `${figure.toFixed(1)} MB` : ms(figure)}${ratio}${extra}`);
}

async function startSidecar() {
  const started = now();
  const child = spawn(BIN, ['ide'], { stdio: ['pipe', 'pipe', 'ignore'] });
  const connection = rpc.createMessageConnection(new rpc.StreamMessageReader(child.stdout), new rpc.StreamMessageWriter(child.stdin));
  const published = new Map();
  const waiters = [];
  connection.onNotification('textDocument/publishDiagnostics', (params) => {
    published.set(params.uri, params);
    for (const waiter of waiters.splice(0)) waiter();
  });
  connection.listen();
  await connection.sendRequest('initialize', {
    processId: process.pid,
    rootUri: null,
    capabilities: { textDocument: { completion: { completionItem: { snippetSupport: true } } } },
    initializationOptions: { diagnosticsDelayMs: 0, watchFiles: false },
  });
  const coldStart = now() - started;
  await connection.sendNotification('initialized', {});
  const diagnosticsFor = (uri, version) =>
    new Promise((resolve) => {
      const check = () => {
        const p = published.get(uri);
        if (p && p.version === version) resolve(p.diagnostics);
        else waiters.push(check);
      };
      check();
    });
  return { child, connection, coldStart, diagnosticsFor };
}

/** A realistic 200-line config: every section, a few mistakes. */
function config200() {
  const lines = ['{', '  "target": { "path": "deployment/api/container/main", "namespace": "staging" },'];
  lines.push('  "feature": {', '    "env": { "include": "DB_*;API_*", "override": {');
  for (let i = 0; lines.length < 120; i++) lines.push(`      "VAR_${i}": "value-${i}",`);
  lines.push('      "LAST": "x"', '    } },');
  lines.push('    "fs": { "mode": "read", "read_write": [', ...Array.from({ length: 30 }, (_, i) => `      "^/data/app-${i}/.*\\\\.json$",`), '      "^/tmp/x$"', '    ] },');
  lines.push('    "network": {', '      "incoming": { "mode": "stael", "ignore_ports": [9229, 5005], "port_mapping": [[8080, 80]] },');
  lines.push('      "outgoing": { "tcp": true, "udp": true, "filter": { "local": [":53", "10.0.0.0/8"] } },', '      "dns": true', '    }', '  },');
  lines.push('  "agent": { "ttl": 70000, "log_level": "info", "tolerations": [');
  while (lines.length < 196) lines.push('    { "key": "node-role", "operator": "Exists", "effect": "NoSchedule" },');
  lines.push('    { "key": "x", "operator": "Exists" }', '  ] },', '  "tagret": "pod/x"', '}');
  return lines.join('\n');
}

async function main() {
  console.log(`mirrord ide benchmarks — ${BIN}`);
  console.log(`node ${process.version}, ${ROUNDS} rounds per figure\n`);

  // Cold start: spawn to the initialize reply.
  const spawnTrue = [];
  for (let i = 0; i < 20; i++) {
    const start = now();
    spawnSync('/bin/true');
    spawnTrue.push(now() - start);
  }
  const colds = [];
  for (let i = 0; i < 20; i++) {
    const sidecar = await startSidecar();
    colds.push(sidecar.coldStart);
    await sidecar.connection.sendRequest('shutdown');
    await sidecar.connection.sendNotification('exit');
    await new Promise((resolve) => sidecar.child.on('exit', resolve));
    sidecar.connection.dispose();
  }
  const cold = stats(colds);
  line('cold start → initialize reply (median)', cold.median, 50, `; p90 ${ms(cold.p90)}; spawning /bin/true: ${ms(stats(spawnTrue).median)}`);

  const sidecar = await startSidecar();
  const { connection } = sidecar;
  const schema = await connection.sendRequest('mirrord/schema');
  const service = getLanguageService({});
  service.configure({ validate: true, allowComments: true, schemas: [{ uri: 'mirrord://schema', fileMatch: ['*'], schema }] });

  // Diagnostics for a 200-line config.
  const text = config200();
  console.log(`\n200-line config: ${text.split('\n').length} lines, ${text.length} bytes`);
  const uri = 'file:///bench/mirrord.json';
  let version = 1;
  await connection.sendNotification('textDocument/didOpen', { textDocument: { uri, languageId: 'json', version, text } });
  const diagnostics = await sidecar.diagnosticsFor(uri, version);
  const changeSamples = [];
  for (let i = 0; i < ROUNDS; i++) {
    version += 1;
    const changed = text.replace('"value-0"', `"value-${i}"`);
    const start = now();
    await connection.sendNotification('textDocument/didChange', { textDocument: { uri, version }, contentChanges: [{ text: changed }] });
    await sidecar.diagnosticsFor(uri, version);
    changeSamples.push(now() - start);
  }
  const verifySamples = [];
  for (let i = 0; i < ROUNDS; i++) {
    const start = now();
    await connection.sendRequest('mirrord/verifyConfig', { text, format: 'json' });
    verifySamples.push(now() - start);
  }
  const vscodeSamples = [];
  let vscodeDiagnostics = [];
  for (let i = 0; i < ROUNDS; i++) {
    const document = TextDocument.create(`file:///bench/${i}.json`, 'json', 1, text.replace('"value-0"', `"value-${i}"`));
    const start = now();
    vscodeDiagnostics = await service.doValidation(document, service.parseJSONDocument(document), { comments: 'ignore', trailingCommas: 'ignore' }, schema);
    vscodeSamples.push(now() - start);
  }
  const change = stats(changeSamples);
  const vscode = stats(vscodeSamples);
  line('diagnostics: didChange → publish (median)', change.median, 2, `; p99 ${ms(change.p99)}; ${diagnostics.length} diagnostics`);
  line('diagnostics: mirrord/verifyConfig round trip', stats(verifySamples).median, 2);
  line('VS Code JSON service doValidation (median)', vscode.median, null, `; p99 ${ms(vscode.p99)}; ${vscodeDiagnostics.length} diagnostics`);
  console.log(`${'ratio sidecar / VS Code (median)'.padEnd(44)} ${(change.median / vscode.median).toFixed(2)}× (below 1: the sidecar is faster, IPC included)`);

  // Completion.
  const cases = {
    'root': ['{\n  "agent": {},\n  ', '\n}'],
    'feature.network.incoming': ['{ "feature": { "network": { "incoming": {\n    ', '\n  } } } }'],
    'target value (live targets)': ['{ "target": "', '" }'],
  };
  console.log('');
  for (const [name, [head, tail]] of Object.entries(cases)) {
    const docUri = `file:///bench/${name.replace(/\W+/g, '-')}.mirrord.json`;
    const docText = head + tail;
    const lines = head.split('\n');
    const position = { line: lines.length - 1, character: lines[lines.length - 1].length };
    await connection.sendNotification('textDocument/didOpen', { textDocument: { uri: docUri, languageId: 'json', version: 1, text: docText } });
    const samples = [];
    let count = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const start = now();
      const result = await connection.sendRequest('textDocument/completion', { textDocument: { uri: docUri }, position });
      samples.push(now() - start);
      count = result.items.length;
    }
    const theirs = [];
    for (let i = 0; i < ROUNDS; i++) {
      const document = TextDocument.create(docUri, 'json', 1, docText);
      const start = now();
      await service.doComplete(document, position, service.parseJSONDocument(document));
      theirs.push(now() - start);
    }
    const ours = stats(samples);
    line(`completion: ${name} (median)`, ours.median, 5, `; p99 ${ms(ours.p99)}; ${count} items; VS Code ${ms(stats(theirs).median)}`);
  }

  // Idle RSS, after the work above and a second of idleness.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const status = readFileSync(`/proc/${sidecar.child.pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024;
  const fresh = await startSidecar();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const freshRss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${fresh.child.pid}/status`, 'utf8'))[1]) / 1024;
  console.log('');
  line('idle RSS, fresh after initialize', freshRss, 25);
  line('idle RSS, after the benchmarks above', rss, 25);

  for (const s of [sidecar, fresh]) {
    await s.connection.sendRequest('shutdown');
    await s.connection.sendNotification('exit');
    s.connection.dispose();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
