import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SseTransport } from '../realtime/transport/sse.js';
import type { SocketServer } from '../realtime/transport/ws-server.js';

/** Pending connections the kernel may queue before the server accepts them. */
const LISTEN_BACKLOG = 4096;

/** Largest HTTP request body accepted (a message body is at most a few KB). */
export const MAX_REQUEST_BYTES = 1024 * 1024;

export interface HttpServerOptions {
  path: string;
  /** What a browser needs besides /graphql (the web app, GraphiQL's files, dev sign-in): true when it answered. */
  browser: (req: http.IncomingMessage, res: http.ServerResponse) => boolean;
  /** Queries and mutations (Yoga). */
  graphql: (req: http.IncomingMessage, res: http.ServerResponse) => unknown;
  sse: SseTransport;
  /** Creates the WebSocket transport on the HTTP server (it handles upgrades itself). */
  webSocket: (server: http.Server) => SocketServer;
  /** For /ready: whether the instance can serve (`ready`), and each dependency's state for operators. */
  readiness: () => Promise<{ ready: boolean; checks: Record<string, boolean> }>;
  metrics: () => Promise<{ contentType: string; text: string }>;
}

export interface HttpServer {
  listen(port: number, host: string): Promise<number>;
  /** Open WebSocket connections and SSE streams. */
  readonly connections: number;
  /** Graceful: stops accepting, tells realtime clients to reconnect elsewhere, lets in-flight requests finish. */
  drain(): Promise<void>;
}

/**
 * One port for everything: health, readiness and metrics, the web app and
 * GraphiQL's files, GraphQL over HTTP (Yoga), Server-Sent Events and
 * WebSocket upgrades, and the drain.
 */
export function createHttpServer(options: HttpServerOptions): HttpServer {
  let draining = false;
  // Responses not written yet. A drain marks them `connection: close`, so that
  // each connection ends after its last answer; closing a kept-alive connection
  // from this side instead races a load balancer sending its next request on it
  // (nginx does not retry a POST it has sent: the client got a 502).
  const unanswered = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    if (draining) {
      res.setHeader('connection', 'close');
    } else {
      unanswered.add(res);
      res.once('close', () => unanswered.delete(res));
    }
    const pathname = (req.url ?? '/').split('?')[0];
    if (pathname === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    if (pathname === '/metrics') {
      // Scraped per instance; the nginx template keeps it off the public port.
      void options.metrics().then(({ contentType, text }) => res.writeHead(200, { 'content-type': contentType }).end(text));
      return;
    }
    if (pathname === '/ready') {
      void options.readiness().then(({ ready: able, checks }) => {
        const ready = !draining && able;
        res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ready, draining, ...checks }));
      });
      return;
    }
    // Queries are small; a huge body is a mistake or an attack, refused before anything parses it.
    if (Number(req.headers['content-length'] ?? 0) > MAX_REQUEST_BYTES) {
      res.writeHead(413, { 'content-type': 'application/json', connection: 'close' }).end(`{"errors":[{"message":"Request too large","extensions":{"code":"SIZE_LIMIT_EXCEEDED","limit":${MAX_REQUEST_BYTES}}}]}`);
      req.destroy();
      return;
    }
    if (options.browser(req, res)) return;
    if (pathname === options.path && options.sse.accepts(req)) {
      if (draining) {
        res.writeHead(503, { 'content-type': 'application/json', connection: 'close' }).end('{"errors":[{"message":"Server restarting","extensions":{"code":"SERVICE_UNAVAILABLE"}}]}');
        return;
      }
      void options.sse.handle(req, res);
      return;
    }
    void options.graphql(req, res);
  });
  // Keep-alive sockets from a load balancer must outlive its own idle timeout.
  server.keepAliveTimeout = 65_000;
  const sockets = options.webSocket(server);

  return {
    get connections() {
      return sockets.size + options.sse.size;
    },
    async listen(port, host) {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        // A deep accept queue (the kernel caps it at net.core.somaxconn): after a restart or a network
        // blip thousands of clients reconnect at once; with Node's default of 511 the overflow was
        // dropped and those clients waited for their SYN to be retransmitted (1 s, then 3 s, …).
        server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      return (server.address() as AddressInfo).port;
    },
    async drain() {
      draining = true;
      // 1. No new connections; 2. realtime clients told to reconnect elsewhere;
      // 3. in-flight HTTP requests finish (bounded).
      // close() calls back once every connection has ended, in-flight requests
      // answered (or at once, with an error, if it never listened). `listening`
      // turns false as soon as close() is called, so it cannot tell whether to wait.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const res of unanswered) if (!res.headersSent) res.setHeader('connection', 'close');
      unanswered.clear();
      server.closeIdleConnections();
      options.sse.close();
      await sockets.close();
      // Connections whose response went out before the drain (an event stream
      // ended above) are kept alive: close each once it is idle.
      const idle = setInterval(() => server.closeIdleConnections(), 250);
      const forced = setTimeout(() => server.closeAllConnections(), 10_000);
      // closeAllConnections does not reach upgraded sockets; the WebSocket server closed
      // those it had, but nothing may hold the rest of the stop for longer than this.
      const given = new Promise<void>((resolve) => setTimeout(resolve, 15_000).unref());
      forced.unref();
      await Promise.race([closed, given]);
      clearInterval(idle);
      clearTimeout(forced);
    },
  };
}
