// A real VS Code for the end-to-end test: code-server (installed by install.sh into
// /var/cache/mirrord-ci) on 127.0.0.1 with a fresh user-data dir, and Debian's chromium driven by
// playwright-core. `Workbench` reads what a user sees (DOM) and acts as a user does (keyboard,
// mouse); screenshots go to target/vscode-e2e/.

import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CODE_SERVER_VERSION = '4.100.3';
export const CODE_SERVER = path.join(
  process.env.MIRRORD_CI_CACHE ?? '/var/cache/mirrord-ci',
  `code-server-${CODE_SERVER_VERSION}`,
  'node_modules/code-server',
);
export const SHOTS = path.join(REPO, 'target/vscode-e2e');

/** Chromium flags for a machine without a display, GPU or internet. */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

/** Runs code-server's CLI (not the server) and returns its stdout; throws with stderr on failure. */
export function codeServerCli(args, env) {
  const run = spawnSync(process.execPath, [path.join(CODE_SERVER, 'out/node/entry.js'), ...args], {
    env,
    encoding: 'utf8',
    timeout: 180_000,
  });
  if (run.status !== 0) {
    throw new Error(`code-server ${args.join(' ')} exited with ${run.status ?? run.signal}:\n${run.stdout}\n${run.stderr}`);
  }
  return run.stdout;
}

/** Starts code-server on 127.0.0.1 (a free port) opening `workspace`; resolves once it listens. */
export async function startCodeServer({ workspace, userDataDir, extensionsDir, env }) {
  const child = spawn(
    process.execPath,
    [
      path.join(CODE_SERVER, 'out/node/entry.js'),
      '--bind-addr', '127.0.0.1:0',
      '--auth', 'none',
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      '--disable-getting-started-override',
      '--user-data-dir', userDataDir,
      '--extensions-dir', extensionsDir,
      workspace,
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  let log = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`code-server did not listen within 60 s:\n${log}`)), 60_000);
    const onData = (chunk) => {
      log += chunk;
      const match = /HTTP server listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`code-server exited (${code ?? signal}) before listening:\n${log}`));
    });
  });
  return {
    url,
    pid: child.pid,
    log: () => log,
    stop: () => {
      // The whole process group: code-server, its extension host, the sidecar and its sessions.
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    },
  };
}

/** The processes below `root` (by /proc's parent links), with their command lines. */
export function descendants(root) {
  const children = new Map();
  const commands = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const pid = Number(entry);
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(pid);
      commands.set(pid, readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter((part) => part !== ''));
    } catch {
      // exited while we looked
    }
  }
  const found = [];
  const queue = [root];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()) ?? []) {
      found.push({ pid: child, argv: commands.get(child) ?? [] });
      queue.push(child);
    }
  }
  return found;
}

/** The `mirrord ide` processes below `root`. */
export function sidecarsBelow(root) {
  return descendants(root).filter(({ argv }) => argv.length >= 2 && path.basename(argv[0]) === 'mirrord' && argv[1] === 'ide');
}

/** Polls `check` until it returns a truthy value. */
export async function until(check, what, timeoutMs = 30_000, everyMs = 250) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** The browser side: one page of the workbench. */
export class Workbench {
  static async open(url, folder) {
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
    const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
    const page = await context.newPage();
    await page.goto(`${url}/?folder=${encodeURIComponent(folder)}`);
    await page.waitForSelector('.monaco-workbench .part.statusbar', { timeout: 120_000 });
    mkdirSync(SHOTS, { recursive: true });
    return new Workbench(browser, page);
  }

  constructor(browser, page) {
    this.browser = browser;
    this.page = page;
    this.shot = 0;
  }

  async close() {
    await this.browser.close();
  }

  /** Saves a screenshot as target/vscode-e2e/NN-name.png. */
  async screenshot(name) {
    this.shot += 1;
    const file = path.join(SHOTS, `${String(this.shot).padStart(2, '0')}-${name}.png`);
    await this.page.screenshot({ path: file });
    return file;
  }

  /** The texts of the status bar items. */
  async statusBar() {
    return this.page.$$eval('.part.statusbar .statusbar-item', (items) => items.map((item) => item.textContent?.trim() ?? ''));
  }

  /** The codicons (`plug`, `debug-disconnect`, …) of the status bar item whose text contains `text`. */
  async statusBarIcons(text) {
    return this.page.$$eval(
      '.part.statusbar .statusbar-item',
      (items, wanted) =>
        items
          .filter((item) => (item.textContent ?? '').includes(wanted))
          .flatMap((item) => [...item.querySelectorAll('.codicon')].flatMap((icon) => [...icon.classList].filter((c) => c.startsWith('codicon-')).map((c) => c.slice(8)))),
      text,
    );
  }

  /** The status bar item whose text contains `text`, or undefined. */
  async statusBarItem(text) {
    return (await this.statusBar()).find((item) => item.includes(text));
  }

  async pressEscape() {
    await this.page.keyboard.press('Escape');
  }

  /** Opens the quick input with `prefix` typed (">" is the command palette). */
  async quickOpen(text) {
    await this.closeQuickInput();
    // Whatever else is open (a code action menu, a hover) closes first.
    await this.page.keyboard.press('Escape');
    const input = this.page.locator('.quick-input-widget .quick-input-box input');
    // Early after load the workbench may not take keys yet: press again until it opens.
    await until(async () => {
      if (!(await input.isVisible())) {
        await this.page.locator('.monaco-workbench').focus();
        await this.page.keyboard.press('F1');
        await input.waitFor({ state: 'visible', timeout: 2_000 });
      }
      return true;
    }, 'the command palette to open', 60_000);
    await input.fill(text);
    return input;
  }

  async closeQuickInput() {
    if (await this.page.locator('.quick-input-widget').isVisible()) await this.page.keyboard.press('Escape');
  }

  /**
   * The rows of the open quick pick now: `{label, description, detail, separator}`. `inListWith`:
   * only the list that has a row with this text (a quick input reuses its widget, and the rows
   * of the previous list can linger in the DOM for a moment).
   */
  async quickPickRows(inListWith) {
    return this.page.$$eval(
      '.quick-input-widget .monaco-list-row',
      (all, marker) => {
        let rows = all.filter((row) => row.offsetParent !== null);
        if (marker !== undefined) {
          // The rows beside the one that shows `marker` (same rows container).
          const anchor = rows.find((row) => (row.textContent ?? '').includes(marker));
          rows = anchor === undefined ? [] : [...anchor.parentElement.children].filter((el) => el.classList.contains('monaco-list-row'));
        }
        return rows
          .map((row) => ({
            index: Number(row.getAttribute('data-index')),
            label: row.querySelector('.quick-input-list-label .label-name, .monaco-icon-label .label-name')?.textContent?.trim() ?? '',
            description: row.querySelector('.label-description')?.textContent?.trim() ?? '',
            detail: row.querySelector('.quick-input-list-label-meta, .quick-input-list-detail')?.textContent?.trim() ?? '',
            separator: row.querySelector('.quick-input-list-separator')?.textContent?.trim() ?? '',
          }))
          .sort((a, b) => a.index - b.index);
      },
      inListWith,
    );
  }

  /** Every row of the open quick pick, scrolling through it (the list renders what is visible). */
  async allQuickPickRows() {
    const seen = new Map();
    const list = this.page.locator('.quick-input-widget .monaco-list');
    await list.waitFor({ state: 'visible' });
    let idle = 0;
    for (let round = 0; round < 1000 && idle < 5; round += 1) {
      const before = seen.size;
      for (const row of await this.quickPickRows()) seen.set(row.index, row);
      await this.page.keyboard.press('PageDown');
      await this.page.waitForTimeout(100);
      idle = seen.size === before ? idle + 1 : 0;
    }
    await this.page.keyboard.press('End');
    await this.page.waitForTimeout(300);
    for (const row of await this.quickPickRows()) seen.set(row.index, row);
    await this.page.keyboard.press('Home');
    return [...seen.values()].sort((a, b) => a.index - b.index);
  }

  /** Runs a command of the palette by its full title ("mirrord: Toggle"). */
  async runCommand(title) {
    await this.quickOpen(`>${title}`);
    const row = this.page.locator('.quick-input-widget .monaco-list-row', { hasText: title }).first();
    await row.waitFor({ state: 'visible' });
    await this.page.keyboard.press('Enter');
  }

  /** Waits for a quick pick row whose label is `label` and picks it (`prefix`: the quick access prefix to keep). */
  async pick(label, prefix = '') {
    await until(async () => (await this.quickPickRows()).some((row) => row.label === label), `quick pick row ${label}`, 60_000);
    const input = this.page.locator('.quick-input-widget .quick-input-box input');
    await input.fill(prefix + label);
    await until(async () => (await this.quickPickRows())[0]?.label === label, `${label} first after filtering`, 10_000);
    await this.page.keyboard.press('Enter');
  }

  /** The texts of the notification toasts shown now. */
  async notifications() {
    return this.page.$$eval('.notifications-toasts .notification-toast', (toasts) => toasts.map((toast) => toast.textContent?.trim() ?? ''));
  }

  /** The text of the Debug Console. */
  async debugConsole() {
    return this.page.$$eval('.repl .monaco-list-row', (rows) => rows.map((row) => row.textContent ?? '').join('\n'));
  }

  /** The visible lines of the active editor. */
  async editorText() {
    return this.page.$$eval('.editor-instance .monaco-editor .view-lines .view-line', (lines) =>
      lines
        .map((line) => ({ top: parseFloat(line.style.top || '0'), text: (line.textContent ?? '').replace(/\u00a0/g, ' ') }))
        .sort((a, b) => a.top - b.top)
        .map((line) => line.text)
        .join('\n'),
    );
  }

  /** The visible lines of the Output panel. */
  async outputText() {
    return this.page.$$eval('.panel .output-view .view-lines .view-line', (lines) =>
      lines
        .map((line) => ({ top: parseFloat(line.style.top || '0'), text: (line.textContent ?? '').replace(/\u00a0/g, ' ') }))
        .sort((a, b) => a.top - b.top)
        .map((line) => line.text)
        .join('\n'),
    );
  }

  /** The rows of the Problems panel. */
  async problems() {
    return this.page.$$eval('.markers-panel .monaco-list-row', (rows) => rows.map((row) => row.textContent?.trim() ?? ''));
  }

  /** Opens a workspace file through Quick Open. */
  async openFile(relative) {
    await this.quickOpen(relative);
    const row = this.page.locator('.quick-input-widget .monaco-list-row').first();
    await row.waitFor({ state: 'visible' });
    await until(async () => (await this.quickPickRows()).some((r) => relative.endsWith(r.label)), `${relative} in quick open`);
    await this.page.keyboard.press('Enter');
    await this.page.locator('.editor-instance .monaco-editor').first().waitFor({ state: 'visible' });
    await this.page.locator('.editor-instance .monaco-editor .view-lines').first().click();
  }

  /** Moves the editor cursor to 1-based `line`:`column` (Go to Line). */
  async goTo(line, column) {
    await this.page.keyboard.press('Control+G');
    const input = this.page.locator('.quick-input-widget .quick-input-box input');
    await input.waitFor({ state: 'visible' });
    await input.fill(`:${line}:${column}`);
    await this.page.keyboard.press('Enter');
  }
}

/** Writes `files` (relative path → text) under `root`. */
export function writeTree(root, files) {
  for (const [relative, text] of Object.entries(files)) {
    const file = path.join(root, relative);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
  }
}
