// The packaged extension in a real VS Code: the .vsix (with target/debug's mirrord, agent and
// layer) is installed into code-server 4.100.3 (VS Code 1.100.3) with a fresh user-data dir and
// opened on a workspace with .mirrord/mirrord.json; Debian's chromium plays the user. Every check
// reads the workbench's DOM; screenshots are kept in target/vscode-e2e/. Expected values come
// from the sidecar itself (a second `mirrord ide` driven over JSON-RPC with the same state dir)
// and from the sandbox pod. Needs root (sandbox pods) and tests/vscode-e2e/install.sh.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startSidecar, tempWorkspace, fileUri } from '../ide/sidecar.mjs';
import { REPO, codeServerCli, sidecarsBelow, startCodeServer, until, Workbench, writeTree } from './workbench.mjs';

const BIN = path.join(REPO, 'target/debug/mirrord');
const SANDBOX = 'vscode-e2e';
const EXTENSION = JSON.parse(readFileSync(path.join(REPO, 'editors/vscode/package.json'), 'utf8'));

let root;
let workspace;
let env;
let server;
let bench;
let sidecar;
let pod;

function mirrord(...args) {
  return execFileSync(BIN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The launch.json configurations: the config names the target / no target (the quick-pick). */
const LAUNCH = {
  version: '0.2.0',
  configurations: [
    { type: 'node', request: 'launch', name: 'pod app', program: '${workspaceFolder}/app.js', console: 'internalConsole' },
    {
      type: 'node',
      request: 'launch',
      name: 'pick app',
      program: '${workspaceFolder}/app.js',
      console: 'internalConsole',
      env: { MIRRORD_CONFIG_FILE: '${workspaceFolder}/.mirrord/no-target.json' },
    },
    {
      type: 'node',
      request: 'launch',
      name: 'broken target',
      program: '${workspaceFolder}/app.js',
      console: 'internalConsole',
      env: { MIRRORD_CONFIG_FILE: '${workspaceFolder}/.mirrord/broken-target.json' },
    },
  ],
};

/** A target that does not exist: the session cannot start. */
const BROKEN_TARGET = 'pid/999999999';

/** The debuggee: prints the pod's file and variable, then stays up until the debugger stops it. */
const APP = `const fs = require('fs');
console.log('POD_FILE=' + JSON.stringify(fs.readFileSync('/app/config.yaml', 'utf8')));
console.log('POD_GREETING=' + process.env.SANDBOX_GREETING);
setInterval(() => {}, 1000);
`;

before(async () => {
  assert.equal(process.getuid?.(), 0, 'the test starts a sandbox pod: run it as root');
  mirrord('sandbox', 'up', SANDBOX);
  const listed = JSON.parse(mirrord('sandbox', 'list', '--output', 'json'));
  pod = (Array.isArray(listed) ? listed : listed.sandboxes).find((s) => s.name === SANDBOX);
  assert.ok(pod, `sandbox ${SANDBOX} is listed`);

  root = tempWorkspace('mirrord-vscode-e2e-');
  workspace = path.join(root, 'workspace');
  writeTree(workspace, {
    '.mirrord/mirrord.json': JSON.stringify({ target: `sandbox/${SANDBOX}`, feature: { fs: 'read', env: true } }, null, 2),
    '.mirrord/no-target.json': JSON.stringify({ feature: { fs: 'read', env: true } }, null, 2),
    '.mirrord/broken-target.json': JSON.stringify({ target: BROKEN_TARGET }, null, 2),
    '.mirrord/edit.json': '{\n  "feture": { "fs": "read" },\n  "target": ""\n}\n',
    '.vscode/launch.json': JSON.stringify(LAUNCH, null, 2),
    'app.js': APP,
  });
  const userDataDir = path.join(root, 'user-data');
  const extensionsDir = path.join(root, 'extensions');
  writeTree(userDataDir, {
    'User/settings.json': JSON.stringify({
      'workbench.startupEditor': 'none',
      'workbench.tips.enabled': false,
      'security.workspace.trust.enabled': false,
      'extensions.autoCheckUpdates': false,
      'extensions.autoUpdate': false,
      'telemetry.telemetryLevel': 'off',
      'update.mode': 'none',
      'debug.internalConsoleOptions': 'openOnSessionStart',
      'editor.hover.delay': 100,
      'mirrord.diagnosticsDelayMs': 0,
    }),
  });
  env = {
    ...process.env,
    // The recently used targets of both sidecars (code-server's and the test's) live here.
    XDG_STATE_HOME: path.join(root, 'state'),
    XDG_DATA_HOME: path.join(root, 'data'),
    XDG_CONFIG_HOME: path.join(root, 'config'),
  };
  mkdirSync(env.XDG_STATE_HOME, { recursive: true });

  const vsix = execFileSync(process.execPath, [path.join(REPO, 'editors/vscode/scripts/package.mjs')], {
    encoding: 'utf8',
    env: { ...process.env, MIRRORD_PROFILE: 'debug' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
    .trim()
    .split('\n')
    .pop();
  const installed = codeServerCli(['--user-data-dir', userDataDir, '--extensions-dir', extensionsDir, '--install-extension', vsix], env);
  assert.match(installed, /successfully installed/i, installed);

  sidecar = await startSidecar({ workspace, env });
  server = await startCodeServer({ workspace, userDataDir, extensionsDir, env });
  bench = await Workbench.open(server.url, workspace);
});

after(async () => {
  if (bench) {
    await bench.screenshot('last').catch(() => {});
    await bench.close();
  }
  if (server) server.stop();
  if (sidecar) await sidecar.stop();
  try {
    mirrord('sandbox', 'down', SANDBOX);
  } catch {
    // reported by the test that failed
  }
  if (root) rmSync(root, { recursive: true, force: true });
});

const STATUS = 'mirrord';

/** Starts a launch configuration by name (Debug: Select and Start Debugging). */
async function startDebugging(name) {
  if (await bench.page.locator('.repl').isVisible()) await bench.runCommand('Clear Console');
  // The quick access of "Debug: Select and Start Debugging": `debug ` and the configuration's name.
  await bench.quickOpen('debug ');
  await bench.pick(name, 'debug ');
}

/** Waits for the debuggee's output in the Debug Console and checks it against the pod. */
async function expectPodOutput(what) {
  const expectedFile = `POD_FILE=${JSON.stringify(pod.files.find((f) => f.path === '/app/config.yaml').contents)}`;
  const expectedGreeting = `POD_GREETING=${pod.env.SANDBOX_GREETING}`;
  // Both lines: the console renders its rows as they come (a busy machine showed the second
  // line's row before the first's).
  let shown = '';
  const text = await until(async () => {
    shown = await bench.debugConsole();
    return shown.includes('POD_FILE=') && shown.includes('POD_GREETING=') ? shown : undefined;
  }, `the debuggee's output in the Debug Console (${what})`, 90_000).catch((error) => {
    throw new Error(`${error.message}; the Debug Console showed:\n${shown}`);
  });
  await bench.screenshot(`debug-console-${what}`);
  assert.ok(text.includes(expectedGreeting), `the pod's variable in the Debug Console:\n${text}`);
  assert.ok(text.includes(expectedFile.slice(0, 40)), `the pod's file in the Debug Console:\n${text}`);
}

async function stopDebugging() {
  // The Stop button of the debug toolbar, as a user does; clicked again every 10 s while the
  // toolbar stays (on a loaded machine a click landed while the toolbar was still busy and did
  // nothing), within a generous bound: the debuggee and its session end in turn.
  const toolbar = bench.page.locator('.debug-toolbar');
  let clickedAt = 0;
  await until(async () => {
    if (!(await toolbar.isVisible())) return true;
    if (Date.now() - clickedAt > 10_000) {
      clickedAt = Date.now();
      await bench.page.locator('.debug-toolbar .codicon-debug-stop').first().click();
    }
    return undefined;
  }, 'the debug toolbar to go away', 90_000);
}

async function mirrordLog() {
  await bench.runCommand('mirrord: Show Logs');
  await bench.page.locator('.panel .output-view').waitFor({ state: 'visible' });
  return bench.outputText();
}

test('activation: the status bar item, the sidecar, and every contributed command in the palette', async () => {
  const item = await until(() => bench.statusBarItem(STATUS), 'the mirrord status bar item', 60_000);
  assert.match(item, /mirrord/);
  await until(() => sidecarsBelow(server.pid).length === 1, 'one `mirrord ide` under code-server', 30_000);
  await bench.quickOpen('>mirrord: ');
  const rows = await until(async () => {
    const listed = await bench.quickPickRows();
    return listed.length >= EXTENSION.contributes.commands.length ? listed : undefined;
  }, 'the mirrord commands in the palette');
  await bench.screenshot('palette');
  const labels = rows.map((row) => row.label);
  for (const command of EXTENSION.contributes.commands) {
    assert.ok(labels.includes(`${command.category}: ${command.title}`), `${command.command} in the palette: ${labels.join(' | ')}`);
  }
  await bench.closeQuickInput();
});

test('toggle on, node launch: the debuggee reads the pod, the status bar shows the session, stopping ends it', async () => {
  assert.deepEqual(await bench.statusBarIcons(STATUS), ['debug-disconnect'], 'off before the toggle');
  await bench.runCommand('mirrord: Toggle');
  await until(async () => (await bench.statusBarIcons(STATUS)).includes('plug'), 'the status bar to show mirrord on');
  await startDebugging('pod app');
  await expectPodOutput('pod-app');
  const active = await until(() => bench.statusBarItem(`sandbox/${SANDBOX}`), 'the session in the status bar', 30_000);
  assert.match(active, /mirrord/);
  await bench.screenshot('status-bar-session');
  await stopDebugging();
  await until(async () => !(await bench.statusBarItem(`sandbox/${SANDBOX}`)), 'the session to leave the status bar', 30_000);
  const log = await until(async () => {
    const text = await mirrordLog();
    return /session ide-\d+ ended/.test(text) ? text : undefined;
  }, "the sidecar's answer to endSession in the log", 30_000);
  assert.doesNotMatch(log, /had already ended/, 'the debug session end ended the mirrord session');
  await bench.screenshot('session-ended-log');
});

test("no target in the config: the quick-pick shows the sidecar's groups; the next pick lists the pick first", async () => {
  const expected = await sidecar.connection.sendRequest('mirrord/listTargets', {
    workspaceFolder: workspace,
    configPath: path.join(workspace, '.mirrord/no-target.json'),
  });
  await startDebugging('pick app');
  await until(async () => (await bench.quickPickRows()).some((row) => row.label === `sandbox/${SANDBOX}`), 'the target quick-pick', 30_000);
  await bench.screenshot('target-pick');
  // The groups as shown: the separators of the rows at the top (the list is long: every
  // process of this machine), then the group of `targetless`, which the sidecar puts last.
  const sidecarGroups = expected.groups.map((group) => group.title);
  // Each group's first target carries the group's title, in the sidecar's order (the groups
  // whose first row is on screen: the list is long, every process of this machine).
  const rows = await bench.quickPickRows(`sandbox/${SANDBOX}`);
  const shown = expected.groups
    .map((group) => ({ title: group.title, row: rows.find((row) => row.label === group.targets[0]?.path && row.separator === group.title) }))
    .filter((group) => group.row !== undefined);
  assert.ok(shown.length >= 2, `the first groups are on screen: ${JSON.stringify(rows.slice(0, 6))}`);
  assert.deepEqual(shown.map((group) => group.title), sidecarGroups.slice(0, shown.length), 'the groups in the sidecar order');
  const indexes = shown.map((group) => group.row.index);
  assert.deepEqual(indexes, [...indexes].sort((a, b) => a - b), 'in that order on screen');
  assert.notEqual(sidecarGroups[0], 'Recently used', 'nothing was picked in this workspace yet');
  const input = bench.page.locator('.quick-input-widget .quick-input-box input');
  await input.fill('targetless');
  const last = await until(async () => (await bench.quickPickRows()).find((row) => row.label === 'targetless'), 'the targetless row');
  assert.equal(sidecarGroups.at(-1), 'No target', 'the sidecar puts no target last, and the picker offers it');
  assert.ok(last);
  await input.fill('');
  await bench.pick(`sandbox/${SANDBOX}`);
  await expectPodOutput('picked');
  await stopDebugging();

  await startDebugging('pick app');
  await until(async () => (await bench.quickPickRows()).some((row) => row.label === `sandbox/${SANDBOX}`), 'the target quick-pick again', 30_000);
  const again = await bench.quickPickRows(`sandbox/${SANDBOX}`);
  await bench.screenshot('target-pick-recent');
  assert.equal(again[0].separator, 'Recently used', JSON.stringify(again.slice(0, 3)));
  assert.equal(again[0].label, `sandbox/${SANDBOX}`);
  const fromSidecar = await sidecar.connection.sendRequest('mirrord/listTargets', { workspaceFolder: workspace });
  assert.deepEqual(fromSidecar.groups[0].targets.map((t) => t.path), [`sandbox/${SANDBOX}`], 'the sidecar keeps the recents per workspace');
  await bench.closeQuickInput();
});

test('editing a config: Problems shows the sidecar message, the quick fix applies, target completion and hover', async () => {
  const file = path.join(workspace, '.mirrord/edit.json');
  const text = readFileSync(file, 'utf8');
  const report = await sidecar.connection.sendRequest('mirrord/verifyConfig', { text, format: 'json' });
  const typo = report.diagnostics.find((d) => d.path === 'feture');
  assert.ok(typo, JSON.stringify(report));

  await bench.openFile('.mirrord/edit.json');
  await bench.runCommand('View: Focus Problems (Errors, Warnings, Infos)');
  const problems = await until(async () => {
    const rows = await bench.problems();
    return rows.some((row) => row.includes(typo.message)) ? rows : undefined;
  }, "the sidecar's diagnostic in Problems", 30_000);
  assert.ok(problems.some((row) => row.includes(typo.message)));
  await bench.screenshot('problems');

  await bench.openFile('.mirrord/edit.json');
  await bench.goTo(2, 5);
  await bench.page.keyboard.press('Control+.');
  const fix = bench.page.locator('.action-widget .monaco-list-row', { hasText: 'Replace `feture` with `feature`' }).first();
  await fix.waitFor({ state: 'visible', timeout: 30_000 });
  await bench.screenshot('quick-fix');
  await bench.page.keyboard.press('Enter');
  await until(async () => (await bench.editorText()).includes('"feature": { "fs": "read" }'), 'the quick fix in the editor', 15_000);

  await bench.goTo(3, 14);
  const suggestion = bench.page.locator('.suggest-widget .monaco-list-row', { hasText: `sandbox/${SANDBOX}` }).first();
  // Asked again until the live targets are in (the sidecar lists them on the first request).
  await until(async () => {
    if (await suggestion.isVisible()) return true;
    await bench.page.keyboard.press('Escape');
    await bench.goTo(3, 14);
    await bench.page.keyboard.press('Control+Space');
    await suggestion.waitFor({ state: 'visible', timeout: 3_000 });
    return true;
  }, 'the live targets in the completion list', 45_000);
  await bench.screenshot('target-completion');
  await bench.pressEscape();

  const expectedHover = await sidecar.connection.sendRequest('textDocument/hover', await (async () => {
    const uri = fileUri(file);
    await sidecar.connection.sendNotification('textDocument/didOpen', {
      textDocument: { uri, languageId: 'jsonc', version: 1, text: '{\n  "feature": {}\n}\n' },
    });
    return { textDocument: { uri }, position: { line: 1, character: 5 } };
  })());
  const description = expectedHover.contents.value.split('\n\n').pop().split('\n')[0].replace(/[`*]/g, '');
  const key = bench.page.locator('.editor-instance .view-lines').getByText('"feature"', { exact: true }).first();
  await key.hover();
  const hover = bench.page.locator('.monaco-hover', { hasText: 'feature' }).first();
  await hover.waitFor({ state: 'visible', timeout: 15_000 });
  const hoverText = await hover.textContent();
  await bench.screenshot('hover');
  assert.ok(hoverText.includes(description.slice(0, 30)), `hover shows the key's documentation:\n${hoverText}\nexpected: ${description}`);
  await bench.pressEscape();
});

test('killing the sidecar: the extension restarts it, says so once, and the next launch works', async () => {
  const [first] = sidecarsBelow(server.pid);
  assert.ok(first, 'a sidecar runs');
  process.kill(first.pid, 'SIGKILL');
  const restarted = await until(() => {
    const now = sidecarsBelow(server.pid);
    return now.length === 1 && now[0].pid !== first.pid ? now[0] : undefined;
  }, 'a new sidecar', 60_000);
  assert.notEqual(restarted.pid, first.pid);
  const said = await until(async () => {
    const toasts = await bench.notifications();
    const matching = toasts.filter((toast) => toast.includes('sidecar exited'));
    return matching.length > 0 ? matching : undefined;
  }, 'the restart notification', 30_000);
  await bench.screenshot('sidecar-restarted');
  assert.equal(said.length, 1, said.join('\n'));
  await startDebugging('pod app');
  await expectPodOutput('after-restart');
  const toasts = (await bench.notifications()).filter((toast) => toast.includes('sidecar exited'));
  assert.ok(toasts.length <= 1, `told once: ${toasts.join('\n')}`);
  await stopDebugging();
});

test("a launch that fails: an error notification with the sidecar's message, and its \"Show Logs\" shows the log", async () => {
  // What the sidecar answers for this launch (the test's own sidecar, same workspace).
  const failure = await sidecar.connection
    .sendRequest('mirrord/patchLaunchConfig', {
      launchConfig: { type: 'node', request: 'launch', name: 'broken target', program: path.join(workspace, 'app.js'), env: { MIRRORD_CONFIG_FILE: path.join(workspace, '.mirrord/broken-target.json') } },
      workspaceFolder: workspace,
      ide: 'vscode',
    })
    .then(
      (answer) => assert.fail(`the sidecar started a session for ${BROKEN_TARGET}: ${JSON.stringify(answer)}`),
      (error) => error,
    );
  assert.match(failure.message, /999999999/, failure.message);
  const expected = `mirrord: ${failure.message}`;

  await until(() => bench.statusBarItem(STATUS), 'the mirrord status bar item', 60_000);
  if (!(await bench.statusBarIcons(STATUS)).includes('plug')) {
    await bench.runCommand('mirrord: Toggle');
    await until(async () => (await bench.statusBarIcons(STATUS)).includes('plug'), 'the status bar to show mirrord on');
  }
  if (await bench.page.locator('.panel .output-view').isVisible()) await bench.runCommand('View: Close Panel');
  await startDebugging('broken target');
  const toast = bench.page.locator('.notifications-toasts .notification-toast', { hasText: failure.message.slice(0, 40) }).first();
  await toast.waitFor({ state: 'visible', timeout: 60_000 });
  const text = (await toast.textContent()) ?? '';
  await bench.screenshot('launch-failed');
  assert.ok(text.includes(expected), `the notification shows the sidecar's message:\n${text}\nexpected: ${expected}`);
  assert.ok(await toast.locator('.codicon-error').count() > 0, 'an error, not a warning or information');
  assert.equal(await bench.page.locator('.debug-toolbar').isVisible(), false, 'the launch did not run');

  await toast.getByRole('button', { name: 'Show Logs' }).click();
  const log = await until(async () => {
    if (!(await bench.page.locator('.panel .output-view').isVisible())) return undefined;
    const shown = await bench.outputText();
    return shown.includes(failure.message.slice(0, 40)) ? shown : undefined;
  }, 'the mirrord log with the failure after "Show Logs"', 30_000);
  await bench.screenshot('launch-failed-logs');
  assert.match(log, new RegExp(`error ${failure.code}: `), log);
});
