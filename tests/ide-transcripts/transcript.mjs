// Reading and matching the recorded sidecar exchanges in this folder (the format is in README.md).
// No dependencies: the recorder and the VS Code extension's replay tests both import this file.

import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const TRANSCRIPTS_DIR = path.dirname(fileURLToPath(import.meta.url));

/** Whole-value placeholder: the client's value may be anything, but must be present. */
export const ANY = '${any}';
/** Whole-value placeholder: the client's value may be anything or absent. */
export const OPTIONAL = '${optional}';

/** Every transcript, by name. */
export function loadTranscripts(dir = TRANSCRIPTS_DIR) {
  const transcripts = new Map();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    const transcript = JSON.parse(readFileSync(path.join(dir, file), 'utf8'));
    transcripts.set(transcript.name, transcript);
  }
  return transcripts;
}

/**
 * Replaces the in-string placeholders `${workspaceFolder}`, `${workspaceFolderUri}` and `${ide}`
 * (and any other key of `vars`) everywhere in `value`. `${any}` / `${optional}` stay as they are.
 */
export function substitute(value, vars) {
  if (typeof value === 'string') {
    return value.replace(/\$\{(\w+)\}/g, (whole, name) => (name in vars ? vars[name] : whole));
  }
  if (Array.isArray(value)) return value.map((item) => substitute(item, vars));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, substitute(item, vars)]));
  }
  return value;
}

/** The placeholder values for a workspace folder and an editor. */
export function placeholders(workspaceFolder, ide) {
  return {
    workspaceFolder,
    workspaceFolderUri: pathToFileURL(workspaceFolder).href,
    ide,
  };
}

/** The inverse of `substitute` for a recording: the workspace folder's path and URI become placeholders. */
export function generalize(value, workspaceFolder) {
  const uri = pathToFileURL(workspaceFolder).href;
  if (typeof value === 'string') {
    return value.split(uri).join('${workspaceFolderUri}').split(workspaceFolder).join('${workspaceFolder}');
  }
  if (Array.isArray(value)) return value.map((item) => generalize(item, workspaceFolder));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, generalize(item, workspaceFolder)]));
  }
  return value;
}

function kind(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/**
 * Compares `actual` with the recorded `expected` (placeholders already substituted) and returns
 * the differences as `path: problem` lines (empty when they match).
 *
 * - `exact`: equal JSON, except that `${any}` matches any present value and `${optional}` any
 *   value or an absent key.
 * - `shape`: objects have every recorded key (extra keys allowed), values have the recorded JSON
 *   type, and every element of a non-empty actual array has the shape of the first recorded one
 *   (an empty recorded array matches any array). Placeholders work as in `exact`.
 * - `subset`: like `exact`, but the actual object may have keys the recording does not (at any depth).
 */
export function compare(actual, expected, mode, at = '$') {
  if (expected === ANY || expected === OPTIONAL) {
    return actual === undefined && expected === ANY ? [`${at}: missing`] : [];
  }
  if (actual === undefined) return [`${at}: missing`];
  if (kind(actual) !== kind(expected)) {
    return [`${at}: expected ${kind(expected)} ${JSON.stringify(expected)}, got ${kind(actual)} ${JSON.stringify(actual)}`];
  }
  if (Array.isArray(expected)) {
    if (mode === 'shape') {
      if (expected.length === 0) return [];
      return actual.flatMap((item, index) => compare(item, expected[0], mode, `${at}[${index}]`));
    }
    if (actual.length !== expected.length) {
      return [`${at}: expected ${expected.length} elements, got ${actual.length}: ${JSON.stringify(actual)}`];
    }
    return expected.flatMap((item, index) => compare(actual[index], item, mode, `${at}[${index}]`));
  }
  if (kind(expected) === 'object') {
    const problems = Object.entries(expected).flatMap(([key, item]) => compare(actual[key], item, mode, `${at}.${key}`));
    if (mode === 'exact') {
      for (const key of Object.keys(actual)) {
        if (!(key in expected) && actual[key] !== undefined) problems.push(`${at}.${key}: unexpected`);
      }
    }
    return problems;
  }
  if (mode === 'shape') return [];
  return actual === expected ? [] : [`${at}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
}

/** How a client's request params must match the recording: `exchange.requestMatch` or `exact`. */
export function requestMode(exchange) {
  return exchange.requestMatch ?? 'exact';
}
