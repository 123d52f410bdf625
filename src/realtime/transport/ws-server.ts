import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { GRAPHQL_TRANSPORT_WS_PROTOCOL } from 'graphql-ws';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { clientAddress } from '../../security/addresses.js';
import { retryAfterMsOf } from '../../security/abuse.js';
import { CloseReason } from './close-codes.js';
import { Connection, createProtocol, type Protocol, type ProtocolOptions } from './graphql-ws.js';

export interface SocketServerOptions extends ProtocolOptions {
  httpServer: Server;
  path: string;
  instanceId: string;
  /** Heartbeat period: a socket that has not answered the previous ping by the next one is dropped. */
  keepAliveMs?: number;
  /** Proxies whose X-Forwarded-For is trusted, for per-address limits (src/security/addresses.ts). */
  trustProxyHops?: number;
}

export interface SocketServer {
  /** Open sockets. */
  readonly size: number;
  /** Stops accepting and closes every socket with 1012 (clients reconnect elsewhere and resume). */
  close(): Promise<void>;
}

/** A client has this long to authenticate (graphql-transport-ws: close with 4408 after). */
const CONNECTION_INIT_TIMEOUT_MS = 10_000;

// The connection of a socket, kept on the socket itself.
const CONNECTION = Symbol('connection');

/** What the socket class hands its events to: the server's handlers, shared by every socket. */
interface SocketEvents {
  message(socket: ChatSocket, data: RawData, isBinary: boolean): void;
  pong(socket: ChatSocket): void;
  error(socket: ChatSocket, error: Error): void;
  close(socket: ChatSocket): void;
}

/**
 * ws's receiver queues incoming chunks in an array that keeps its grown
 * capacity (17 slots, 152 bytes) once empty: on a socket idle between
 * heartbeats that is 1/25 of its memory. An empty queue is swapped for a
 * fresh one. A private field of ws (8.x): if it is not what we expect, nothing
 * is touched.
 */
function releaseReceiveQueue(socket: WebSocket): void {
  const receiver = (socket as unknown as { _receiver?: { _buffers?: unknown } })._receiver;
  if (receiver && Array.isArray(receiver._buffers) && receiver._buffers.length === 0) receiver._buffers = [];
}

/**
 * The server's sockets: `ws`'s WebSocket, whose events go straight to the
 * server's handlers instead of through per-socket listeners. Four `on()`
 * registrations turned each socket's `_events` into a dictionary of about
 * 250 bytes, a tenth of an idle connection (`npm run bench:memory`).
 * Listeners added with `on`/`once` (the drain's, tests') still run.
 */
class ChatSocket extends WebSocket {
  [CONNECTION]?: Connection<ChatSocket>;
  /** Set by the server before any event can fire (one object per server). */
  static events: SocketEvents | undefined;

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    const events = (this.constructor as typeof ChatSocket).events;
    if (events && this[CONNECTION]) {
      switch (event) {
        case 'message':
          events.message(this, args[0] as RawData, args[1] as boolean);
          releaseReceiveQueue(this);
          break;
        case 'pong':
          events.pong(this);
          releaseReceiveQueue(this);
          break;
        case 'error':
          events.error(this, args[0] as Error);
          // Handled: EventEmitter throws an 'error' nobody listens to.
          return this.listenerCount('error') > 0 ? super.emit(event, ...args) : true;
        case 'close':
          events.close(this);
          break;
      }
    }
    return super.emit(event, ...args);
  }
}

/**
 * The WebSocket transport: graphql-transport-ws on a `ws` server sharing the
 * HTTP server's port. This adapter owns the upgrade, one heartbeat timer for
 * every socket (pings, dead peers, the connection-init timeout and token
 * expiry), and a drain that closes with 1012 so clients reconnect elsewhere.
 * The protocol itself is graphql-ws.ts.
 */
export function createSocketServer(options: SocketServerOptions): SocketServer {
  const protocol: Protocol = createProtocol(options);
  // A class per server: its handlers reach this server's protocol and connections.
  const Socket = class extends ChatSocket {};
  const wss = new WebSocketServer({
    WebSocket: Socket,
    noServer: true,
    perMessageDeflate: false,
    maxPayload: 256 * 1024,
    // We track connections ourselves; ws's own Set and close listener per socket would be a second copy.
    clientTracking: false,
    handleProtocols: (protocols) => (protocols.has(GRAPHQL_TRANSPORT_WS_PROTOCOL) ? GRAPHQL_TRANSPORT_WS_PROTOCOL : false),
  });
  let accepting = true;
  let nextConnection = 0;
  const connections = new Set<Connection<ChatSocket>>();

  Socket.events = {
    message(socket, data, isBinary) {
      const connection = socket[CONNECTION]!;
      if (isBinary) {
        socket.close(CloseReason.BadRequest, 'Invalid message received');
        return;
      }
      protocol.receive(connection, String(data)).catch((error) => {
        options.onError(error, 'graphql-ws message');
        socket.close(CloseReason.InternalServerError, 'Internal server error');
      });
    },
    pong(socket) {
      socket[CONNECTION]!.alive = true;
    },
    error(socket, error) {
      options.onError(error, 'socket');
      socket.close(CloseReason.InternalServerError, 'Internal server error');
    },
    close(socket) {
      const connection = socket[CONNECTION]!;
      connections.delete(connection);
      protocol.closed(connection);
    },
  };

  wss.on('connection', (socket: ChatSocket, request: IncomingMessage) => {
    if (!protocol.acceptable(socket.protocol)) {
      socket.close(CloseReason.SubprotocolNotAcceptable, 'Subprotocol not acceptable');
      return;
    }
    // request.socket is the TCP socket ws writes to: held (corked) around a batch of frames.
    const connection = new Connection<ChatSocket>(socket, `${options.instanceId}:${++nextConnection}`, Math.floor(performance.now()), request.socket);
    socket[CONNECTION] = connection;
    connections.add(connection);
  });

  const heartbeat = setInterval(() => {
    const now = Date.now();
    const uptime = performance.now();
    for (const connection of connections) {
      const socket = connection.socket;
      if (!connection.alive) {
        socket.terminate();
        continue;
      }
      if (!connection.viewer && uptime - connection.openedAt > CONNECTION_INIT_TIMEOUT_MS) {
        socket.close(CloseReason.ConnectionInitialisationTimeout, 'Connection initialisation timeout');
        continue;
      }
      const expiresAt = connection.viewer?.expiresAtSeconds;
      if (expiresAt !== undefined && expiresAt * 1000 <= now) {
        // 4403: graphql-ws clients retry it, with a fresh token.
        socket.close(CloseReason.Forbidden, 'Token expired');
        continue;
      }
      connection.alive = false;
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
    const upgrade = () => {
      // Again: the gate answers asynchronously, and the drain may have begun meanwhile
      // (a socket accepted after `close` took its list would hold the drain open).
      if (!accepting) {
        duplex.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n');
        return;
      }
      wss.handleUpgrade(request, duplex, head, (socket) => wss.emit('connection', socket, request));
    };
    if (!options.gate?.limitsAddresses) return upgrade();
    // Per-address attempts are refused before the upgrade, with HTTP's own 429: cheapest for both sides.
    options.gate.attempt(clientAddress(request, options.trustProxyHops ?? 0)).then(upgrade, (error) => {
      const retryAfterMs = retryAfterMsOf(error);
      if (retryAfterMs === undefined) {
        options.onError(error, 'connection gate');
        return upgrade();
      }
      const body = JSON.stringify({ errors: [{ message: (error as Error).message, extensions: { code: 'RATE_LIMITED', retryAfterMs } }] });
      duplex.end(
        `HTTP/1.1 429 Too Many Requests\r\nRetry-After: ${Math.ceil(retryAfterMs / 1000)}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
  };
  options.httpServer.on('upgrade', onUpgrade);

  return {
    get size() {
      return connections.size;
    },
    async close() {
      accepting = false;
      clearInterval(heartbeat);
      const closing = [...connections].map(
        ({ socket }) =>
          new Promise<void>((resolve) => {
            socket.once('close', () => resolve());
            socket.close(CloseReason.ServiceRestart, 'Server restarting: reconnect and resume');
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
