// Build step: copies the generated schema (schema/mirrord-schema.json at the repository root) into
// the extension, where the jsonValidation contribution points.
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const extension = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
mkdirSync(path.join(extension, 'schema'), { recursive: true });
copyFileSync(path.join(extension, '../../schema/mirrord-schema.json'), path.join(extension, 'schema/mirrord-schema.json'));
