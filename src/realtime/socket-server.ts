import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ExecutionArgs } from 'graphql';
import { makeServer, GRAPHQL_TRANSPORT_WS_PROTOCOL, type ConnectionInitMessage } from 'graphql-ws';
import type { YogaServerInstance } from 'graphql-yoga';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Auth, Viewer } from '../auth.js';
import type { SocketTransport } from '../context.js';
import { CloseReason } from './close-codes.js';
import type { Presence } from './presence.js';

interface Extra {
  socket: WebSocket;
  request: IncomingMessage;
  connectionId: string;
  viewer?: Viewer;
}

type Enveloped = ReturnType<YogaServerInstance<Record<string, unknown>, Record<string, unknown>>['getEnveloped']>;

export interface SocketServerOptions {
  httpServer: Server;
  path: string;
  yoga: YogaServerInstance<Record<string, unknown>, Record<string, unknown>>;
  auth: Auth;
  /** Called once per accepted connection (creates the user on first use). */
  onViewer: (viewer: Viewer) => Promise<void>;
  presence: Presence;
  instanceId: string;
  /** Heartbeat period: a socket that has not answered the previous ping by the next one is dropped. */
  keepAliveMs?: number;
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

/**
 * graphql-ws on a `ws` server sharing the HTTP server's port, with Yoga's
 * envelop (one context factory, parser cache, validation and error masking
 * for HTTP and WebSocket alike, as in Yoga's graphql-ws example).
 *
 * This is our own glue rather than graphql-ws's `useServer` for three
 * reasons: one heartbeat timer for all sockets instead of one per socket
 * (memory per idle connection is a product metric); a drain that closes with
 * 1012 so clients reconnect elsewhere; and token expiry enforced on open sockets.
 */
export function createSocketServer(options: SocketServerOptions): SocketServer {
  const { auth, presence, yoga } = options;
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: 256 * 1024,
    handleProtocols: (protocols) => (protocols.has(GRAPHQL_TRANSPORT_WS_PROTOCOL) ? GRAPHQL_TRANSPORT_WS_PROTOCOL : false),
  });
  let accepting = true;
  let nextConnection = 0;
  const sockets = new Map<WebSocket, { alive: boolean; extra: Extra }>();

  const server = makeServer<Record<string, unknown> | undefined, Extra>({
    connectionInitWaitTimeout: 10_000,
    onConnect: async (ctx) => {
      const token = tokenFrom(ctx.connectionParams);
      if (!token) return false;
      let viewer: Viewer;
      try {
        viewer = await auth.verify(token);
      } catch {
        return false; // graphql-ws closes with CloseCode.Forbidden (4403)
      }
      await options.onViewer(viewer);
      ctx.extra.viewer = viewer;
      await presence.connected(viewer.id, ctx.extra.connectionId);
      return true;
    },
    onClose: async (ctx) => {
      if (ctx.extra.viewer) {
        await presence.disconnected(ctx.extra.viewer.id, ctx.extra.connectionId).catch((error) => options.onError(error, 'presence'));
      }
    },
    onSubscribe: async (ctx, id, payload) => {
      const transport: SocketTransport = {
        socket: ctx.extra.socket,
        id,
        connectionId: ctx.extra.connectionId,
        variables: payload.variables ?? undefined,
      };
      const enveloped = yoga.getEnveloped({
        req: ctx.extra.request,
        socket: ctx.extra.socket,
        params: payload,
        viewer: ctx.extra.viewer,
        transport,
      });
      let document;
      try {
        document = enveloped.parse(payload.query);
      } catch (error) {
        return [error as never];
      }
      const errors = enveloped.validate(enveloped.schema, document);
      if (errors.length > 0) return [...errors];
      const args: ExecutionArgs = {
        schema: enveloped.schema,
        operationName: payload.operationName,
        document,
        variableValues: payload.variables,
        contextValue: await enveloped.contextFactory(),
        // Carries envelop's execute/subscribe to the hooks below (Yoga's graphql-ws recipe).
        rootValue: { enveloped },
      };
      return args;
    },
    execute: (args) => (args.rootValue as { enveloped: Enveloped }).enveloped.execute(args),
    subscribe: (args) => (args.rootValue as { enveloped: Enveloped }).enveloped.subscribe(args),
  });

  wss.on('connection', (socket: WebSocket, request: IncomingMessage) => {
    const extra: Extra = { socket, request, connectionId: `${options.instanceId}:${++nextConnection}` };
    const state = { alive: true, extra };
    sockets.set(socket, state);
    socket.on('pong', () => {
      state.alive = true;
    });
    socket.once('error', (error) => {
      options.onError(error, 'socket');
      socket.close(CloseReason.InternalServerError, 'Internal server error');
    });
    const closed = server.opened(
      {
        protocol: socket.protocol,
        send: (data) =>
          new Promise<void>((resolve) => {
            if (socket.readyState !== socket.OPEN) return resolve();
            socket.send(data, () => resolve());
          }),
        close: (code, reason) => socket.close(code, reason),
        onMessage: (callback) =>
          socket.on('message', async (data) => {
            try {
              await callback(String(data));
            } catch (error) {
              options.onError(error, 'graphql-ws message');
              socket.close(CloseReason.InternalServerError, 'Internal server error');
            }
          }),
      },
      extra,
    );
    socket.once('close', (code, reason) => {
      sockets.delete(socket);
      closed(code, String(reason)).catch((error) => options.onError(error, 'close'));
    });
  });

  // One timer for every socket: ping, drop those that did not answer the last
  // ping, and close those whose token has expired (4403: the client reconnects
  // with a fresh token).
  const heartbeat = setInterval(() => {
    const now = Date.now();
    for (const [socket, state] of sockets) {
      if (!state.alive) {
        socket.terminate();
        continue;
      }
      const expiresAt = state.extra.viewer?.expiresAt;
      if (expiresAt !== undefined && expiresAt <= now) {
        socket.close(CloseReason.Forbidden, 'Token expired');
        continue;
      }
      state.alive = false;
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
      const closing = [...sockets.keys()].map(
        (socket) =>
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
