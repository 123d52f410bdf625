import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { GRAPHQL_TRANSPORT_WS_PROTOCOL } from 'graphql-ws';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
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

// The connection of a socket, kept on the socket itself; the listeners below
// are shared by every socket and find their state through `this`, so a
// connection costs no closures.
const CONNECTION = Symbol('connection');
type Socket = WebSocket & { [CONNECTION]?: Connection<WebSocket> };

/**
 * The WebSocket transport: graphql-transport-ws on a `ws` server sharing the
 * HTTP server's port. This adapter owns the upgrade, one heartbeat timer for
 * every socket (pings, dead peers, the connection-init timeout and token
 * expiry), and a drain that closes with 1012 so clients reconnect elsewhere.
 * The protocol itself is graphql-ws.ts.
 */
export function createSocketServer(options: SocketServerOptions): SocketServer {
  const protocol: Protocol = createProtocol(options);
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: 256 * 1024,
    // We track connections ourselves; ws's own Set and close listener per socket would be a second copy.
    clientTracking: false,
    handleProtocols: (protocols) => (protocols.has(GRAPHQL_TRANSPORT_WS_PROTOCOL) ? GRAPHQL_TRANSPORT_WS_PROTOCOL : false),
  });
  let accepting = true;
  let nextConnection = 0;
  const connections = new Set<Connection<WebSocket>>();

  function onMessage(this: Socket, data: RawData, isBinary: boolean) {
    const connection = this[CONNECTION];
    if (!connection) return;
    if (isBinary) {
      this.close(CloseReason.BadRequest, 'Invalid message received');
      return;
    }
    protocol.receive(connection, String(data)).catch((error) => {
      options.onError(error, 'graphql-ws message');
      this.close(CloseReason.InternalServerError, 'Internal server error');
    });
  }
  function onPong(this: Socket) {
    const connection = this[CONNECTION];
    if (connection) connection.alive = true;
  }
  function onError(this: Socket, error: Error) {
    options.onError(error, 'socket');
    this.close(CloseReason.InternalServerError, 'Internal server error');
  }
  function onClose(this: Socket) {
    const connection = this[CONNECTION];
    if (!connection) return;
    connections.delete(connection);
    protocol.closed(connection);
  }

  wss.on('connection', (socket: Socket, request: IncomingMessage) => {
    if (!protocol.acceptable(socket.protocol)) {
      socket.close(CloseReason.SubprotocolNotAcceptable, 'Subprotocol not acceptable');
      return;
    }
    // request.socket is the TCP socket ws writes to: held (corked) around a batch of frames.
    const connection = new Connection<WebSocket>(socket, `${options.instanceId}:${++nextConnection}`, Date.now(), request.socket);
    socket[CONNECTION] = connection;
    connections.add(connection);
    // `on`, not `once`: each once() allocates a wrapper and a bound function per socket.
    socket.on('message', onMessage);
    socket.on('pong', onPong);
    socket.on('error', onError);
    socket.on('close', onClose);
  });

  const heartbeat = setInterval(() => {
    const now = Date.now();
    for (const connection of connections) {
      const socket = connection.socket;
      if (!connection.alive) {
        socket.terminate();
        continue;
      }
      if (!connection.viewer && now - connection.openedAt > CONNECTION_INIT_TIMEOUT_MS) {
        socket.close(CloseReason.ConnectionInitialisationTimeout, 'Connection initialisation timeout');
        continue;
      }
      const expiresAt = connection.viewer?.expiresAt;
      if (expiresAt !== undefined && expiresAt <= now) {
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
    const upgrade = () => wss.handleUpgrade(request, duplex, head, (socket) => wss.emit('connection', socket, request));
    if (!options.gate) return upgrade();
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
