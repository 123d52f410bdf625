import { fork, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { freePort } from '../src/db/embedded.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** A server process under measurement, with an inspector port to read its memory after a full GC. */
export interface Measured {
  port: number;
  inspectPort: number;
  process: ChildProcess;
  /** process.memoryUsage() right after a forced garbage collection, via the inspector protocol. */
  memory(): Promise<NodeJS.MemoryUsage>;
  /** CPU time (user + system, µs) the process has used so far: far steadier than wall time on a shared machine. */
  cpu(): Promise<number>;
  stop(): Promise<void>;
}

/** Evaluates `expression` in the process through the inspector protocol, after `gc` forced collections. */
async function inspectorEval(inspectPort: number, expression: string, gc = 0): Promise<any> {
  const targets = (await fetch(`http://127.0.0.1:${inspectPort}/json/list`).then((r) => r.json())) as { webSocketDebuggerUrl: string }[];
  const socket = new WebSocket(targets[0]!.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  let id = 0;
  const call = (method: string, params: object = {}) =>
    new Promise<any>((resolve) => {
      const mine = ++id;
      socket.on('message', function reply(data) {
        const message = JSON.parse(String(data));
        if (message.id !== mine) return;
        socket.off('message', reply);
        resolve(message.result);
      });
      socket.send(JSON.stringify({ id: mine, method, params }));
    });
  try {
    for (let i = 0; i < gc; i++) await call('HeapProfiler.collectGarbage');
    const result = await call('Runtime.evaluate', { expression: `JSON.stringify(${expression})`, returnByValue: true });
    return JSON.parse(result.result.value);
  } finally {
    socket.close();
  }
}

function measured(port: number, inspectPort: number, child: ChildProcess): Measured {
  return {
    port,
    inspectPort,
    process: child,
    // Two rounds of GC: the first frees what only becomes unreachable after finalizers.
    memory: () => inspectorEval(inspectPort, 'process.memoryUsage()', 2),
    // getrusage of the whole process (all threads), in microseconds.
    cpu: async () => {
      const usage = (await inspectorEval(inspectPort, 'process.cpuUsage()')) as NodeJS.CpuUsage;
      return usage.user + usage.system;
    },
    stop: stopper(child),
  };
}

async function waitHttp(url: string, child: ChildProcess, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${url}: process exited with ${child.exitCode}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} did not come up`);
}

function stopper(child: ChildProcess) {
  return async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    if (child.exitCode === null) child.kill('SIGKILL');
  };
}

/** The chat API in its own process (one instance, in-process bus), as `npm start` runs it. */
export async function startChatServer(env: Record<string, string>): Promise<Measured> {
  const port = await freePort();
  const inspectPort = await freePort();
  // BENCH_SERVER_FLAGS: extra node flags for the server under test (e.g. --cpu-prof --cpu-prof-dir=.data/profiles).
  const flags = (process.env.BENCH_SERVER_FLAGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...flags, `--inspect=127.0.0.1:${inspectPort}`, '--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', SEND_RATE_PER_SECOND: '0', CONNECT_RATE_PER_MINUTE: '0', CONNECT_RATE_PER_MINUTE_PER_ADDRESS: '0', MAX_CONNECTIONS_PER_USER: '0' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await waitHttp(`http://127.0.0.1:${port}/ready`, child);
  return measured(port, inspectPort, child);
}

async function startScript(script: string, env: Record<string, string>): Promise<Measured> {
  const port = await freePort();
  const inspectPort = await freePort();
  const child = fork(fileURLToPath(new URL(script, import.meta.url)), [], {
    execArgv: [`--inspect=127.0.0.1:${inspectPort}`, '--import', 'tsx'],
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  await waitHttp(`http://127.0.0.1:${port}/memory`, child);
  return measured(port, inspectPort, child);
}

/** The raw `ws` broadcast server the ratios are taken against (env: JWT_SECRET and BASELINE_AUTH=1 for authenticated joins). */
export function startBaseline(env: Record<string, string> = {}): Promise<Measured> {
  return startScript('./baseline-ws.ts', env);
}

/** The Socket.IO 4 rooms peer (bench/peer-socketio.ts); env: DATABASE_URL, JWT_SECRET. */
export function startSocketIoPeer(env: Record<string, string>): Promise<Measured> {
  return startScript('./peer-socketio.ts', env);
}

/** Load-generating worker processes (bench/client-worker.ts), each holding a share of the sockets. */
export class Clients {
  private constructor(private readonly workers: ChildProcess[]) {}

  static async start(count: number): Promise<Clients> {
    const workers = Array.from({ length: count }, () =>
      fork(fileURLToPath(new URL('./client-worker.ts', import.meta.url)), [], {
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      }),
    );
    // Loading a worker (tsx, ws, socket.io-client) takes seconds on a busy machine: not part of any measurement.
    await Promise.all(workers.map((worker) => new Promise((resolve, reject) => worker.once('message', resolve).once('exit', reject))));
    return new Clients(workers);
  }

  private ask(worker: ChildProcess, message: object): Promise<any> {
    return new Promise((resolve, reject) => {
      worker.once('message', (reply: any) => (reply.ok ? resolve(reply) : reject(new Error(reply.error))));
      worker.send(message);
    });
  }

  /** Splits `users` over the workers; each opens one socket per user and subscribes. */
  async connect(options: {
    url: string;
    mode: 'graphql' | 'raw' | 'rawauth' | 'socketio';
    users: string[];
    secret: string;
    query: string;
    variables: object | object[];
    room?: string;
    batch?: number;
  }) {
    const share = Math.ceil(options.users.length / this.workers.length);
    const replies = await Promise.all(
      this.workers.map((worker, i) =>
        this.ask(worker, {
          cmd: 'connect',
          ...options,
          users: options.users.slice(i * share, (i + 1) * share),
          variables: Array.isArray(options.variables) ? options.variables.slice(i * share, (i + 1) * share) : options.variables,
          addressOffset: i * share,
        }),
      ),
    );
    return replies.reduce((sum, reply) => sum + reply.connected, 0) as number;
  }

  /** For each seq: how many sockets have it, and when the last one got it (epoch ms). */
  async arrivals(seqs: number[]): Promise<Map<number, { count: number; last: number }>> {
    const merged = new Map(seqs.map((seq) => [seq, { count: 0, last: 0 }]));
    for (const reply of await Promise.all(this.workers.map((worker) => this.ask(worker, { cmd: 'arrivals', seqs })))) {
      for (const [seq, entry] of Object.entries(reply.report as Record<string, { count: number; last: number }>)) {
        const total = merged.get(Number(seq))!;
        total.count += entry.count;
        total.last = Math.max(total.last, entry.last);
      }
    }
    return merged;
  }

  /** Waits until every seq has reached `expected` sockets; returns the time the last one arrived. */
  async waitFor(seqs: number[], expected: number, timeoutMs = 60_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const arrivals = await this.arrivals(seqs);
      const missing = [...arrivals.values()].reduce((sum, entry) => sum + Math.max(0, expected - entry.count), 0);
      if (missing === 0) return Math.max(...[...arrivals.values()].map((entry) => entry.last));
      if (Date.now() > deadline) throw new Error(`${missing} deliveries missing after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async latencies(): Promise<number[]> {
    const replies = await Promise.all(this.workers.map((worker) => this.ask(worker, { cmd: 'latencies' })));
    return replies.flatMap((reply) => reply.latencies as number[]);
  }

  /**
   * Fails loudly unless every socket saw each seq at most once and in
   * ascending order and no subscription ended in an error; with `lastSeq`,
   * also unless every socket's last seq is exactly that (none missed the end).
   */
  async verify(what: string, lastSeq?: number): Promise<{ sockets: number; retries: number }> {
    const replies = await Promise.all(this.workers.map((worker) => this.ask(worker, { cmd: 'check' })));
    const sockets = replies.reduce((sum, reply) => sum + reply.sockets, 0);
    const violations = replies.reduce((sum, reply) => sum + reply.violations, 0);
    const errors = replies.flatMap((reply) => reply.errors as string[]);
    if (violations || errors.length) throw new Error(`${what}: ${violations} duplicate or out-of-order deliveries, errors: ${errors.slice(0, 5).join(' | ')}`);
    if (lastSeq !== undefined) {
      const min = Math.min(...replies.map((reply) => reply.minLast));
      const max = Math.max(...replies.map((reply) => reply.maxLast));
      if (min !== lastSeq || max !== lastSeq) throw new Error(`${what}: sockets end between seq ${min} and ${max}, expected all at ${lastSeq}`);
    }
    return { sockets, retries: replies.reduce((sum, reply) => sum + reply.retries, 0) };
  }

  /** Drops every socket at once (client side, as a network blip or a dead load balancer would). */
  async drop(): Promise<void> {
    await Promise.all(this.workers.map((worker) => this.ask(worker, { cmd: 'drop' })));
  }

  /** Reconnects every socket, each resuming from the last seq it saw (as `cursorVariable`). */
  async resume(cursorVariable: string, batch: number): Promise<number> {
    const replies = await Promise.all(this.workers.map((worker) => this.ask(worker, { cmd: 'resume', cursorVariable, batch })));
    return replies.reduce((sum, reply) => sum + reply.connected, 0) as number;
  }

  async reset(): Promise<void> {
    await Promise.all(this.workers.map((worker) => this.ask(worker, { cmd: 'reset' })));
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => this.ask(worker, { cmd: 'close' }).catch(() => {})));
  }
}
