import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { track } from './support/processes.js';

/**
 * `npm start` as a newcomer runs it: the embedded default (no DATABASE_URL),
 * on a port something else already holds.
 */
describe('npm start on a busy port', () => {
  let blocker: Server;
  let port: number;
  let dataDir: string;

  beforeAll(async () => {
    blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    port = (blocker.address() as AddressInfo).port;
    dataDir = await mkdtemp(path.join(tmpdir(), 'chat-startup-'));
  });

  afterAll(async () => {
    await new Promise((resolve) => blocker.close(resolve));
    await rm(dataDir, { recursive: true, force: true });
  });

  it('names the port, exits with 2, and leaves no embedded PostgreSQL running', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'warn' };
    delete env.DATABASE_URL;
    delete env.REDIS_URL;
    delete env.REDIS_CLUSTER_NODES;
    const child = track(spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { env, stdio: ['ignore', 'pipe', 'pipe'] }));
    let stderr = '';
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    child.stdout!.resume();
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));

    expect(stderr).toContain(`Port ${port} on 127.0.0.1 is already in use`);
    expect(stderr).toContain(`PORT=${port + 1} npm start`);
    expect(stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
    expect(code).toBe(2);
    // The embedded PostgreSQL did start (its data directory exists) and was
    // stopped cleanly: a running postmaster keeps postmaster.pid.
    expect(existsSync(path.join(dataDir, 'postgres', 'PG_VERSION'))).toBe(true);
    expect(existsSync(path.join(dataDir, 'postgres', 'postmaster.pid'))).toBe(false);
  }, 120_000);
});
