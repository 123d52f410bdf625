import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * Builds the web app (web/ → web/dist) when its inputs changed since the
 * last build: `npm start` runs this first (the "prestart" script), so a
 * clean clone's `npm install && npm start` serves the app, and so does the
 * same checkout after a `git pull`, without anyone remembering a build step.
 * An unchanged app costs a hash of ~100 small files (milliseconds).
 *
 * `--force` builds regardless (`npm run build:web`).
 */

const root = fileURLToPath(new URL('..', import.meta.url));
const webDir = path.join(root, 'web');
const distDir = path.join(webDir, 'dist');
const stampFile = path.join(distDir, '.inputs-sha256');
/** What the bundle is made of: the app, the SDK it bundles from source, and the locked dependency versions. */
const INPUTS = ['web/src', 'web/index.html', 'web/vite.config.ts', 'web/package.json', 'client/src', 'package-lock.json'];

async function files(relative: string): Promise<string[]> {
  const absolute = path.join(root, relative);
  const entries = await readdir(absolute, { withFileTypes: true }).catch(() => null);
  if (!entries) return [relative];
  const nested = await Promise.all(entries.map((entry) => files(path.join(relative, entry.name))));
  return nested.flat();
}

/** Content, not modification times: a checkout or a copy changes those without changing anything. */
export async function inputsHash(): Promise<string> {
  const hash = createHash('sha256');
  for (const file of (await Promise.all(INPUTS.map(files))).flat().sort()) {
    hash.update(file).update('\0').update(await readFile(path.join(root, file))).update('\0');
  }
  return hash.digest('hex');
}

/** Builds unless web/dist was built from exactly the current inputs; says which. */
export async function buildWeb(options: { force?: boolean; log?: (line: string) => void } = {}): Promise<'built' | 'up to date'> {
  const log = options.log ?? ((line) => console.log(line));
  const hash = await inputsHash();
  const built = await readFile(stampFile, 'utf8').catch(() => '');
  if (!options.force && built.trim() === hash) return 'up to date';
  if (!existsSync(viteBin)) throw new ViteMissing();
  log('Building the web app (web/ → web/dist)…');
  // In its own process with NODE_ENV=production: called from a test runner
  // (NODE_ENV=test) Vite would otherwise bundle React's development build.
  await new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, [viteBin, 'build', '--logLevel', 'warn'], {
      cwd: webDir,
      env: { ...process.env, NODE_ENV: 'production' },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`vite build exited with ${code}`))));
  });
  await writeFile(stampFile, hash + '\n');
  return 'built';
}

const viteBin = path.join(root, 'node_modules', 'vite', 'bin', 'vite.js');

export class ViteMissing extends Error {
  constructor() {
    super('Vite is not installed (a production install, without dev dependencies)');
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const force = process.argv.includes('--force');
  buildWeb({ force }).then(
    (result) => result === 'up to date' && force === false && console.log('Web app: up to date'),
    (error: unknown) => {
      // Without dev dependencies (a production install) there is no Vite:
      // the server still starts, and /app/ says how to build it.
      if (error instanceof ViteMissing && !force) {
        console.warn('Web app not built: Vite is not installed (npm install without --omit=dev builds it).');
        return;
      }
      console.error(error);
      process.exit(1);
    },
  );
}
