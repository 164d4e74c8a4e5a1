// The language features and custom requests of the real `mirrord ide`, driven by a real LSP
// client over stdio. Needs root (a sandbox pod is started as a live target).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { startSidecar, tempWorkspace, fileUri, cursor, applyEdits, mirrord, isRoot } from './sidecar.mjs';

const SANDBOX = 'ide-test';
let workspace;
let sidecar;

before(async () => {
  assert.ok(isRoot(), 'these tests start a sandbox pod as a live target: run them as root');
  mirrord(['sandbox', 'up', SANDBOX]);
  workspace = tempWorkspace();
  mkdirSync(path.join(workspace, '.mirrord'));
  sidecar = await startSidecar({ workspace });
});

after(async () => {
  if (sidecar) sidecar.kill();
  mirrord(['sandbox', 'down', SANDBOX], { allowFailure: true });
  if (workspace) rmSync(workspace, { recursive: true, force: true });
});

const range = (d) => [d.range.start.line, d.range.start.character, d.range.end.line, d.range.end.character];
const labels = (result) => (Array.isArray(result) ? result : result.items).map((item) => item.label);

test('initialize advertises the features and the custom methods', () => {
  const { capabilities, serverInfo } = sidecar.init;
  assert.equal(serverInfo.name, 'mirrord');
  assert.equal(capabilities.textDocumentSync, 1);
  assert.ok(capabilities.hoverProvider);
  assert.ok(capabilities.completionProvider);
  assert.deepEqual(capabilities.codeActionProvider.codeActionKinds, ['quickfix']);
  assert.ok(capabilities.experimental.mirrord.requests.includes('mirrord/patchLaunchConfig'));
});

test('a config with three mistakes gets three diagnostics at the right ranges', async () => {
  const uri = fileUri(path.join(workspace, 'three.mirrord.json'));
  const text = [
    '{',
    '  "tagret": "pod/x",',
    '  "agent": { "ttl": 70000 },',
    '  "feature": { "fs": "wirte" }',
    '}',
  ].join('\n');
  const version = await sidecar.open(uri, text);
  const diagnostics = await sidecar.waitForDiagnostics(uri, { version });
  assert.deepEqual(diagnostics.map(range), [
    [1, 2, 1, 10],
    [2, 20, 2, 25],
    [3, 21, 3, 28],
  ]);
  assert.match(diagnostics[0].message, /unknown key `tagret`.*did you mean `target`/);
  assert.match(diagnostics[1].message, /must be at most 65535/);
  assert.match(diagnostics[2].message, /did you mean `write`/);
  assert.ok(diagnostics.every((d) => d.severity === 1 && d.source === 'mirrord'));

  // The same engine as `mirrord verify-config`: the same messages.
  const file = path.join(workspace, 'three-on-disk.json');
  writeFileSync(file, text);
  const cli = JSON.parse(mirrord(['verify-config', '--output', 'json', file], { allowFailure: true }));
  assert.deepEqual(cli.diagnostics.map((d) => d.message), diagnostics.map((d) => d.message));

  // Editing fixes one; diagnostics follow the change.
  const fixed = await sidecar.change(uri, text.replace('tagret', 'target'));
  const after = await sidecar.waitForDiagnostics(uri, { version: fixed });
  assert.equal(after.length, 2);
});

test('completion at the root offers the keys with documentation and defaults', async () => {
  const uri = fileUri(path.join(workspace, 'root.mirrord.json'));
  const { text, line, character } = cursor('{\n  "agent": {},\n  |\n}');
  await sidecar.open(uri, text);
  const result = await sidecar.completion(uri, line, character);
  const names = labels(result);
  for (const key of ['target', 'feature', 'skip_processes', 'internal_proxy']) assert.ok(names.includes(key), key);
  assert.ok(!names.includes('agent'), 'keys already present are not offered again');
  const feature = result.items.find((item) => item.label === 'feature');
  assert.match(feature.documentation.value, /\w/);
  const skip = result.items.find((item) => item.label === 'skip_build_tools');
  assert.equal(skip.labelDetails.description, 'default: true');
  assert.equal(feature.insertTextFormat, 2, 'objects are inserted as snippets');
  assert.match(feature.textEdit.newText, /^"feature": \{/);
});

test('completion inside feature.network.incoming offers its keys and modes', async () => {
  const uri = fileUri(path.join(workspace, 'incoming.mirrord.json'));
  const keys = cursor('{ "feature": { "network": { "incoming": {\n  "mode": "steal",\n  |\n} } } }');
  await sidecar.open(uri, keys.text);
  const names = labels(await sidecar.completion(uri, keys.line, keys.character));
  for (const key of ['http_filter', 'port_mapping', 'ignore_ports', 'ports', 'ignore_localhost']) {
    assert.ok(names.includes(key), `${key} in ${names}`);
  }
  assert.ok(!names.includes('mode'));

  const value = cursor('{ "feature": { "network": { "incoming": "|" } } }');
  await sidecar.change(uri, value.text);
  const modes = labels(await sidecar.completion(uri, value.line, value.character));
  assert.deepEqual(modes.filter((m) => ['mirror', 'steal', 'off'].includes(m)).sort(), ['mirror', 'off', 'steal']);
});

test('completion inside target offers the live targets', async () => {
  const uri = fileUri(path.join(workspace, '.mirrord', 'mirrord.json'));
  const { text, line, character } = cursor('{\n  "target": "|"\n}');
  await sidecar.open(uri, text);
  const result = await sidecar.completion(uri, line, character);
  const names = labels(result);
  assert.ok(names.includes(`sandbox/${SANDBOX}`), names.slice(0, 10).join(', '));
  assert.ok(names.includes('targetless'));
  const own = result.items.find((item) => item.label === `pid/${process.pid}`);
  assert.ok(own, 'this test process is a local target');
  assert.match(own.detail, /node/);
  const sandbox = result.items.find((item) => item.label === `sandbox/${SANDBOX}`);
  assert.equal(sandbox.textEdit.newText, `"sandbox/${SANDBOX}"`, 'the quotes typed are replaced too');
});

test('completion in YAML and TOML documents', async () => {
  const yaml = fileUri(path.join(workspace, '.mirrord', 'mirrord.yaml'));
  const y = cursor('feature:\n  network:\n    incoming:\n      |\n');
  await sidecar.open(yaml, y.text, 'yaml');
  assert.ok(labels(await sidecar.completion(yaml, y.line, y.character)).includes('http_filter'));

  const toml = fileUri(path.join(workspace, '.mirrord', 'mirrord.toml'));
  const t = cursor('[feature.network]\nincoming = "|"\n');
  await sidecar.open(toml, t.text, 'toml');
  assert.ok(labels(await sidecar.completion(toml, t.line, t.character)).includes('steal'));
});

test('hover shows the description, type and default', async () => {
  const uri = fileUri(path.join(workspace, 'hover.mirrord.json'));
  const text = '{ "internal_proxy": { "start_idle_timeout": 60 } }';
  await sidecar.open(uri, text);
  const hover = await sidecar.connection.sendRequest('textDocument/hover', {
    textDocument: { uri },
    position: { line: 0, character: text.indexOf('start_idle') + 3 },
  });
  assert.equal(hover.contents.kind, 'markdown');
  assert.match(hover.contents.value, /internal_proxy\.start_idle_timeout/);
  assert.match(hover.contents.value, /integer/);
  assert.match(hover.contents.value, /Default: `60`/);
  assert.match(hover.contents.value, /first local process/);
});

test('a code action applies the suggestion', async () => {
  const uri = fileUri(path.join(workspace, 'fix.mirrord.json'));
  const text = '{\n  "tagret": "pod/x",\n  "feature": { "network": { "incoming": { "mode": "steal", "http_header_filter": { "filter": "x: y" } } } }\n}';
  const version = await sidecar.open(uri, text);
  const diagnostics = await sidecar.waitForDiagnostics(uri, { version });
  const actions = await sidecar.connection.sendRequest('textDocument/codeAction', {
    textDocument: { uri },
    range: diagnostics[0].range,
    context: { diagnostics: [diagnostics[0]] },
  });
  assert.equal(actions.length, 1);
  assert.equal(actions[0].kind, 'quickfix');
  assert.match(actions[0].title, /tagret.*target/);
  const fixed = applyEdits(text, actions[0].edit.changes[uri]);
  assert.match(fixed, /"target": "pod\/x"/);

  // The deprecated spelling is rewritten too (a warning with a replacement).
  const deprecated = diagnostics.find((d) => d.severity === 2);
  const rename = await sidecar.connection.sendRequest('textDocument/codeAction', {
    textDocument: { uri },
    range: deprecated.range,
    context: { diagnostics: [deprecated] },
  });
  const renamed = applyEdits(text, rename[0].edit.changes[uri]);
  assert.match(renamed, /"http_filter": \{/);

  const next = await sidecar.change(uri, fixed);
  const remaining = await sidecar.waitForDiagnostics(uri, { version: next });
  assert.ok(!remaining.some((d) => d.message.includes('tagret')));
});

test('mirrord/listTargets lists the sandbox, local processes and targetless, in groups', async () => {
  const answer = await sidecar.connection.sendRequest('mirrord/listTargets', {});
  assert.deepEqual(answer.groups.map((g) => g.title), ['Sandbox pods', 'Local processes', 'No target']);
  const all = { ...answer, targets: answer.groups.flatMap((g) => g.targets) };
  const sandbox = all.targets.find((t) => t.path === `sandbox/${SANDBOX}`);
  assert.deepEqual({ kind: sandbox.kind, available: sandbox.available }, { kind: 'sandbox', available: true });
  assert.ok(all.targets.some((t) => t.path === 'targetless'));
  assert.ok(all.targets.some((t) => t.path === `pid/${process.pid}` && t.kind === 'pid'));
  assert.deepEqual(all.namespaces, []);
  const sandboxes = (await sidecar.connection.sendRequest('mirrord/listTargets', { kinds: ['sandbox'] })).groups.flatMap((g) => g.targets);
  assert.ok(sandboxes.length > 0 && sandboxes.every((t) => t.kind === 'sandbox'));
});

test('mirrord/verifyConfig answers like `mirrord verify-config --output json`', async () => {
  const file = path.join(workspace, 'verify.json');
  const text = '{ "target": "sandbox/ide-test", "feature": { "fs": "read", "network": { "incoming": "stael" } } }';
  writeFileSync(file, text);
  const cli = JSON.parse(mirrord(['verify-config', '--output', 'json', file], { allowFailure: true }));
  assert.deepEqual(await sidecar.connection.sendRequest('mirrord/verifyConfig', { uri: fileUri(file) }), cli);
  assert.deepEqual(await sidecar.connection.sendRequest('mirrord/verifyConfig', { text, format: 'json' }), cli);

  const valid = path.join(workspace, 'valid.yaml');
  writeFileSync(valid, 'target: sandbox/ide-test\nfeature:\n  fs: read\n');
  const validCli = JSON.parse(mirrord(['verify-config', '--output', 'json', valid]));
  const answer = await sidecar.connection.sendRequest('mirrord/verifyConfig', { uri: fileUri(valid) });
  assert.deepEqual(answer, validCli);
  assert.equal(answer.valid, true);
});

test('mirrord/schema is the schema of this binary', async () => {
  const schema = await sidecar.connection.sendRequest('mirrord/schema');
  assert.deepEqual(schema, JSON.parse(mirrord(['schema'])));
  assert.deepEqual(schema, JSON.parse(readFileSync(path.join(path.dirname(new URL(import.meta.url).pathname), '../../schema/mirrord-schema.json'), 'utf8')));
});

test('config files changed outside the editor are checked again', async () => {
  const file = path.join(workspace, '.mirrord', 'staging.json');
  const uri = fileUri(file);
  writeFileSync(file, '{ "feature": { "fs": "wirte" } }');
  const first = await sidecar.waitForDiagnostics(uri, { predicate: (d) => d.length === 1 });
  assert.match(first[0].message, /did you mean `write`/);
  writeFileSync(file, '{ "feature": { "fs": "write" } }');
  await sidecar.waitForDiagnostics(uri, { predicate: (d) => d.length === 0 });
  rmSync(file);
  await sidecar.waitForDiagnostics(uri, { predicate: (d) => d.length === 0 });
});

test('diagnostics after edits are debounced: a burst of changes is checked once', async () => {
  const own = await startSidecar({ workspace, initializationOptions: { diagnosticsDelayMs: 150 } });
  const uri = fileUri(path.join(workspace, 'burst.mirrord.json'));
  const published = () => own.publishLog.filter((p) => p.uri === uri).map((p) => p.version);
  const opened = await own.open(uri, '{}');
  await own.waitFor(() => published().includes(opened), 'the diagnostics of the opened document');
  let last;
  for (const text of ['{ "t', '{ "ta', '{ "tar', '{ "target": "pid/1" }']) last = await own.change(uri, text);
  await new Promise((resolve) => setTimeout(resolve, 600));
  assert.deepEqual(published(), [opened, last]);
  own.kill();
});

test('shutdown and exit end the sidecar cleanly', async () => {
  const own = await startSidecar({ workspace });
  const status = await own.stop();
  assert.deepEqual(status, { code: 0, signal: null });
});
