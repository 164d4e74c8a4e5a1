// package.json contributions: every command a menu, the status bar or a keybinding uses is
// contributed (and registered), the bundled schema is the generated one byte for byte.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Commands, STATUS_BAR_COMMAND } from '../src/commands';
import type { ProgressValue } from '../src/requests';
import { activate, EXTENSION_DIR, REPO } from './helpers';
import { stub } from './stub/vscode';

interface Manifest {
  main: string;
  activationEvents: string[];
  contributes: {
    commands: { command: string; title: string; category: string }[];
    menus: Record<string, { command: string }[]>;
    keybindings?: { command: string }[];
    configuration: { properties: Record<string, unknown> };
    languages: { id: string; filenamePatterns?: string[] }[];
    jsonValidation: { fileMatch: string[]; url: string }[];
  };
}

const manifest = JSON.parse(readFileSync(path.join(EXTENSION_DIR, 'package.json'), 'utf8')) as Manifest;
const contributed = new Set(manifest.contributes.commands.map((c) => c.command));

test('every command used by a menu, a keybinding or the status bar is contributed', () => {
  const used = [
    ...Object.values(manifest.contributes.menus).flat().map((entry) => entry.command),
    ...(manifest.contributes.keybindings ?? []).map((entry) => entry.command),
    STATUS_BAR_COMMAND,
  ];
  for (const command of used) assert.ok(contributed.has(command), `${command} is used but not contributed`);
});

test('the contributed commands are exactly the registered ones, in category "mirrord"', () => {
  activate({ request: () => Promise.resolve(null), onProgress: (_t: string, _h: (v: ProgressValue) => void) => ({ dispose: () => undefined }) });
  assert.deepEqual([...contributed].sort(), Object.values(Commands).sort());
  assert.deepEqual([...stub.commands.keys()].sort(), Object.values(Commands).sort());
  for (const command of manifest.contributes.commands) assert.equal(command.category, 'mirrord');
});

test('settings, activation and the mirrord-config language', () => {
  for (const setting of ['mirrord.enabledByDefault', 'mirrord.binaryPath']) assert.ok(setting in manifest.contributes.configuration.properties, setting);
  assert.ok(manifest.activationEvents.includes('onStartupFinished'));
  assert.ok(manifest.activationEvents.includes('onLanguage:mirrord-config'));
  assert.ok(manifest.contributes.languages.some((l) => l.id === 'mirrord-config'));
  assert.equal(manifest.main, './out/src/extension.js');
});

test('jsonValidation points at the bundled schema, byte-identical to schema/mirrord-schema.json', () => {
  const [validation] = manifest.contributes.jsonValidation;
  assert.ok(validation);
  assert.deepEqual(validation.fileMatch, ['mirrord.json', '*.mirrord.json', '**/.mirrord/*.json']);
  const bundled = readFileSync(path.join(EXTENSION_DIR, validation.url));
  const generated = readFileSync(path.join(REPO, 'schema/mirrord-schema.json'));
  assert.ok(bundled.equals(generated), 'run `npm run build`: the bundled schema is stale');
});
