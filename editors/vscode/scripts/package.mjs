// Packages the extension for linux-x64: copies the sidecar, the agent and the layer from
// target/${MIRRORD_PROFILE:-debug} into bin/ and the schema into schema/, builds, and runs
// `vsce package`. Prints the .vsix path.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const extension = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const repo = path.resolve(extension, '../..');
const profile = process.env.MIRRORD_PROFILE ?? 'debug';

mkdirSync(path.join(extension, 'bin'), { recursive: true });
for (const file of ['mirrord', 'mirrord-agent', 'libmirrord_layer.so']) {
  const destination = path.join(extension, 'bin', file);
  copyFileSync(path.join(repo, 'target', profile, file), destination);
  chmodSync(destination, 0o755);
}
execFileSync('npm', ['run', 'build'], { cwd: extension, stdio: 'inherit' });
const vsix = path.join(extension, 'mirrord-linux-x64.vsix');
execFileSync(path.join(extension, 'node_modules/.bin/vsce'), ['package', '--target', 'linux-x64', '--skip-license', '--out', vsix], {
  cwd: extension,
  stdio: ['ignore', 'inherit', 'inherit'],
});
process.stdout.write(`${vsix}\n`);
