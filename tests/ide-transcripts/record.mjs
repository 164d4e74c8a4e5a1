#!/usr/bin/env node
// Records the transcripts in this folder from the real `mirrord ide` binary, or, with `--check`,
// runs the same scenarios and fails when a live response no longer matches its recording.
//
//   node tests/ide-transcripts/record.mjs [--check] [scenario…]
//
// The binary is $MIRRORD_BIN (default target/debug/mirrord). Scenarios that start a session bring
// up the sandbox pod `ide-transcripts` (root needed) and take it down at the end. Each scenario
// runs against a fresh sidecar in a fresh workspace folder, so session ids are deterministic.
// No dependencies: the LSP framing below is all the client this needs.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ANY, OPTIONAL, TRANSCRIPTS_DIR, compare, generalize, placeholders, substitute } from './transcript.mjs';

const REPO = path.resolve(TRANSCRIPTS_DIR, '../..');
const BIN = path.resolve(REPO, process.env.MIRRORD_BIN ?? 'target/debug/mirrord');
const SANDBOX = 'ide-transcripts';
const IDE = 'vscode';

/** A minimal LSP client over the sidecar's stdio. */
class Sidecar {
  /** `stateDir`: the sidecar's XDG_STATE_HOME (its recently used targets), fresh per scenario. */
  constructor(stateDir) {
    this.child = spawn(BIN, ['ide'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, XDG_STATE_HOME: stateDir } });
    this.stderr = '';
    this.child.stderr.on('data', (chunk) => {
      this.stderr += chunk;
    });
    this.pending = new Map();
    this.notifications = [];
    this.listeners = new Set();
    this.nextId = 1;
    let buffer = Buffer.alloc(0);
    this.child.stdout.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const headerEnd = buffer.indexOf('\r\n\r\n');
        if (headerEnd < 0) return;
        const length = Number(/Content-Length: (\d+)/i.exec(buffer.subarray(0, headerEnd).toString())[1]);
        if (buffer.length < headerEnd + 4 + length) return;
        const message = JSON.parse(buffer.subarray(headerEnd + 4, headerEnd + 4 + length).toString('utf8'));
        buffer = buffer.subarray(headerEnd + 4 + length);
        this.receive(message);
      }
    });
    this.exited = new Promise((resolve) => this.child.on('exit', resolve));
  }

  receive(message) {
    if (message.method !== undefined && message.id !== undefined) {
      // A request of the sidecar's (progress token creation, capability registration): accept it.
      this.write({ jsonrpc: '2.0', id: message.id, result: null });
    } else if (message.method !== undefined) {
      this.notifications.push({ method: message.method, params: message.params });
      for (const listener of [...this.listeners]) listener();
    } else {
      const resolve = this.pending.get(message.id);
      this.pending.delete(message.id);
      resolve('error' in message ? { error: message.error } : { result: message.result });
    }
  }

  write(message) {
    const body = Buffer.from(JSON.stringify(message), 'utf8');
    this.child.stdin.write(`Content-Length: ${body.length}\r\n\r\n`);
    this.child.stdin.write(body);
  }

  request(method, params) {
    const id = this.nextId++;
    const message = { jsonrpc: '2.0', id, method };
    if (params !== undefined) message.params = params;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.write(message);
    });
  }

  notify(method, params) {
    this.write({ jsonrpc: '2.0', method, params });
  }

  /** Resolves once `check()` holds for the notifications received so far. */
  until(check, what) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listeners.delete(attempt);
        reject(new Error(`timed out waiting for ${what}\nsidecar stderr:\n${this.stderr}`));
      }, 60000);
      const attempt = () => {
        if (!check(this.notifications)) return false;
        this.listeners.delete(attempt);
        clearTimeout(timer);
        resolve();
        return true;
      };
      if (!attempt()) this.listeners.add(attempt);
    });
  }
}

function mirrord(args, { allowFailure = false } = {}) {
  try {
    return execFileSync(BIN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    if (allowFailure) return '';
    throw error;
  }
}

/** Replaces the values at `paths` (dotted, `*` for every element or key) with `${any}`. */
function mask(value, paths) {
  const copy = structuredClone(value);
  for (const dotted of paths) {
    const keys = dotted.split('.');
    const visit = (node, index) => {
      if (node === null || typeof node !== 'object') return;
      const key = keys[index];
      const children = key === '*' ? Object.keys(node) : [key];
      for (const child of children) {
        if (!(child in node)) continue;
        if (index === keys.length - 1) node[child] = ANY;
        else visit(node[child], index + 1);
      }
    };
    visit(copy, 0);
  }
  return copy;
}

const PYTHON_LAUNCH = { type: 'debugpy', request: 'launch', name: 'app', program: '${workspaceFolder}/app.py', console: 'integratedTerminal' };

/** The scenarios, in file-name order. Each gets a fresh sidecar and workspace folder. */
const SCENARIOS = [
  {
    name: 'initialize-schema',
    description: 'initialize (clients send their own capabilities: the params only need to contain the recorded keys), initialized, mirrord/schema (the schema of the binary, identical to schema/mirrord-schema.json), shutdown and exit.',
    initialize: false,
    async run(step) {
      await step.request('initialize', {
        processId: process.pid,
        rootUri: '${workspaceFolderUri}',
        capabilities: { window: { workDoneProgress: true } },
        initializationOptions: { watchFiles: true },
      }, {
        requestMatch: 'subset',
        recordedParams: { processId: ANY, rootUri: OPTIONAL, capabilities: ANY, initializationOptions: OPTIONAL },
        maskResult: ['capabilities.experimental.mirrord.version', 'serverInfo.version'],
        match: 'exact',
      });
      await step.notify('initialized', {});
      await step.request('mirrord/schema', undefined, { match: 'exact' });
      await step.request('shutdown', undefined, { match: 'exact' });
      await step.notify('exit', undefined);
    },
  },
  {
    name: 'list-targets',
    description: 'mirrord/listTargets without filters while the sandbox pod `ide-transcripts` is up: the picker groups in display order, sandbox pods, local processes, then no target (the recording keeps one sandbox and one process, with their details masked).',
    sandbox: true,
    async run(step) {
      await step.request('mirrord/listTargets', {}, {
        match: 'shape',
        edit: (result) => ({
          ...result,
          groups: result.groups.map((group) => ({
            ...group,
            targets: group.targets
              .filter((t) => t.kind !== 'sandbox' || t.path === `sandbox/${SANDBOX}`)
              .slice(0, 1)
              .map((t) => ({ ...t, detail: t.kind === 'targetless' ? t.detail : ANY, path: t.kind === 'pid' ? ANY : t.path })),
          })),
        }),
      });
    },
  },
  {
    name: 'verify-config-errors',
    description: 'mirrord/verifyConfig of a JSON text with an unknown key, a wrong type and a bad enum value: every diagnostic, with ranges, paths and suggestions.',
    async run(step) {
      await step.request('mirrord/verifyConfig', {
        text: '{\n  "tagret": "pid/1",\n  "feature": { "fs": "sometimes", "env": 3 }\n}\n',
        format: 'json',
      }, { match: 'exact' });
    },
  },
  {
    name: 'verify-config-uri',
    description: 'mirrord/verifyConfig of a TOML file on disk by URI (not open in the editor): valid, with the resolved config.',
    files: { '.mirrord/mirrord.toml': 'target = "targetless"\n\n[feature]\nenv = true\n' },
    async run(step) {
      await step.request('mirrord/verifyConfig', { uri: '${workspaceFolderUri}/.mirrord/mirrord.toml' }, { match: 'shape' });
    },
  },
  {
    name: 'open-config-diagnostics',
    description: 'textDocument/didOpen of .mirrord/mirrord.json with an unknown key: the sidecar publishes its diagnostics at once (recorded in `notifications`).',
    files: { '.mirrord/mirrord.json': '{ "targte": "targetless" }\n' },
    async run(step) {
      await step.notify('textDocument/didOpen', {
        textDocument: { uri: '${workspaceFolderUri}/.mirrord/mirrord.json', languageId: 'json', version: 1, text: '{ "targte": "targetless" }\n' },
      }, { until: (n) => n.some((x) => x.method === 'textDocument/publishDiagnostics'), keep: ['textDocument/publishDiagnostics'] });
    },
  },
  {
    name: 'patch-config-invalid',
    description: 'Debugging a python file while .mirrord/mirrord.json has errors: mirrord/patchLaunchConfig fails with ConfigInvalid (-32010), data.diagnostics and data.configPath. VS Code shows the message and opens the file at the first diagnostic.',
    files: { '.mirrord/mirrord.json': '{\n  "target": "sandbox/ide-transcripts",\n  "feature": { "fs": { "mode": "readd" } }\n}\n' },
    async run(step) {
      await step.patch({ launchConfig: PYTHON_LAUNCH, workspaceFolder: '${workspaceFolder}' }, { match: 'exact' });
    },
  },
  {
    name: 'patch-untouched',
    description: 'An attach request: mirrord/patchLaunchConfig returns it untouched with sessionId null and the reason as a warning.',
    async run(step) {
      await step.patch({ launchConfig: { type: 'debugpy', request: 'attach', name: 'attach', connect: { host: 'localhost', port: 5678 } }, workspaceFolder: '${workspaceFolder}' }, { match: 'exact' });
    },
  },
  {
    name: 'patch-pick-target',
    description: 'Debugging a python file with no config: TargetRequired (-32013); the client lists targets, the user picks sandbox/ide-transcripts, the client sends the same request with `target`, gets the patched configuration (session environment masked), then the debug session ends: mirrord/endSession ends it (a mirrord/sessionEvent `ended` follows), and a second endSession answers ended=false.',
    sandbox: true,
    files: { 'app.py': 'import os\nprint(os.environ.get("SANDBOX_GREETING"))\n' },
    async run(step) {
      await step.patch({ launchConfig: PYTHON_LAUNCH, workspaceFolder: '${workspaceFolder}' }, { match: 'exact' });
      await step.request('mirrord/listTargets', { workspaceFolder: '${workspaceFolder}' }, {
        match: 'shape',
        edit: (result) => ({
          ...result,
          groups: result.groups
            .filter((group) => group.id === 'sandbox' || group.id === 'targetless')
            .map((group) => ({
              ...group,
              targets: group.targets.filter((t) => t.path === `sandbox/${SANDBOX}` || t.kind === 'targetless')
                .map((t) => ({ ...t, detail: t.kind === 'targetless' ? t.detail : ANY })),
            })),
        }),
      });
      const sessionVariables = ['LD_PRELOAD', 'MIRRORD_LAYER_AGENT_FDS', 'MIRRORD_LAYER_INTPROXY_ADDR', 'MIRRORD_LAYER_SESSION_TOKEN', 'MIRRORD_RESOLVED_CONFIG'];
      await step.patch({ launchConfig: PYTHON_LAUNCH, workspaceFolder: '${workspaceFolder}', target: `sandbox/${SANDBOX}` }, {
        match: 'shape',
        maskResult: sessionVariables.flatMap((name) => [`launchConfig.env.${name}`, `environment.${name}`]),
        until: (n) => n.some((x) => x.method === '$/progress' && x.params.value.kind === 'end'),
      });
      await step.request('mirrord/endSession', { sessionId: 'ide-1' }, {
        match: 'exact',
        until: (n) => n.some((x) => x.method === 'mirrord/sessionEvent' && x.params.kind === 'ended'),
        keep: ['mirrord/sessionEvent'],
      });
      await step.request('mirrord/endSession', { sessionId: 'ide-1' }, { match: 'exact' });
    },
  },
  {
    name: 'patch-session-failed',
    description: 'The picked target (a process) does not exist: mirrord/patchLaunchConfig fails with SessionFailed (-32014) and a message for the user.',
    async run(step) {
      await step.patch({ launchConfig: PYTHON_LAUNCH, workspaceFolder: '${workspaceFolder}', target: 'pid/999999999' }, { match: 'exact' });
    },
  },
  {
    name: 'patch-config-unreadable',
    description: 'The active configuration does not exist: ConfigUnreadable (-32011).',
    async run(step) {
      await step.patch({ launchConfig: PYTHON_LAUNCH, workspaceFolder: '${workspaceFolder}', configPath: '.mirrord/missing.json' }, { match: 'exact' });
    },
  },
  {
    name: 'patch-outside-workspace',
    description: 'The active configuration lies outside the workspace folder (/etc/passwd, a file every machine has): PathOutsideWorkspace (-32012) with data.configPath.',
    async run(step) {
      await step.patch({ launchConfig: PYTHON_LAUNCH, workspaceFolder: '${workspaceFolder}', configPath: '/etc/passwd' }, { match: 'exact' });
    },
  },
  {
    name: 'end-session-unknown',
    description: 'mirrord/endSession of a session the sidecar never started: ended=false, no error.',
    async run(step) {
      await step.request('mirrord/endSession', { sessionId: 'ide-404' }, { match: 'exact' });
    },
  },
  {
    name: 'unknown-method',
    description: 'A method the sidecar does not serve: -32601.',
    async run(step) {
      await step.request('mirrord/noSuchMethod', {}, { match: 'exact' });
    },
  },
];

/** Runs one scenario; returns the transcript (recording) or the problems (check). */
async function runScenario(scenario, recorded) {
  const workspace = realpathSync(mkdtempSync(path.join(tmpdir(), 'mirrord-transcript-')));
  const vars = placeholders(workspace, IDE);
  for (const [file, text] of Object.entries(scenario.files ?? {})) {
    mkdirSync(path.dirname(path.join(workspace, file)), { recursive: true });
    writeFileSync(path.join(workspace, file), text);
  }
  const sidecar = new Sidecar(`${workspace}.state`);
  const exchanges = [];
  const problems = [];
  const record = (entry, live) => {
    const index = exchanges.length;
    exchanges.push(entry);
    if (!recorded) return;
    const old = recorded.exchanges[index];
    if (!old) {
      problems.push(`${scenario.name}: exchange ${index} is not recorded`);
      return;
    }
    const kindOf = (e) => (e.request ? `request ${e.request.method}` : `notification ${e.notification.method}`);
    if (kindOf(old) !== kindOf(entry) || JSON.stringify(old.request ?? old.notification) !== JSON.stringify(entry.request ?? entry.notification)) {
      problems.push(`${scenario.name}: exchange ${index} sends something else than recorded: ${JSON.stringify(entry.request ?? entry.notification)}`);
      return;
    }
    if (old.response) {
      const expected = substitute(old.response, vars);
      for (const problem of compare(live, expected, old.match)) problems.push(`${scenario.name}: exchange ${index} (${old.request.method}) ${problem}`);
    }
  };
  const step = {
    async request(method, params, { match, requestMatch, recordedParams, maskResult = [], edit, until, keep = [] } = {}) {
      const sent = params === undefined ? undefined : substitute(params, vars);
      const before = sidecar.notifications.length;
      const live = await sidecar.request(method, sent);
      if (until) await sidecar.until((n) => until(n.slice(before)), `notifications after ${method}`);
      let response = live;
      if ('result' in response && response.result !== null && typeof response.result === 'object') {
        let result = edit ? edit(response.result) : response.result;
        result = mask(result, maskResult);
        response = { result };
      }
      const request = { method };
      if (params !== undefined) request.params = generalize({ ...sent, ...recordedParams }, workspace);
      const entry = { request };
      if (requestMatch) entry.requestMatch = requestMatch;
      entry.response = generalize(response, workspace);
      entry.match = match;
      const notifications = sidecar.notifications.slice(before).filter((n) => keep.includes(n.method));
      if (notifications.length > 0) entry.notifications = generalize(notifications, workspace);
      record(entry, live);
      return live;
    },
    async notify(method, params, { until, keep = [] } = {}) {
      const sent = params === undefined ? undefined : substitute(params, vars);
      const before = sidecar.notifications.length;
      sidecar.notify(method, sent);
      if (until) await sidecar.until((n) => until(n.slice(before)), `notifications after ${method}`);
      const notification = { method };
      if (params !== undefined) notification.params = generalize(sent, workspace);
      const entry = { notification };
      const notifications = sidecar.notifications.slice(before).filter((n) => keep.includes(n.method));
      if (notifications.length > 0) entry.notifications = generalize(notifications, workspace);
      record(entry, undefined);
    },
    /** mirrord/patchLaunchConfig the way the VS Code client sends it (with a progress token). */
    async patch(params, options) {
      const token = `mirrord-progress-${exchanges.length}`;
      const live = await step.request('mirrord/patchLaunchConfig', { ...params, ide: IDE, workDoneToken: token }, {
        keep: ['$/progress'],
        ...options,
        recordedParams: { ide: '${ide}', workDoneToken: OPTIONAL },
      });
      // Progress notifications carry the client's token: record it as a placeholder.
      const entry = exchanges[exchanges.length - 1];
      if (entry.notifications) {
        entry.notifications = entry.notifications.map((n) => (n.method === '$/progress' && n.params.token === token ? { ...n, params: { ...n.params, token: '${workDoneToken}' } } : n));
      }
      return live;
    },
  };
  try {
    if (scenario.initialize !== false) {
      await step.request('initialize', {
        processId: process.pid,
        rootUri: '${workspaceFolderUri}',
        workspaceFolders: [{ uri: '${workspaceFolderUri}', name: 'workspace' }],
        capabilities: { window: { workDoneProgress: true } },
        initializationOptions: { watchFiles: true },
      }, {
        requestMatch: 'subset',
        recordedParams: { processId: ANY, rootUri: OPTIONAL, workspaceFolders: OPTIONAL, capabilities: ANY, initializationOptions: OPTIONAL },
        maskResult: ['capabilities.experimental.mirrord.version', 'serverInfo.version'],
        match: 'shape',
      });
      await step.notify('initialized', {});
    }
    await scenario.run(step);
    if (scenario.initialize !== false) {
      await step.request('shutdown', undefined, { match: 'exact' });
      await step.notify('exit', undefined);
    }
    const status = await sidecar.exited;
    if (status !== 0) problems.push(`${scenario.name}: the sidecar exited with ${status}\n${sidecar.stderr}`);
  } finally {
    sidecar.child.kill();
    rmSync(workspace, { recursive: true, force: true });
    rmSync(`${workspace}.state`, { recursive: true, force: true });
  }
  if (recorded && recorded.exchanges.length !== exchanges.length) {
    problems.push(`${scenario.name}: ${exchanges.length} exchanges now, ${recorded.exchanges.length} recorded`);
  }
  const transcript = { name: scenario.name, description: scenario.description };
  if (scenario.files) transcript.files = scenario.files;
  transcript.exchanges = exchanges;
  return { transcript, problems };
}

async function main() {
  const args = process.argv.slice(2);
  const check = args.includes('--check');
  const wanted = args.filter((a) => !a.startsWith('--'));
  const scenarios = SCENARIOS.filter((s) => wanted.length === 0 || wanted.includes(s.name));
  const needsSandbox = scenarios.some((s) => s.sandbox);
  if (needsSandbox) mirrord(['sandbox', 'up', SANDBOX]);
  const problems = [];
  try {
    for (const scenario of scenarios) {
      const file = path.join(TRANSCRIPTS_DIR, `${scenario.name}.json`);
      const recorded = check ? JSON.parse(readFileSync(file, 'utf8')) : undefined;
      const outcome = await runScenario(scenario, recorded);
      problems.push(...outcome.problems);
      if (!check) {
        writeFileSync(file, `${JSON.stringify(outcome.transcript, null, 2)}\n`);
        process.stderr.write(`recorded ${path.relative(REPO, file)}\n`);
      } else {
        process.stderr.write(`checked ${scenario.name}: ${outcome.problems.length === 0 ? 'ok' : 'stale'}\n`);
      }
    }
  } finally {
    if (needsSandbox) mirrord(['sandbox', 'down', SANDBOX], { allowFailure: true });
  }
  if (problems.length > 0) {
    process.stderr.write(`${problems.join('\n')}\n`);
    process.exitCode = 1;
  }
}

await main();
