import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../src/db/embedded.js';
import { startNginx, type RunningNginx } from './nginx.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface ClusterOptions {
  instances: number;
  /** Environment of every instance (DATABASE_URL and REDIS_URL at least). */
  env: Record<string, string | undefined>;
  /** Port nginx listens on (default: a free one). */
  port?: number;
  /** Where nginx's files and the instances' logs go (default: a new temp directory). */
  dir?: string;
}

export interface Instance {
  readonly index: number;
  readonly port: number;
  /** This instance directly, bypassing nginx. */
  readonly url: string;
  process: ChildProcess | null;
}

async function waitReady(port: number, child: ChildProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`instance on port ${port} exited with ${child.exitCode}`);
    try {
      const response = await fetch(`http://127.0.0.1:${port}/ready`);
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`instance on port ${port} not ready after ${timeoutMs} ms`);
}

/**
 * N server processes behind a real nginx, on one machine: what
 * `npm run cluster` runs and what the multi-instance tests drive (restart,
 * SIGTERM, SIGKILL a particular instance).
 */
export class Cluster {
  readonly instances: Instance[];
  private nginx: RunningNginx | undefined;

  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly env: Record<string, string | undefined>,
    ports: number[],
  ) {
    this.instances = ports.map((p, index) => ({ index, port: p, url: `http://127.0.0.1:${p}/graphql`, process: null }));
  }

  /** The load balancer's GraphQL endpoint (HTTP and WebSocket). */
  get url(): string {
    return `http://127.0.0.1:${this.port}/graphql`;
  }

  static async start(options: ClusterOptions): Promise<Cluster> {
    const dir = options.dir ?? (await mkdtemp(path.join(tmpdir(), 'chat-cluster-')));
    await mkdir(dir, { recursive: true });
    const ports: number[] = [];
    for (let i = 0; i < options.instances; i++) ports.push(await freePort());
    const cluster = new Cluster(dir, options.port ?? (await freePort()), options.env, ports);
    try {
      // One at a time: the first applies migrations, the rest find them done.
      for (const instance of cluster.instances) await cluster.startInstance(instance.index);
      cluster.nginx = await startNginx(
        path.join(dir, 'nginx'),
        `127.0.0.1:${cluster.port}`,
        cluster.instances.map((instance) => `127.0.0.1:${instance.port}`),
      );
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  async startInstance(index: number): Promise<void> {
    const instance = this.instances[index]!;
    const log = createWriteStream(path.join(this.dir, `instance-${index}.log`), { flags: 'a' });
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: ROOT,
      // Behind nginx: the client's address is the last X-Forwarded-For entry (per-address limits).
      env: { TRUST_PROXY_HOPS: '1', ...process.env, ...this.env, PORT: String(instance.port), HOST: '127.0.0.1', INSTANCE_ID: `i${index}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.pipe(log);
    child.stderr!.pipe(log);
    instance.process = child;
    await waitReady(instance.port, child);
  }

  /** Sends `signal` and waits for the process to exit; resolves with its exit code (null when killed by a signal). */
  async signal(index: number, signal: NodeJS.Signals): Promise<number | null> {
    const child = this.instances[index]!.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill(signal);
    const code = await exited;
    // Only if it is still this process: the instance may have been started again meanwhile.
    if (this.instances[index]!.process === child) this.instances[index]!.process = null;
    return code;
  }

  /** A graceful restart (SIGTERM, wait, start again on the same port, wait until ready). */
  async restart(index: number): Promise<void> {
    await this.signal(index, 'SIGTERM');
    await this.startInstance(index);
  }

  async stop(): Promise<void> {
    await this.nginx?.stop();
    await Promise.all(this.instances.map((instance) => this.signal(instance.index, 'SIGTERM')));
  }
}
