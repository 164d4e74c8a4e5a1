// Check (run by scripts/test): `npm run build` works from a copy of this folder outside the
// repository. Copies the sources (not node_modules, out/, bin/ or schema/) to a temporary
// directory, links node_modules, builds there with the sidecar binary ($MIRRORD_BIN, default
// ../../target/debug/mirrord) on PATH, and checks the compiled extension and the schema (which must
// be what that binary prints for `mirrord schema`); before that, that `npm test` in the unbuilt
// copy says what to build first. Exits 1 with a message on the first failure.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const extension = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const binary = path.resolve(extension, process.env.MIRRORD_BIN ?? '../../target/debug/mirrord');
const skipped = new Set(['node_modules', 'out', 'bin', 'schema']);

function fail(message) {
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
}

for (const [what, file] of [
  ['node_modules (run `npm ci` here)', path.join(extension, 'node_modules')],
  ['the mirrord binary (run `cargo build -p mirrord-cli` at the repository root, or set MIRRORD_BIN)', binary],
]) {
  if (!existsSync(file)) fail(`${what} is missing: ${file}`);
}

const copy = path.join(mkdtempSync(path.join(tmpdir(), 'mirrord-vscode-copy-')), 'vscode');
try {
  cpSync(extension, copy, {
    recursive: true,
    filter: (source) => {
      const relative = path.relative(extension, source);
      return !skipped.has(relative.split(path.sep)[0]) && !relative.endsWith('.vsix');
    },
  });
  symlinkSync(path.join(extension, 'node_modules'), path.join(copy, 'node_modules'));
  // Before the build, `npm test` must say what to build first.
  const early = spawnSync('npm', ['test'], {
    cwd: copy,
    env: { ...process.env, MIRRORD_BIN: '/nonexistent/mirrord' },
    encoding: 'utf8',
  });
  for (const expected of ['out/) is missing; build it first: `npm run build` here', 'the sidecar binary /nonexistent/mirrord is missing']) {
    if (early.status !== 1 || !early.stderr.includes(expected)) {
      fail(`\`npm test\` before a build should exit 1 saying "${expected}"; it exited ${early.status}:\n${early.stderr}`);
    }
  }
  const env = { ...process.env, PATH: `${path.dirname(binary)}${path.delimiter}${process.env.PATH ?? ''}` };
  delete env.MIRRORD_BIN;
  delete env.MIRRORD_SCHEMA;
  try {
    execFileSync('npm', ['run', 'build'], { cwd: copy, env, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    fail(`\`npm run build\` failed in a copy outside the repository (${copy}):\n${error.stdout}${error.stderr}`);
  }
  if (!existsSync(path.join(copy, 'out/src/extension.js'))) fail('the copy built no out/src/extension.js');
  const schema = readFileSync(path.join(copy, 'schema/mirrord-schema.json'), 'utf8');
  const expected = execFileSync(binary, ['schema'], { encoding: 'utf8' });
  if (schema !== expected) fail("the copy's schema/mirrord-schema.json is not what `mirrord schema` prints");
  process.stdout.write('a copy of editors/vscode outside the repository builds, with the schema of the mirrord on PATH\n');
} finally {
  rmSync(path.dirname(copy), { recursive: true, force: true });
}
