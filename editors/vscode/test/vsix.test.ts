// Packaging: `npm run package` (vsce) produces a linux-x64 .vsix holding the sidecar, the agent,
// the layer, the schema and the compiled extension, and nothing of the sources or tests.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { inflateRawSync } from 'node:zlib';
import { EXTENSION_DIR } from './helpers';

interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  localHeaderOffset: number;
}

function read(fd: number, position: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  readSync(fd, buffer, 0, length, position);
  return buffer;
}

/** The entries of a zip file, from its central directory (no zip64: the file is below 4 GiB). */
function zipEntries(fd: number, size: number): ZipEntry[] {
  const tailLength = Math.min(size, 65557);
  const tail = read(fd, size - tailLength, tailLength);
  const end = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  assert.ok(end >= 0, 'end of central directory');
  const count = tail.readUInt16LE(end + 10);
  const directory = read(fd, tail.readUInt32LE(end + 16), tail.readUInt32LE(end + 12));
  const entries: ZipEntry[] = [];
  let offset = 0;
  for (let i = 0; i < count; i += 1) {
    assert.equal(directory.readUInt32LE(offset), 0x02014b50, 'central directory entry');
    const nameLength = directory.readUInt16LE(offset + 28);
    entries.push({
      name: directory.toString('utf8', offset + 46, offset + 46 + nameLength),
      method: directory.readUInt16LE(offset + 10),
      compressedSize: directory.readUInt32LE(offset + 20),
      localHeaderOffset: directory.readUInt32LE(offset + 42),
    });
    offset += 46 + nameLength + directory.readUInt16LE(offset + 30) + directory.readUInt16LE(offset + 32);
  }
  return entries;
}

function entryText(fd: number, entry: ZipEntry): string {
  const header = read(fd, entry.localHeaderOffset, 30);
  const start = entry.localHeaderOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
  const data = read(fd, start, entry.compressedSize);
  return (entry.method === 8 ? inflateRawSync(data) : data).toString('utf8');
}

test('the linux-x64 .vsix holds the sidecar, the agent, the layer and the schema', () => {
  const vsix = execFileSync('node', [path.join(EXTENSION_DIR, 'scripts/package.mjs')], { cwd: EXTENSION_DIR, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    .trim()
    .split('\n')
    .pop() ?? '';
  const fd = openSync(vsix, 'r');
  try {
    const entries = zipEntries(fd, statSync(vsix).size);
    const names = new Set(entries.map((e) => e.name));
    for (const name of [
      'extension/bin/mirrord',
      'extension/bin/mirrord-agent',
      'extension/bin/libmirrord_layer.so',
      'extension/schema/mirrord-schema.json',
      'extension/out/src/extension.js',
      'extension/node_modules/vscode-languageclient/package.json',
      'extension/package.json',
      'extension.vsixmanifest',
    ]) {
      assert.ok(names.has(name), `${name} is in the .vsix`);
    }
    for (const name of names) {
      assert.doesNotMatch(name, /^extension\/(src|test|out\/test)\//, `${name}: sources and tests stay out`);
      assert.doesNotMatch(name, /^extension\/node_modules\/(typescript|eslint|@vscode\/vsce)\//, `${name}: dev dependencies stay out`);
    }
    const manifest = entries.find((e) => e.name === 'extension.vsixmanifest');
    assert.ok(manifest);
    assert.match(entryText(fd, manifest), /TargetPlatform="linux-x64"/);
  } finally {
    closeSync(fd);
  }
});
