// A real LSP client (vscode-jsonrpc, the library under vscode-languageclient) driving the real
// `mirrord ide` binary over stdio. The binary comes from $MIRRORD_BIN (default
// target/debug/mirrord).

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as rpc from 'vscode-jsonrpc/node.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.resolve(REPO, process.env.MIRRORD_BIN ?? 'target/debug/mirrord');

export function fileUri(file) {
  return pathToFileURL(file).href;
}

export function tempWorkspace(prefix = 'mirrord-ide-') {
  return realpathSync(mkdtempSync(path.join(tmpdir(), prefix)));
}

/** Runs the mirrord CLI and returns stdout (throws on a non-zero exit unless `allowFailure`). */
export function mirrord(args, { allowFailure = false } = {}) {
  try {
    return execFileSync(BIN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    if (allowFailure && error.stdout !== undefined) return error.stdout;
    throw error;
  }
}

/**
 * Starts the sidecar and initializes it for `workspace`. Returns a handle with the connection,
 * helpers for documents and waiters for notifications.
 */
export async function startSidecar({ workspace, initializationOptions, env } = {}) {
  const child = spawn(BIN, ['ide'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, MIRRORD_IDE_TEST_HOOKS: '1', ...env },
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const connection = rpc.createMessageConnection(
    new rpc.StreamMessageReader(child.stdout),
    new rpc.StreamMessageWriter(child.stdin),
  );
  const diagnostics = new Map();
  const publishLog = [];
  const listeners = new Set();
  const notify = () => {
    for (const listener of [...listeners]) listener();
  };
  const events = [];
  const progress = [];
  connection.onNotification('textDocument/publishDiagnostics', (params) => {
    diagnostics.set(params.uri, params);
    publishLog.push(params);
    notify();
  });
  connection.onNotification('mirrord/sessionEvent', (params) => {
    events.push(params);
    notify();
  });
  connection.onNotification('$/progress', (params) => {
    progress.push(params);
    notify();
  });
  connection.onRequest('window/workDoneProgress/create', () => null);
  connection.listen();

  const workspaceUri = workspace ? fileUri(workspace) : null;
  const started = process.hrtime.bigint();
  const init = await connection.sendRequest('initialize', {
    processId: process.pid,
    rootUri: workspaceUri,
    workspaceFolders: workspace ? [{ uri: workspaceUri, name: 'workspace' }] : null,
    capabilities: {
      textDocument: { completion: { completionItem: { snippetSupport: true } } },
      window: { workDoneProgress: true },
    },
    initializationOptions: { diagnosticsDelayMs: 0, ...initializationOptions },
  });
  const initializeMs = Number(process.hrtime.bigint() - started) / 1e6;
  await connection.sendNotification('initialized', {});

  /** Resolves with the value `check()` returns once it is truthy (re-checked on notifications). */
  function waitFor(check, what, timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      const attempt = () => {
        const value = check();
        if (value) {
          listeners.delete(attempt);
          clearTimeout(timer);
          resolve(value);
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        listeners.delete(attempt);
        reject(new Error(`timed out waiting for ${what}\nsidecar stderr:\n${stderr}`));
      }, timeoutMs);
      if (!attempt()) listeners.add(attempt);
    });
  }

  let version = 0;
  return {
    child,
    connection,
    init,
    initializeMs,
    events,
    progress,
    diagnostics,
    publishLog,
    stderr: () => stderr,
    exited,
    waitFor,
    /** Waits for diagnostics of `uri` published for `version` (or any, when undefined). */
    waitForDiagnostics(uri, { version: wanted, predicate = () => true, timeoutMs } = {}) {
      return waitFor(() => {
        const published = diagnostics.get(uri);
        if (!published) return null;
        if (wanted !== undefined && published.version !== wanted) return null;
        return predicate(published.diagnostics) ? published.diagnostics : null;
      }, `diagnostics for ${uri}`, timeoutMs);
    },
    async open(uri, text, languageId = 'json') {
      version += 1;
      diagnostics.delete(uri);
      await connection.sendNotification('textDocument/didOpen', {
        textDocument: { uri, languageId, version, text },
      });
      return version;
    },
    async change(uri, text) {
      version += 1;
      await connection.sendNotification('textDocument/didChange', {
        textDocument: { uri, version },
        contentChanges: [{ text }],
      });
      return version;
    },
    async close(uri) {
      await connection.sendNotification('textDocument/didClose', { textDocument: { uri } });
    },
    completion(uri, line, character) {
      return connection.sendRequest('textDocument/completion', {
        textDocument: { uri },
        position: { line, character },
      });
    },
    /** `shutdown` then `exit`; resolves with the exit status. */
    async stop() {
      await connection.sendRequest('shutdown');
      await connection.sendNotification('exit');
      const status = await exited;
      connection.dispose();
      return status;
    },
    kill() {
      child.kill('SIGKILL');
      connection.dispose();
    },
  };
}

/** The position of the `|` mark in `marked`, and the text without it. */
export function cursor(marked) {
  const offset = marked.indexOf('|');
  const text = marked.slice(0, offset) + marked.slice(offset + 1);
  const before = text.slice(0, offset).split('\n');
  return { text, line: before.length - 1, character: before[before.length - 1].length };
}

/** Applies LSP text edits (non-overlapping) to `text`. */
export function applyEdits(text, edits) {
  const lines = text.split('\n');
  const offset = ({ line, character }) =>
    lines.slice(0, line).reduce((sum, l) => sum + l.length + 1, 0) + character;
  const sorted = [...edits].sort((a, b) => offset(b.range.start) - offset(a.range.start));
  let result = text;
  for (const edit of sorted) {
    result = result.slice(0, offset(edit.range.start)) + edit.newText + result.slice(offset(edit.range.end));
  }
  return result;
}

export function isRoot() {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}
