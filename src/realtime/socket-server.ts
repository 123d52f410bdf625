import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  createSourceEventStream,
  execute,
  GraphQLError,
  parse,
  validate,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLSchema,
} from 'graphql';
import { makeServer, GRAPHQL_TRANSPORT_WS_PROTOCOL, type ConnectionInitMessage } from 'graphql-ws';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Auth, Viewer } from '../auth.js';
import type { Context, SocketTransport } from '../context.js';
import { CloseReason } from './close-codes.js';
import type { Presence } from './presence.js';
import { RoutedStream } from './streams.js';

/** Everything this server keeps per socket (graphql-ws keeps its own small context). */
interface Extra {
  socket: WebSocket;
  connectionId: string;
  viewer?: Viewer;
  /** Answered the last heartbeat ping. */
  alive: boolean;
  openedAt: number;
  /** Shared by every operation on this connection (set once authenticated). */
  context?: Context;
}

/** graphql-ws's own connection_init timer would stay referenced for the socket's lifetime; the heartbeat does it instead. */
const CONNECTION_INIT_TIMEOUT_MS = 10_000;

// Listeners shared by every socket (they find their state through `this`),
// rather than closures per socket: idle connections are the product's unit of cost.
const extras = new WeakMap<WebSocket, Extra>();
function onPong(this: WebSocket) {
  const extra = extras.get(this);
  if (extra) extra.alive = true;
}

/** graphql-ws's view of a socket, as a class so its methods are shared, not closures per socket. */
class SocketAdapter {
  constructor(
    private readonly socket: WebSocket,
    private readonly onError: (error: unknown, what: string) => void,
  ) {}
  get protocol() {
    return this.socket.protocol;
  }
  send(data: string): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.socket.readyState !== this.socket.OPEN) return resolve();
      this.socket.send(data, () => resolve());
    });
  }
  close(code: number, reason: string) {
    this.socket.close(code, reason);
  }
  onMessage(callback: (data: string) => Promise<void>) {
    const socket = this.socket;
    const onError = this.onError;
    // Not an async function: graphql-ws's handler stays pending for the life
    // of each subscription, and an awaiting wrapper would keep a suspended
    // frame per subscription alongside it.
    socket.on('message', (data) => {
      callback(String(data)).catch((error) => {
        onError(error, 'graphql-ws message');
        socket.close(CloseReason.InternalServerError, 'Internal server error');
      });
    });
  }
}

/** Reports each finished query or mutation (logs, metrics); `errors` are the codes returned. */
export type OperationListener = (
  ids: { connectionId: string; operationId: string },
  document: DocumentNode,
  operationName: string | null | undefined,
  seconds: number,
  errors: string[] | undefined,
) => void;

export interface SocketServerOptions {
  httpServer: Server;
  path: string;
  schema: GraphQLSchema;
  /** The same context factory HTTP requests use (one context per connection). */
  createContext: (viewer: Viewer) => Context;
  /** The same error masking HTTP responses get. */
  maskError: (error: GraphQLError) => GraphQLError;
  auth: Auth;
  /** Called once per accepted connection (creates the user on first use). */
  onViewer: (viewer: Viewer) => Promise<void>;
  presence: Presence;
  instanceId: string;
  /** Heartbeat period: a socket that has not answered the previous ping by the next one is dropped. */
  keepAliveMs?: number;
  onOperation?: OperationListener;
  onSubscriptionStart?: (ids: { connectionId: string; operationId: string }, document: DocumentNode, operationName: string | null | undefined) => void;
  onError: (error: unknown, what: string) => void;
}

export interface SocketServer {
  /** Open sockets. */
  readonly size: number;
  /** Stops accepting and closes every socket with `code` (clients reconnect elsewhere and resume). */
  close(code: number, reason: string): Promise<void>;
}

function tokenFrom(params: ConnectionInitMessage['payload']): string | undefined {
  if (!params) return undefined;
  const raw = params.authorization ?? params.Authorization ?? params.token;
  if (typeof raw !== 'string') return undefined;
  return raw.replace(/^Bearer\s+/i, '').trim() || undefined;
}

/** Parsed and validated documents by query text: thousands of clients send the same few. */
function createDocumentCache(schema: GraphQLSchema, max = 1000) {
  const cache = new Map<string, DocumentNode | readonly GraphQLError[]>();
  return (query: string): DocumentNode | readonly GraphQLError[] => {
    let entry = cache.get(query);
    if (entry === undefined) {
      try {
        const document = parse(query, { maxTokens: 5000 });
        const errors = validate(schema, document);
        entry = errors.length > 0 ? errors : document;
      } catch (error) {
        entry = [error instanceof GraphQLError ? error : new GraphQLError(String(error))];
      }
      if (cache.size >= max) cache.delete(cache.keys().next().value!);
      cache.set(query, entry);
    }
    return entry;
  };
}

const codesOf = (result: ExecutionResult) => result.errors?.map((error) => String(error.extensions?.code ?? 'UNKNOWN'));

/**
 * graphql-ws on a `ws` server sharing the HTTP server's port.
 *
 * Our own glue rather than graphql-ws's `useServer`, and without Yoga's
 * envelop on this path, because memory per idle connection is a product
 * metric: one heartbeat timer for all sockets instead of one per socket;
 * nothing per connection beyond the socket, graphql-ws's state and the
 * viewer; subscriptions handed straight to their routed stream (no
 * per-subscription async-iterator wrappers, since a routed stream writes
 * pre-rendered frames itself). It also drains with 1012 so clients reconnect
 * elsewhere, and closes sockets whose token expired. HTTP and WebSocket share
 * the context factory and the error masking.
 */
export function createSocketServer(options: SocketServerOptions): SocketServer {
  const { auth, presence, schema } = options;
  const documents = createDocumentCache(schema);
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: 256 * 1024,
    handleProtocols: (protocols) => (protocols.has(GRAPHQL_TRANSPORT_WS_PROTOCOL) ? GRAPHQL_TRANSPORT_WS_PROTOCOL : false),
  });
  let accepting = true;
  let nextConnection = 0;
  const sockets = new Set<Extra>();

  const mask = (result: ExecutionResult): ExecutionResult =>
    result.errors ? { ...result, errors: result.errors.map((error) => options.maskError(error)) } : result;
  const idsOf = (args: ExecutionArgs) => {
    const transport = (args.contextValue as Context).transport!;
    return { connectionId: transport.connectionId, operationId: transport.id };
  };

  const server = makeServer<Record<string, unknown> | undefined, Extra>({
    connectionInitWaitTimeout: 0,
    onConnect: async (ctx) => {
      const token = tokenFrom(ctx.connectionParams);
      // The token has done its job; do not keep it for the life of the socket.
      delete (ctx as { connectionParams?: unknown }).connectionParams;
      if (!token) return false;
      let viewer: Viewer;
      try {
        viewer = await auth.verify(token);
      } catch {
        return false; // graphql-ws closes with CloseCode.Forbidden (4403)
      }
      await options.onViewer(viewer);
      ctx.extra.viewer = viewer;
      ctx.extra.context = options.createContext(viewer);
      await presence.connected(viewer.id, ctx.extra.connectionId);
      return true;
    },
    onClose: async (ctx) => {
      if (ctx.extra.viewer) {
        await presence.disconnected(ctx.extra.viewer.id, ctx.extra.connectionId).catch((error) => options.onError(error, 'presence'));
      }
    },
    onSubscribe: (ctx, id, payload) => {
      const document = documents(payload.query);
      // graphql-ws keeps the subscribe message for the life of the operation;
      // the query text is parsed (and cached) now, so do not keep a copy per subscription.
      (payload as { query: string }).query = '';
      if (Array.isArray(document)) return [...document];
      const transport: SocketTransport = {
        socket: ctx.extra.socket,
        id,
        connectionId: ctx.extra.connectionId,
        variables: payload.variables ?? undefined,
      };
      const args: ExecutionArgs = {
        schema,
        document: document as DocumentNode,
        operationName: payload.operationName,
        variableValues: payload.variables,
        // The connection's context, plus this operation's transport. A plain
        // copy rather than Object.create(context): objects that share a
        // prototype per connection would each need a hidden class of their own.
        contextValue: { ...ctx.extra.context!, transport } satisfies Context,
      };
      return args;
    },
    execute: async (args) => {
      const started = performance.now();
      const result = mask(await execute(args));
      options.onOperation?.(idsOf(args), args.document, args.operationName, (performance.now() - started) / 1000, codesOf(result));
      return result;
    },
    subscribe: async (args) => {
      options.onSubscriptionStart?.(idsOf(args), args.document, args.operationName);
      // What graphql-js's subscribe does first (argument coercion, the root
      // field's subscribe resolver, which authorizes and starts the stream),
      // without its per-event execute wrapper: a routed stream writes
      // pre-rendered frames to the socket and yields nothing.
      const source = await createSourceEventStream(args);
      // graphql-ws holds these arguments for the life of the subscription;
      // the stream has taken what it needs from the transport. (Assigned, not
      // deleted: a delete would turn the object into a slower, larger dictionary.)
      (args.contextValue as { transport?: unknown }).transport = undefined;
      if (source instanceof RoutedStream) return source as AsyncGenerator<ExecutionResult>;
      if (Symbol.asyncIterator in source) {
        throw new Error('Every subscription must be routed (return a RoutedStream from its subscribe resolver)');
      }
      return mask(source as ExecutionResult);
    },
  });

  wss.on('connection', (socket: WebSocket) => {
    const extra: Extra = { socket, connectionId: `${options.instanceId}:${++nextConnection}`, alive: true, openedAt: Date.now() };
    sockets.add(extra);
    extras.set(socket, extra);
    socket.on('pong', onPong);
    socket.once('error', (error) => {
      options.onError(error, 'socket');
      socket.close(CloseReason.InternalServerError, 'Internal server error');
    });
    const closed = server.opened(new SocketAdapter(socket, options.onError), extra);
    socket.once('close', (code, reason) => {
      sockets.delete(extra);
      closed(code, String(reason)).catch((error) => options.onError(error, 'close'));
    });
  });

  // One timer for every socket: ping, drop those that did not answer the last
  // ping, and close those whose token has expired (4403: the client reconnects
  // with a fresh token).
  const heartbeat = setInterval(() => {
    const now = Date.now();
    for (const extra of sockets) {
      const socket = extra.socket;
      if (!extra.alive) {
        socket.terminate();
        continue;
      }
      if (!extra.viewer && now - extra.openedAt > CONNECTION_INIT_TIMEOUT_MS) {
        socket.close(CloseReason.ConnectionInitialisationTimeout, 'Connection initialisation timeout');
        continue;
      }
      const expiresAt = extra.viewer?.expiresAt;
      if (expiresAt !== undefined && expiresAt <= now) {
        socket.close(CloseReason.Forbidden, 'Token expired');
        continue;
      }
      extra.alive = false;
      socket.ping();
    }
  }, options.keepAliveMs ?? 12_000);
  heartbeat.unref();

  const onUpgrade = (request: IncomingMessage, duplex: Duplex, head: Buffer) => {
    const pathname = new URL(request.url ?? '/', 'http://localhost').pathname;
    if (pathname !== options.path || !accepting) {
      duplex.end(`HTTP/1.1 ${accepting ? '404 Not Found' : '503 Service Unavailable'}\r\nConnection: close\r\n\r\n`);
      return;
    }
    wss.handleUpgrade(request, duplex, head, (socket) => wss.emit('connection', socket, request));
  };
  options.httpServer.on('upgrade', onUpgrade);

  return {
    get size() {
      return sockets.size;
    },
    async close(code, reason) {
      accepting = false;
      clearInterval(heartbeat);
      const closing = [...sockets].map(
        ({ socket }) =>
          new Promise<void>((resolve) => {
            socket.once('close', () => resolve());
            socket.close(code, reason);
            // A peer that never completes the closing handshake is cut off.
            setTimeout(() => {
              socket.terminate();
              resolve();
            }, 3000).unref();
          }),
      );
      await Promise.all(closing);
      options.httpServer.off('upgrade', onUpgrade);
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
