import { randomBytes } from 'node:crypto';
import { createClient, type Client, type FormattedExecutionResult } from 'graphql-ws';
import { createClient as createSseClient } from 'graphql-sse';
import WebSocket from 'ws';
import { buildApp, type App, type AppHooks } from '../../src/app.js';
import { signToken } from '../../src/auth.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';

export const TEST_JWT_SECRET = 'test-secret-that-is-at-least-32-characters-long';

/** A user id unique to this test run, so tests sharing Redis or a database never collide. */
export function uid(name: string): string {
  return `${name}-${randomBytes(4).toString('hex')}`;
}

export interface GraphQLResponse<T = Record<string, any>> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string; [key: string]: unknown }; path?: unknown[] }[];
}

/** A real server on a real port (0: the OS picks), against a real database. */
export class TestServer {
  private constructor(
    readonly app: App,
    readonly url: string,
    readonly port: number,
    readonly env: Record<string, string>,
  ) {}

  static async start(
    env: Record<string, string | undefined>,
    hooks: AppHooks = {},
    logTo?: { write(line: string): void },
  ): Promise<TestServer> {
    // Tests send in bursts: no send rate limit unless a test asks for one. Every
    // test connects from 127.0.0.1 and test files share Redis: no per-address
    // limit either (test/abuse-limits.test.ts sets both).
    const full = {
      JWT_SECRET: TEST_JWT_SECRET,
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      SEND_RATE_PER_SECOND: '0',
      CONNECT_RATE_PER_MINUTE_PER_ADDRESS: '0',
      WS_KEEPALIVE_MS: '1000',
      // Presence changes at once, as most tests expect (test/presence-typing.test.ts covers the grace).
      PRESENCE_GRACE_MS: '0',
      ...env,
    };
    const config = loadConfig(full as NodeJS.ProcessEnv);
    const app = await buildApp(config, createLogger(config.logLevel, {}, logTo), hooks);
    const { port } = await app.start(0, '127.0.0.1');
    return new TestServer(app, `http://127.0.0.1:${port}/graphql`, port, full as Record<string, string>);
  }

  get wsUrl(): string {
    return this.url.replace(/^http/, 'ws');
  }

  stop(): Promise<void> {
    return this.app.stop();
  }

  /** Waits until this server hears the user's channel (their subscription has started). */
  async listening(userId: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const started = async () => {
      while (!(await this.app.realtime.hub.listening(userId))) {
        if (Date.now() > deadline) throw new Error(`no subscription of ${userId} started`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    // The user channel is live and no subscription start is under way. Once
    // more after a moment: the subscribe just sent may not have reached the
    // server yet (the channel can be live from an earlier subscription), and
    // a start that has begun is waited for until it has read its start point.
    await started();
    await new Promise((resolve) => setTimeout(resolve, 50));
    await started();
  }

  /** Waits until this server delivers live to at least `count` feed members (subscriptions are in place). */
  async live(count: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.app.realtime.hub.stats().live < count) {
      if (Date.now() > deadline) throw new Error(`only ${this.app.realtime.hub.stats().live} of ${count} subscriptions went live`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  user(id: string, name?: string, options: { expiresIn?: string | number } = {}): Promise<TestUser> {
    return userAt(this, id, name, options);
  }
}

/** Where a test user talks to: one server, one instance of a cluster, or the load balancer. */
export interface Endpoint {
  readonly url: string;
  readonly wsUrl: string;
}

export function endpoint(url: string): Endpoint {
  return { url, wsUrl: url.replace(/^http/, 'ws') };
}

/** A user with a token, created on the server by a first request. */
export async function userAt(at: Endpoint, id: string, name?: string, options: { expiresIn?: string | number } = {}): Promise<TestUser> {
  const token = await signToken(TEST_JWT_SECRET, id, { name: name ?? id, expiresIn: options.expiresIn });
  const user = new TestUser(at, id, token);
  await user.ok('{ viewer { id } }');
  return user;
}

/** The realtime transports every subscription behaviour is tested over. */
export const TRANSPORTS = ['ws', 'sse'] as const;
export type TransportName = (typeof TRANSPORTS)[number];

export class TestUser {
  private sockets: Client[] = [];
  private sseClients: { dispose(): void }[] = [];
  constructor(
    readonly server: Endpoint,
    readonly id: string,
    public token: string,
  ) {}

  /** The same user (same token) talking to another endpoint. */
  at(other: Endpoint): TestUser {
    return new TestUser(other, this.id, this.token);
  }

  async query<T = Record<string, any>>(query: string, variables?: Record<string, unknown>): Promise<GraphQLResponse<T>> {
    const response = await fetch(this.server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${this.token}` },
      body: JSON.stringify({ query, variables }),
    });
    return (await response.json()) as GraphQLResponse<T>;
  }

  /** Runs an operation that must succeed and returns its data. */
  async ok<T = Record<string, any>>(query: string, variables?: Record<string, unknown>): Promise<T> {
    const result = await this.query<T>(query, variables);
    if (result.errors?.length) throw new Error(`GraphQL errors: ${JSON.stringify(result.errors)}`);
    return result.data as T;
  }

  /** The error code of an operation that must fail. */
  async errorCode(query: string, variables?: Record<string, unknown>): Promise<string | undefined> {
    const result = await this.query(query, variables);
    if (!result.errors?.length) throw new Error(`expected an error, got ${JSON.stringify(result.data)}`);
    return result.errors[0]!.extensions?.code;
  }

  /** A graphql-ws client for this user (closed by `closeSockets`). */
  socket(options: { retry?: boolean; url?: string } = {}): Client {
    const client = createClient({
      url: options.url ?? this.server.wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: () => ({ authorization: `Bearer ${this.token}` }),
      retryAttempts: options.retry ? 20 : 0,
      retryWait: async () => new Promise((resolve) => setTimeout(resolve, 100)),
      lazy: false,
      onNonLazyError: () => {},
    });
    this.sockets.push(client);
    return client;
  }

  subscribe<T = any>(query: string, variables?: Record<string, unknown>, client = this.socket()): Subscription<T> {
    return new Subscription<T>((sink) => client.subscribe<T>({ query, variables }, sink));
  }

  /**
   * A subscription over Server-Sent Events, with graphql-sse's client in
   * distinct connections mode (what GraphiQL speaks): one HTTP stream per
   * subscription, no retries (a dropped stream is an error).
   */
  subscribeSse<T = any>(query: string, variables?: Record<string, unknown>): Subscription<T> {
    const client = createSseClient({ url: this.server.url, headers: { authorization: `Bearer ${this.token}` }, retryAttempts: 0 });
    this.sseClients.push(client);
    return new Subscription<T>((sink) => client.subscribe<T>({ query, variables }, sink as never));
  }

  /** A subscription over the named transport: the same assertions hold for each. */
  subscribeVia<T = any>(transport: TransportName, query: string, variables?: Record<string, unknown>): Subscription<T> {
    return transport === 'ws' ? this.subscribe<T>(query, variables) : this.subscribeSse<T>(query, variables);
  }

  async closeSockets(): Promise<void> {
    await Promise.all(this.sockets.map((client) => client.dispose()));
    for (const client of this.sseClients) client.dispose();
    this.sockets = [];
    this.sseClients = [];
  }
}

/** Collects what a subscription receives, with helpers to wait for it. */
export class Subscription<T = any> {
  readonly results: FormattedExecutionResult<T, unknown>[] = [];
  /** When each result arrived (Date.now()), for tests that report how long delivery took. */
  readonly receivedAt: number[] = [];
  error: unknown;
  completed = false;
  private readonly unsubscribe: () => void;
  private waiters: (() => void)[] = [];

  constructor(
    start: (sink: {
      next: (result: FormattedExecutionResult<T, unknown>) => void;
      error: (error: unknown) => void;
      complete: () => void;
    }) => () => void,
  ) {
    this.unsubscribe = start(
      {
        next: (result) => {
          this.results.push(result);
          this.receivedAt.push(Date.now());
          this.wake();
        },
        error: (error) => {
          this.error = error;
          this.wake();
        },
        complete: () => {
          this.completed = true;
          this.wake();
        },
      },
    );
  }

  private wake() {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  get data(): T[] {
    return this.results.map((result) => result.data as T);
  }

  /** Whether it ended, by the server or with an error (either transport's way). */
  get ended(): boolean {
    return this.completed || this.error !== undefined;
  }

  /**
   * The code of the error it ended with: graphql-ws sends an `error` message
   * (or a result with errors, then `complete`, when it could not start);
   * GraphQL over SSE sends a result with errors, then `complete`.
   */
  get errorCode(): string | undefined {
    const errors = Array.isArray(this.error) ? this.error : this.results.at(-1)?.errors;
    return (errors?.[0] as { extensions?: { code?: string } } | undefined)?.extensions?.code;
  }

  /** Resolves when `predicate` holds, rejects after `timeoutMs` with what arrived so far. */
  async until(predicate: (sub: this) => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out waiting for ${what}; received ${JSON.stringify(this.results).slice(0, 2000)} error=${String(this.error)}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  count(n: number, timeoutMs?: number): Promise<void> {
    return this.until((sub) => sub.results.length >= n, timeoutMs, `${n} results`);
  }

  close(): void {
    this.unsubscribe();
  }
}

/** Waits a little, for asserting that something does NOT arrive. */
export const settle = (ms = 300) => new Promise((resolve) => setTimeout(resolve, ms));
