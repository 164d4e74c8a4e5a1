// Build step: puts the mirrord config JSON Schema at schema/mirrord-schema.json, where the
// jsonValidation contribution points. Works inside the repository and from a copy of this folder
// anywhere else. The schema comes from the first of:
//   1. $MIRRORD_SCHEMA, a schema file;
//   2. ../../schema/mirrord-schema.json, the generated copy, when this folder is in the repository;
//   3. `mirrord schema`, printed by $MIRRORD_BIN, else the bundled bin/mirrord, else `mirrord` on PATH
//      (the schema of that binary's own version).
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const extension = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const destination = path.join(extension, 'schema/mirrord-schema.json');
mkdirSync(path.dirname(destination), { recursive: true });

const file = process.env.MIRRORD_SCHEMA ?? path.join(extension, '../../schema/mirrord-schema.json');
if (existsSync(file)) {
  copyFileSync(file, destination);
} else {
  const bundled = path.join(extension, 'bin/mirrord');
  const binary = process.env.MIRRORD_BIN ?? (existsSync(bundled) ? bundled : 'mirrord');
  let schema;
  try {
    schema = execFileSync(binary, ['schema'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    process.stderr.write(
      `error: no mirrord config schema: ${file} does not exist and \`${binary} schema\` failed (${error.message.split('\n')[0]})\n` +
        '  help: build mirrord (`cargo build -p mirrord-cli` in the repository) and put it on PATH, ' +
        'or set MIRRORD_BIN to the binary or MIRRORD_SCHEMA to a schema file\n',
    );
    process.exit(1);
  }
  writeFileSync(destination, schema);
}
