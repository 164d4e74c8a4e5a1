// First step of `npm test`: the tests run the compiled extension (out/) against the real sidecar
// and package the real binaries, so say what to build first when any of it is missing, instead of
// failing later with a missing module or ENOENT.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const extension = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const profile = process.env.MIRRORD_PROFILE ?? 'debug';
const target = path.resolve(extension, '../../target', profile);
const cargo = `\`cargo build${profile === 'release' ? ' --release' : ''} -p mirrord-cli -p mirrord-agent -p mirrord-layer\` at the repository root`;

const missing = [];
if (!existsSync(path.join(extension, 'out/src/extension.js')) || !existsSync(path.join(extension, 'out/test'))) {
  missing.push(['the compiled extension (out/)', '`npm run build` here']);
}
const sidecar = path.resolve(extension, process.env.MIRRORD_BIN ?? path.join(target, 'mirrord'));
if (!existsSync(sidecar)) {
  missing.push([`the sidecar binary ${sidecar}`, `${cargo} (or set MIRRORD_BIN)`]);
}
for (const file of ['mirrord-agent', 'libmirrord_layer.so']) {
  const artifact = path.join(target, file);
  if (!existsSync(artifact)) missing.push([`${artifact} (packaged into the .vsix)`, cargo]);
}
for (const [what, how] of missing) {
  process.stderr.write(`error: ${what} is missing; build it first: ${how}\n`);
}
process.exit(missing.length === 0 ? 0 : 1);
