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
  /**
   * Per-instance additions to `env`, e.g. one instance's REDIS_URL through a
   * TCP proxy that a test can cut. Applied on every (re)start of that instance.
   */
  instanceEnv?: (index: number) => Record<string, string | undefined>;
  /** Called with every process spawned: instances with their index, nginx with -1 (tests track them to clean up whatever happens). */
  onSpawn?: (child: ChildProcess, index: number) => void;
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
      const response = await fetch(`http://127.0.0.1:${port}/ready`, { signal: AbortSignal.timeout(2000) });
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
    private readonly options: Pick<ClusterOptions, 'instanceEnv' | 'onSpawn'> = {},
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
    const cluster = new Cluster(dir, options.port ?? (await freePort()), options.env, ports, options);
    try {
      // One at a time: the first applies migrations, the rest find them done.
      for (const instance of cluster.instances) await cluster.startInstance(instance.index);
      cluster.nginx = await startNginx(
        path.join(dir, 'nginx'),
        `127.0.0.1:${cluster.port}`,
        cluster.instances.map((instance) => `127.0.0.1:${instance.port}`),
      );
      options.onSpawn?.(cluster.nginx.process, -1);
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
      env: { TRUST_PROXY_HOPS: '1', ...process.env, ...this.env, ...this.options.instanceEnv?.(index), PORT: String(instance.port), HOST: '127.0.0.1', INSTANCE_ID: `i${index}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.options.onSpawn?.(child, index);
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

  /** Freezes an instance (SIGSTOP): its sockets stay open and its port accepts connections, but nothing answers. */
  suspend(index: number): void {
    this.instances[index]!.process?.kill('SIGSTOP');
  }

  /** Lets a suspended instance run again (SIGCONT). */
  resume(index: number): void {
    this.instances[index]!.process?.kill('SIGCONT');
  }

  /** Resolves when the instance answers /ready with 200 (PostgreSQL reachable, not draining). */
  async ready(index: number, timeoutMs = 30_000): Promise<void> {
    const instance = this.instances[index]!;
    if (!instance.process) throw new Error(`instance ${index} is not running`);
    await waitReady(instance.port, instance.process, timeoutMs);
  }

  /** A graceful restart (SIGTERM, wait, start again on the same port, wait until ready). */
  async restart(index: number): Promise<void> {
    await this.signal(index, 'SIGTERM');
    await this.startInstance(index);
  }

  /**
   * Stops nginx and every instance: SIGCONT first (a suspended process would
   * never act on SIGTERM), then SIGTERM, and SIGKILL for one that has not
   * exited within `graceMs`.
   */
  async stop(graceMs = 15_000): Promise<void> {
    await this.nginx?.stop();
    await Promise.all(
      this.instances.map(async (instance) => {
        instance.process?.kill('SIGCONT');
        const child = instance.process;
        const timer = setTimeout(() => child?.kill('SIGKILL'), graceMs);
        try {
          await this.signal(instance.index, 'SIGTERM');
        } finally {
          clearTimeout(timer);
        }
      }),
    );
  }
}
