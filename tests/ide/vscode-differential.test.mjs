// The sidecar against VS Code's own JSON language service (vscode-json-languageservice) on the
// same schema: every schema error VS Code reports in the corpus configs is reported by the
// sidecar at the same range (and every warning inside VS Code's range), and completion at the
// root offers the same keys.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { getLanguageService } from 'vscode-json-languageservice';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { REPO, startSidecar, mirrord } from './sidecar.mjs';

const SCHEMA_URI = 'mirrord://schema/mirrord-schema.json';
let sidecar;
let schema;
let service;

before(async () => {
  schema = JSON.parse(mirrord(['schema']));
  service = getLanguageService({});
  service.configure({ validate: true, allowComments: true, schemas: [{ uri: SCHEMA_URI, fileMatch: ['*'], schema }] });
  sidecar = await startSidecar({});
});

after(async () => {
  if (sidecar) await sidecar.stop();
});

function configs() {
  const files = [];
  for (const folder of ['tests/config/corpus', 'tests/config/seed']) {
    for (const name of readdirSync(path.join(REPO, folder)).sort()) {
      if (name.endsWith('.json')) files.push(path.join(REPO, folder, name));
    }
  }
  return files;
}

/** VS Code's diagnostics, split into syntax problems and schema problems. */
async function vscodeDiagnostics(uri, text) {
  const document = TextDocument.create(uri, 'jsonc', 1, text);
  const parsed = service.parseJSONDocument(document);
  const diagnostics = await service.doValidation(document, parsed, { comments: 'ignore', trailingCommas: 'ignore' }, schema);
  // Syntax errors carry the parser's error codes (0x100 and up); schema problems do not.
  const syntax = parsed.syntaxErrors.length > 0 || diagnostics.some((d) => typeof d.code === 'number' && d.code >= 0x100);
  return { syntax, schemaProblems: diagnostics.filter((d) => !(typeof d.code === 'number' && d.code >= 0x100)) };
}

const notAfter = (a, b) => a.line < b.line || (a.line === b.line && a.character <= b.character);
const within = (inner, outer) => notAfter(outer.start, inner.start) && notAfter(inner.end, outer.end);
const key = (r) => `${r.start.line}:${r.start.character}-${r.end.line}:${r.end.character}`;

test('every schema error VS Code reports is reported by the sidecar at the same range', async (t) => {
  const files = configs();
  assert.ok(files.length >= 20, `${files.length} configs`);
  let compared = 0;
  let problems = 0;
  const missing = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const uri = `file://${file}`;
    const version = await sidecar.open(uri, text, 'mirrord-config');
    const ours = await sidecar.waitForDiagnostics(uri, { version });
    await sidecar.close(uri);
    const { syntax, schemaProblems } = await vscodeDiagnostics(uri, text);
    if (syntax) continue; // The sidecar stops at the first syntax error; VS Code goes on.
    compared += 1;
    const ranges = new Set(ours.map((d) => key(d.range)));
    for (const problem of schemaProblems) {
      problems += 1;
      // Errors: the same range. Warnings (deprecated keys, forbidden key combinations): VS Code
      // marks the whole property or object, the config engine (and so `verify-config`) marks the
      // key that causes it, inside that range.
      const found = problem.severity === 1
        ? ranges.has(key(problem.range))
        : ours.some((d) => within(d.range, problem.range));
      if (!found) {
        missing.push(`${path.relative(REPO, file)} ${key(problem.range)} ${problem.severity === 1 ? 'error' : 'warning'}: ${problem.message}\n    sidecar: ${ours.map((d) => `${key(d.range)} ${d.message}`).join('\n             ') || '(nothing)'}`);
      }
    }
  }
  t.diagnostic(`${compared} configs compared, ${problems} VS Code problems`);
  assert.ok(compared >= 20, `only ${compared} configs without syntax errors`);
  assert.ok(problems >= 20, `only ${problems} problems compared`);
  assert.deepEqual(missing, [], `VS Code problems the sidecar misses:\n${missing.join('\n')}`);
});

test('completion at the root offers the same keys as VS Code', async () => {
  for (const marked of ['{|}', '{\n  |\n}', '{\n  "agent": {},\n  |\n}']) {
    const offset = marked.indexOf('|');
    const text = marked.replace('|', '');
    const before = text.slice(0, offset).split('\n');
    const position = { line: before.length - 1, character: before[before.length - 1].length };
    const document = TextDocument.create('file:///root.json', 'json', 1, text);
    const theirs = await service.doComplete(document, position, service.parseJSONDocument(document));
    const uri = 'file:///tmp/root.mirrord.json';
    await sidecar.open(uri, text);
    const ours = await sidecar.completion(uri, position.line, position.character);
    await sidecar.close(uri);
    const names = (items) => items.map((item) => item.label.replace(/^"|"$/g, '')).sort();
    assert.deepEqual(names(ours.items), names(theirs.items), `completion in ${JSON.stringify(marked)}`);
  }
});
