import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { printPublicSchema } from '../schema/index.js';

/** `npm run schema`: prints the public contract to schema.graphql (committed; CI fails if stale). */
const target = fileURLToPath(new URL('../../schema.graphql', import.meta.url));
writeFileSync(target, printPublicSchema());
console.log(`wrote ${target}`);
