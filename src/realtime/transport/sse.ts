import type { IncomingMessage, ServerResponse } from 'node:http';
import { GraphQLError, type DocumentNode } from 'graphql';
import type { Auth, Viewer } from '../../auth.js';
import type { Context } from '../../context.js';
import { unauthenticated } from '../../errors.js';
import type { RealtimeObserver } from '../broker/broker.js';
import type { Presence } from '../presence/presence.js';
import type { Renderers, SharedRenderer } from '../render.js';
import type { OperationListener } from './graphql-ws.js';
import type { OperationRequest, Operations, RunningSubscription } from './operations.js';
import { RenderingSink } from './sink.js';
import { clientAddress } from '../../security/addresses.js';
import { retryAfterMsOf, type ConnectionGate } from '../../security/abuse.js';

export interface SseOptions {
  operations: Operations;
  renderers: Renderers;
  auth: Auth;
  /** Called for every authenticated request (creates the user on first use). */
  onViewer: (viewer: Viewer) => Promise<void>;
  /** The same context factory HTTP requests use. */
  createContext: (viewer: Viewer | null) => Context;
  maskError: (error: GraphQLError) => GraphQLError;
  presence: Presence;
  /** A response with more unsent bytes than this is cut off: the client reconnects and resumes. */
  maxBufferedBytes: number;
  /** Period of keep-alive comments and token-expiry checks. */
  keepAliveMs: number;
  /** Largest request body accepted. */
  maxBodyBytes: number;
  instanceId: string;
  observer: RealtimeObserver;
  onOperation?: OperationListener;
  onSubscriptionStart?: (ids: { connectionId: string; operationId: string }, document: DocumentNode, operationName: string | null | undefined) => void;
  onError: (error: unknown, what: string) => void;
  /** Abuse limits on streams (src/security/abuse.ts); none when absent. */
  gate?: ConnectionGate;
  /** Proxies whose X-Forwarded-For is trusted, for per-address limits. */
  trustProxyHops?: number;
}

export interface SseTransport {
  /**
   * Whether this request is for this transport: its preferred type (the
   * first in `Accept`) is `text/event-stream`. Clients that merely allow an
   * event stream among JSON types (urql's queries and mutations) get JSON
   * from Yoga.
   */
  accepts(req: IncomingMessage): boolean;
  /** Serves one GraphQL-over-SSE request (distinct connections mode). */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Open event streams. */
  readonly size: number;
  /** Shutdown: every stream ends without `complete`, so clients reconnect (elsewhere) and resume. */
  close(): void;
}

const KEEP_ALIVE = ':\n\n';
const COMPLETE = 'event: complete\ndata:\n\n';

/** One event stream: one HTTP response carrying one operation. */
class EventStream {
  running: RunningSubscription | undefined;
  finished = false;
  /** Its connection slot was given back (src/security/abuse.ts). */
  released = false;

  constructor(
    readonly res: ServerResponse,
    readonly connectionId: string,
    readonly viewer: Viewer | null,
  ) {}

  write(chunk: string): void {
    if (!this.finished && !this.res.destroyed) this.res.write(chunk);
  }

  /** Writes the last events and ends the response. */
  close(last: string): void {
    if (this.finished) return;
    this.finished = true;
    if (!this.res.destroyed) this.res.end(last);
  }
}

function nextEvent(payload: string): string {
  return `event: next\ndata: ${payload}\n\n`;
}

/** The subscription's end of an event stream: `next` events, the slow-consumer bound, `complete`. */
class EventSink extends RenderingSink {
  constructor(
    private readonly stream: EventStream,
    private readonly transport: SseOptions,
    private readonly onFinish: () => void,
    renderer: SharedRenderer,
    context: Context,
  ) {
    super(renderer, context, transport);
  }

  cork(): void {
    this.stream.res.cork();
  }

  uncork(): void {
    this.stream.res.uncork();
  }

  protected write(payload: string): void {
    const { res } = this.stream;
    if (this.stream.finished || res.destroyed) return;
    if (res.writableLength > this.transport.maxBufferedBytes) {
      // As a WebSocket's 1013: cut off, the client reconnects and resumes from its cursor.
      this.stream.finished = true;
      this.transport.observer.slowConsumerCut('sse');
      res.destroy();
      this.onFinish();
      return;
    }
    res.write(nextEvent(payload));
  }

  protected finish(error: GraphQLError | undefined): void {
    const errors = error ? nextEvent(JSON.stringify({ errors: [this.transport.maskError(error).toJSON()] })) : '';
    this.stream.close(errors + COMPLETE);
    this.onFinish();
  }
}

async function readBody(req: IncomingMessage, limit: number): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The operation of a GET (URL parameters) or POST (JSON body) request, or why there is none. */
async function requestOf(req: IncomingMessage, limit: number): Promise<OperationRequest | { status: number; message: string }> {
  if (req.method === 'GET') {
    const params = new URL(req.url ?? '/', 'http://localhost').searchParams;
    let variables: unknown;
    try {
      variables = params.has('variables') ? JSON.parse(params.get('variables')!) : undefined;
    } catch {
      return { status: 400, message: 'variables must be JSON' };
    }
    return { query: params.get('query'), operationName: params.get('operationName'), variables, documentId: params.get('documentId') ?? undefined };
  }
  const body = await readBody(req, limit);
  if (body === null) return { status: 413, message: 'Request too large' };
  try {
    const parsed = JSON.parse(body) as unknown;
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return { status: 400, message: 'The body must be a JSON object' };
    return parsed as OperationRequest;
  } catch {
    return { status: 400, message: 'The body must be JSON' };
  }
}

/**
 * The Server-Sent Events transport: GraphQL over SSE, distinct connections
 * mode (https://github.com/enisdenjo/graphql-sse/blob/master/PROTOCOL.md), the
 * protocol GraphiQL and graphql-sse clients speak. Every guarantee of the
 * WebSocket transport holds here too, through the same delivery core
 * (docs/architecture.md, "Transports"): live delivery and resumption,
 * FORBIDDEN on removal, the slow-consumer bound, the same operation limits,
 * end of stream when the token expires, and a drain on shutdown.
 */
export function createSseTransport(options: SseOptions): SseTransport {
  const { operations } = options;
  const open = new Set<EventStream>();
  let nextId = 0;

  const heartbeat = setInterval(() => {
    const now = Date.now();
    for (const stream of open) {
      const expiresAt = stream.viewer?.expiresAtSeconds;
      if (expiresAt !== undefined && expiresAt * 1000 <= now) {
        // As a WebSocket's 4403: the client subscribes again with a fresh token.
        stream.running?.cancel();
        stream.close(nextEvent(JSON.stringify({ errors: [options.maskError(unauthenticated('Token expired')).toJSON()] })) + COMPLETE);
        continue;
      }
      stream.write(KEEP_ALIVE);
    }
  }, options.keepAliveMs);
  heartbeat.unref();

  /** Runs a limit; when it refuses, answers 429 with its retry hint (before any event) and says so. */
  async function admitted(res: ServerResponse, check: () => Promise<void>): Promise<boolean> {
    try {
      await check();
      return true;
    } catch (error) {
      const retryAfterMs = retryAfterMsOf(error);
      if (retryAfterMs === undefined) {
        options.onError(error, 'connection gate');
        return true;
      }
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': String(Math.ceil(retryAfterMs / 1000)) });
      res.end(JSON.stringify({ errors: [{ message: (error as Error).message, extensions: { code: 'RATE_LIMITED', retryAfterMs } }] }));
      return false;
    }
  }

  function begin(res: ServerResponse, viewer: Viewer | null, connectionId = `${options.instanceId}:sse:${++nextId}`): EventStream {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      // nginx: pass events through as they come.
      'x-accel-buffering': 'no',
    });
    // Some clients wait for a first byte before they report the stream open.
    res.write(KEEP_ALIVE);
    return new EventStream(res, connectionId, viewer);
  }

  /** Ends a stream with GraphQL errors (the protocol: errors go through the accepted stream, as `next`). */
  function fail(stream: EventStream, errors: readonly GraphQLError[]): void {
    stream.close(nextEvent(JSON.stringify({ errors: errors.map((error) => options.maskError(error).toJSON()) })) + COMPLETE);
  }

  return {
    accepts(req) {
      if (req.method !== 'GET' && req.method !== 'POST') return false;
      const preferred = (req.headers.accept ?? '').split(',')[0]!.split(';')[0]!.trim().toLowerCase();
      return preferred === 'text/event-stream';
    },

    async handle(req, res) {
      if (options.gate?.limitsAddresses && !(await admitted(res, () => options.gate!.attempt(clientAddress(req, options.trustProxyHops ?? 0))))) return;
      const request = await requestOf(req, options.maxBodyBytes);
      if ('status' in request) {
        res.writeHead(request.status, { 'content-type': 'application/json' });
        const code = request.status === 413 ? 'SIZE_LIMIT_EXCEEDED' : 'BAD_REQUEST';
        res.end(JSON.stringify({ errors: [{ message: request.message, extensions: { code } }] }));
        return;
      }
      const prepared = operations.prepare(request);
      let viewer: Viewer | null;
      try {
        viewer = await options.auth.fromAuthorizationHeader(req.headers.authorization);
        if (viewer) await options.onViewer(viewer);
      } catch (error) {
        fail(begin(res, null), [error instanceof GraphQLError ? error : unauthenticated()]);
        return;
      }
      const subscribing = !Array.isArray(prepared) && (prepared as { kind: string }).kind === 'subscription';
      // A stream is a connection: the user's attempts and open connections are limited as for WebSockets.
      const connectionId = `${options.instanceId}:sse:${++nextId}`;
      const gated = subscribing && viewer !== null && options.gate !== undefined;
      if (gated && !(await admitted(res, () => options.gate!.open(viewer!.id, connectionId)))) return;
      const stream = begin(res, viewer, connectionId);
      if (gated && res.destroyed) {
        // Gone while we asked (its 'close' has fired): free the slot now.
        stream.released = true;
        options.gate!.close(viewer!.id, connectionId);
      }
      if (Array.isArray(prepared)) {
        fail(stream, prepared as readonly GraphQLError[]);
        return;
      }
      const operation = prepared as Exclude<typeof prepared, readonly GraphQLError[]>;
      const context = options.createContext(viewer);
      const ids = { connectionId: stream.connectionId, operationId: '1' };

      if (operation.kind !== 'subscription') {
        const started = performance.now();
        const result = await operations.execute(operation, context);
        const codes = result.errors?.map((error) => String(error.extensions?.code ?? 'UNKNOWN'));
        options.onOperation?.(ids, operation.document, operation.operationName, (performance.now() - started) / 1000, codes);
        stream.close(nextEvent(JSON.stringify(result)) + COMPLETE);
        return;
      }

      options.onSubscriptionStart?.(ids, operation.document, operation.operationName);
      const cleanup = () => {
        if (gated && !stream.released) {
          stream.released = true;
          options.gate!.close(viewer!.id, stream.connectionId);
        }
        if (!open.delete(stream)) return;
        if (viewer) options.presence.disconnected(viewer.id, stream.connectionId).catch((error) => options.onError(error, 'presence'));
      };
      // The client went away (or the stream was cut off): stop the subscription.
      res.on('close', () => {
        stream.finished = true;
        stream.running?.cancel();
        cleanup();
      });
      open.add(stream);
      if (viewer) options.presence.connected(viewer.id, stream.connectionId).catch((error) => options.onError(error, 'presence'));
      const started = await operations.subscribe(operation, context, (renderer) => new EventSink(stream, options, cleanup, renderer, context));
      if (!('cancel' in started)) {
        stream.close(nextEvent(JSON.stringify(started)) + COMPLETE);
        cleanup();
        return;
      }
      stream.running = started;
      if (stream.finished) started.cancel(); // gone while it started
    },

    get size() {
      return open.size;
    },

    close() {
      clearInterval(heartbeat);
      for (const stream of [...open]) {
        stream.running?.cancel();
        // No `complete`: to the client this is a dropped connection, which it retries (elsewhere).
        stream.close('');
      }
    },
  };
}
