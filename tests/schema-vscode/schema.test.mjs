// Loads the committed `schema/mirrord-schema.json` into VS Code's own JSON language service
// (`vscode-json-languageservice`, the library behind VS Code's JSON editing) and checks what a user
// editing `.mirrord/mirrord.json` sees: completion, hover and validation.
//
// Documents mark the cursor with `$0`. Every failure prints what the language service returned.

import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

import jsonLanguageService from 'vscode-json-languageservice';
import { TextDocument } from 'vscode-languageserver-textdocument';

const { getLanguageService, DiagnosticSeverity } = jsonLanguageService;

const SCHEMA_URL = new URL('../../schema/mirrord-schema.json', import.meta.url);
const SCHEMA = JSON.parse(readFileSync(SCHEMA_URL, 'utf8'));
const CURSOR = '$0';

/** URIs the language service asked for: the schema must be self-contained, so this stays empty. */
const requestedSchemaUris = [];

const service = getLanguageService({
  // VS Code's extension reads `file:` schemas from disk and fetches others over HTTP. The schema is
  // given inline and only uses local `#/definitions` references, so any request is a bug.
  schemaRequestService: async (uri) => {
    requestedSchemaUris.push(uri);
    if (uri.startsWith('file:')) {
      return readFile(fileURLToPath(uri), 'utf8');
    }
    throw new Error(`the schema asked for ${uri}; it must only use local #/definitions references`);
  },
});
service.configure({
  validate: true,
  schemas: [{ uri: SCHEMA_URL.href, fileMatch: ['*.json'], schema: SCHEMA }],
});

/** How mirrord reads `.json` config files: comments and trailing commas are fine. */
const MIRRORD_DOCUMENT_SETTINGS = {
  comments: 'ignore',
  trailingCommas: 'ignore',
  // The service reports schema problems as warnings unless told otherwise; mirrord rejects them.
  schemaValidation: 'error',
};

/** Opens `text` (with at most one `$0` cursor marker) as `.mirrord/mirrord.json`. */
function openDocument(text) {
  const cursorOffset = text.indexOf(CURSOR);
  assert.equal(text.indexOf(CURSOR, cursorOffset + 1), -1, `more than one ${CURSOR} in ${text}`);
  const content = cursorOffset === -1 ? text : text.replace(CURSOR, '');
  const document = TextDocument.create('file:///workspace/.mirrord/mirrord.json', 'jsonc', 1, content);
  const jsonDocument = service.parseJSONDocument(document);
  const cursor = cursorOffset === -1 ? undefined : document.positionAt(cursorOffset);
  return { document, jsonDocument, cursor };
}

async function completionLabels(text) {
  const { document, jsonDocument, cursor } = openDocument(text);
  assert.ok(cursor, `no ${CURSOR} cursor in ${text}`);
  const completion = await service.doComplete(document, cursor, jsonDocument);
  return (completion?.items ?? []).map((item) => item.label);
}

async function hoverText(text) {
  const { document, jsonDocument, cursor } = openDocument(text);
  assert.ok(cursor, `no ${CURSOR} cursor in ${text}`);
  const hover = await service.doHover(document, cursor, jsonDocument);
  if (!hover) {
    return '';
  }
  const contents = Array.isArray(hover.contents) ? hover.contents : [hover.contents];
  return contents.map((part) => (typeof part === 'string' ? part : part.value)).join('\n');
}

async function diagnostics(text) {
  const { document, jsonDocument } = openDocument(text);
  return service.doValidation(document, jsonDocument, MIRRORD_DOCUMENT_SETTINGS);
}

/** The LSP range of the first occurrence of `needle` in `text`. */
function rangeOf(text, needle) {
  const offset = text.indexOf(needle);
  assert.notEqual(offset, -1, `test bug: ${JSON.stringify(needle)} is not in ${text}`);
  const document = TextDocument.create('file:///range.json', 'json', 1, text);
  return { start: document.positionAt(offset), end: document.positionAt(offset + needle.length) };
}

function describeDiagnostics(found) {
  if (found.length === 0) {
    return '  (none)';
  }
  const severityName = (severity) =>
    Object.keys(DiagnosticSeverity).find((name) => DiagnosticSeverity[name] === severity) ?? severity;
  return found
    .map(({ severity, message, range: { start, end } }) =>
      `  ${severityName(severity)} ${start.line}:${start.character}-${end.line}:${end.character} ${message}`)
    .join('\n');
}

/** Asserts exactly one error, at `expectedRange`, and returns it. */
function assertOneErrorAt(text, found, expectedRange) {
  const errors = found.filter((diagnostic) => diagnostic.severity === DiagnosticSeverity.Error);
  assert.equal(errors.length, 1,
    `expected exactly one error for ${text}, got:\n${describeDiagnostics(found)}`);
  assert.deepEqual(errors[0].range, expectedRange,
    `the error for ${text} is not at ${JSON.stringify(expectedRange)}:\n${describeDiagnostics(found)}`);
  return errors[0];
}

describe('completion', () => {
  test('the root of an empty object offers the top-level keys and nothing made up', async () => {
    const labels = await completionLabels(`{${CURSOR}}`);
    const received = `received labels: ${JSON.stringify(labels)}`;
    const expected = [
      'target', 'feature', 'agent', 'internal_proxy', 'skip_processes', 'accept_invalid_certificates',
      'kubeconfig', 'kube_context', 'operator', 'skip_build_tools',
    ];
    const missing = expected.filter((key) => !labels.includes(key));
    assert.deepEqual(missing, [], `top-level keys missing from completion; ${received}`);
    assert.ok(!labels.includes('fetaure'), `a made-up key was offered; ${received}`);
    const notInSchema = labels.filter((label) => !Object.hasOwn(SCHEMA.properties, label));
    assert.deepEqual(notInSchema, [], `offered keys that the schema's root does not define; ${received}`);
  });

  for (const [name, text] of [
    ['after the colon', `{"feature": {"fs": {"mode": ${CURSOR}}}}`],
    ['inside an empty string', `{"feature": {"fs": {"mode": "${CURSOR}"}}}`],
  ]) {
    test(`the value of feature.fs.mode ${name} offers exactly the modes`, async () => {
      const labels = await completionLabels(text);
      const received = `received labels for ${text}: ${JSON.stringify(labels)}`;
      const values = labels.map((label) => {
        try {
          return JSON.parse(label);
        } catch {
          assert.fail(`a completion label is not a JSON value: ${JSON.stringify(label)}; ${received}`);
        }
      });
      // `mode` is `anyOf: [FsMode, {type: null}]`, so `null` may be offered too; nothing else may.
      const strings = values.filter((value) => value !== null).sort();
      assert.deepEqual(strings, ['local', 'localwithoverrides', 'read', 'write'], received);
    });
  }
});

describe('hover', () => {
  test('the "target" key describes target paths', async () => {
    const text = `{"${CURSOR}target": "pod/x"}`;
    const hover = await hoverText(text);
    assert.ok(hover.includes('pod/'),
      `hover over "target" in ${text} does not mention \`pod/\`; received:\n${hover}`);
  });
});

describe('validation', () => {
  test('a valid config has no diagnostics at all', async () => {
    const text = `{
      // comments and trailing commas are allowed in mirrord's .json files
      "target": { "path": "deployment/api/container/main", "namespace": "staging" },
      "skip_processes": ["bash"],
      "feature": {
        "env": { "include": "DATABASE_*;PORT", "override": { "LOG_LEVEL": "debug" } },
        "fs": { "mode": "read", "read_only": ["^/etc/app/"] },
        "network": { "incoming": { "mode": "steal", "port_mapping": [[9333, 80]] } },
      },
    }`;
    const found = await diagnostics(text);
    assert.equal(found.length, 0, `expected no diagnostics, got:\n${describeDiagnostics(found)}`);
    assert.deepEqual(requestedSchemaUris, [], 'the language service had to fetch schemas');
  });

  test('an unknown key is an error on the key', async () => {
    const text = '{"fetaure": {}}';
    const error = assertOneErrorAt(text, await diagnostics(text), rangeOf(text, '"fetaure"'));
    assert.match(error.message, /fetaure/);
  });

  test('a value that is not a mode is an error on the value', async () => {
    const text = '{"feature": {"fs": "wirte"}}';
    assertOneErrorAt(text, await diagnostics(text), rangeOf(text, '"wirte"'));
  });

  test('an invalid target path shows the patternErrorMessage', async () => {
    const text = '{"target": "nope/x"}';
    const error = assertOneErrorAt(text, await diagnostics(text), rangeOf(text, '"nope/x"'));
    const expected = SCHEMA.definitions.TargetPath.patternErrorMessage;
    assert.ok(expected, 'the schema lost definitions.TargetPath.patternErrorMessage');
    assert.equal(error.message, expected);
  });

  test('a deprecated key is a warning with its deprecationMessage, not an error', async () => {
    const text = '{"pause": true}';
    const found = await diagnostics(text);
    const warnings = found.filter((diagnostic) => diagnostic.severity === DiagnosticSeverity.Warning);
    assert.equal(found.length, 1, `expected exactly one diagnostic, got:\n${describeDiagnostics(found)}`);
    assert.equal(warnings.length, 1, `expected a warning, got:\n${describeDiagnostics(found)}`);
    assert.equal(warnings[0].message, SCHEMA.properties.pause.deprecationMessage);
  });

  test('feature.env with both include and exclude is an error on the env object', async () => {
    const text = '{"feature": {"env": {"include": "A", "exclude": "B"}}}';
    assertOneErrorAt(text, await diagnostics(text), rangeOf(text, '{"include": "A", "exclude": "B"}'));
  });
});
