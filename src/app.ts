import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createYoga, type YogaInitialContext } from 'graphql-yoga';
import { createAuth } from './auth.js';
import type { Config } from './config.js';
import { createContext } from './context.js';
import { createDatabase, pingDatabase, type QueryObserver } from './db/client.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './db/embedded.js';
import { applyMigrations } from './db/migrate.js';
import { maskError } from './errors.js';
import type { Logger } from './logger.js';
import { createMetrics } from './metrics.js';
import { describe, recordOperation, useOperationTelemetry } from './telemetry.js';
import { channels, type EventBus } from './realtime/bus.js';
import { CloseReason } from './realtime/close-codes.js';
import { createRealtime, type Realtime } from './realtime/index.js';
import { createMemoryBus } from './realtime/memory-bus.js';
import { createLocalPresence } from './realtime/presence.js';
import { createPublisher } from './realtime/publisher.js';
import { createRedisBus } from './realtime/redis-bus.js';
import { createRedisPresence } from './realtime/redis-presence.js';
import { createSocketServer, type SocketServer } from './realtime/socket-server.js';
import { schema } from './schema/index.js';
import { createServices, type Services } from './services.js';

export const GRAPHQL_PATH = '/graphql';
/** Largest HTTP request body accepted (a message body is at most a few KB). */
const MAX_REQUEST_BYTES = 1024 * 1024;

export interface RunningApp {
  port: number;
  /** http://host:port/graphql (also the WebSocket endpoint, with ws://). */
  url: string;
}

export interface App {
  start(port?: number, host?: string): Promise<RunningApp>;
  /** Graceful: stops accepting, closes sockets with 1012, lets in-flight requests finish, releases everything. */
  stop(): Promise<void>;
  readonly services: Services;
  readonly realtime: Realtime;
  readonly databaseUrl: string;
}

const GRAPHIQL_QUERY = `# Paste a token into the Headers tab first:
#   { "Authorization": "Bearer <token from npm run token -- alice Alice>" }
query Me {
  viewer { id name }
  conversations(first: 10) {
    edges { node { id kind title lastSeq unreadCount lastMessage { seq body sender { name } } } }
  }
}
`;

/**
 * Builds the whole server: storage (embedded PostgreSQL unless DATABASE_URL),
 * migrations, the event bus, services, and one HTTP server carrying Yoga
 * (queries, mutations, GraphiQL, SSE) and graphql-ws (WebSocket) on one port.
 */
/** Optional observers, for metrics and for tests that inspect what the server does. */
export interface AppHooks {
  /** Every SQL statement sent to PostgreSQL, with its duration. */
  onQuery?: QueryObserver;
}

export async function buildApp(config: Config, logger: Logger, hooks: AppHooks = {}): Promise<App> {
  const onError = (error: unknown, what: string) => logger.error({ err: error, what }, `realtime: ${what} failed`);

  let embedded: EmbeddedDatabase | undefined;
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    embedded = await startEmbeddedPostgres(config.dataDir, (line) => logger.debug({ postgres: line }));
    databaseUrl = embedded.url;
    logger.info({ dataDir: config.dataDir }, 'embedded PostgreSQL started');
  }
  const cleanup: (() => Promise<unknown>)[] = [];
  if (embedded) cleanup.push(() => embedded.stop());
  try {
    const applied = await applyMigrations(databaseUrl, { log: (line) => logger.info(line) });
    if (applied.length > 0) logger.info({ applied }, 'migrations applied');

    let sockets: SocketServer | undefined;
    let poolStats = () => ({ total: 0, idle: 0, waiting: 0 });
    const metrics = createMetrics({ connections: () => sockets?.size ?? 0, pool: () => poolStats() });
    const database = createDatabase(databaseUrl, config.databasePoolSize, (sql, ms, failed) => {
      metrics.query(ms / 1000, failed);
      hooks.onQuery?.(sql, ms, failed);
    });
    const db = database.db;
    poolStats = database.poolStats;
    cleanup.unshift(() => db.$disconnect());
    const bus: EventBus = config.redisUrl ? await createRedisBus(config.redisUrl, `chat:${config.instanceId}`) : createMemoryBus();
    cleanup.unshift(() => bus.close());
    // Services announce committed changes through the publisher; the
    // publisher and presence call back into services: bind that late.
    let services!: Services;
    const onPresenceChange = async (userId: string, online: boolean, at: Date) => {
      await bus.publish(channels.presence(userId), { type: 'presence', userId, online }).catch((e) => onError(e, 'publish presence'));
      await services.users.setLastSeen(userId, at).catch((e) => onError(e, 'last seen'));
    };
    const presence = config.redisUrl
      ? await createRedisPresence(config.redisUrl, `chat:${config.instanceId}`, {
          ttlMs: config.presenceTtlMs,
          onChange: onPresenceChange,
          onError,
        })
      : createLocalPresence(onPresenceChange);
    cleanup.unshift(() => presence.close());

    const events = createPublisher({
      bus,
      presence,
      fanoutDirectMax: config.fanoutDirectMax,
      memberIds: (id) => services.streams.memberIds(id),
      onError,
      observer: metrics,
    });
    services = createServices(db, events, config);
    const realtime = createRealtime({ bus, presence, services, config, onError, observer: metrics });
    const auth = await createAuth(config);

    /** Error masking for HTTP and WebSocket alike: count by code, log the unexpected. */
    const maskAndCount = (error: unknown) => {
      const masked = maskError(error);
      metrics.error(String(masked.extensions.code));
      if (masked.extensions.code === 'INTERNAL_SERVER_ERROR') {
        const original = (error as { originalError?: unknown }).originalError ?? error;
        logger.error({ err: original, path: masked.path }, 'unexpected error');
      }
      return masked;
    };

    const yoga = createYoga<Record<string, unknown>, Record<string, unknown>>({
      schema,
      graphqlEndpoint: GRAPHQL_PATH,
      landingPage: false,
      logging: {
        debug: (...args) => logger.debug({ yoga: args.map(String).join(' ') }),
        info: (...args) => logger.info({ yoga: args.map(String).join(' ') }),
        warn: (...args) => logger.warn({ yoga: args.map(String).join(' ') }),
        // Yoga reports every GraphQL error here, including a user's bad input
        // (with the query text, which may hold a message body): keep it out of
        // normal logs. Unexpected errors are logged below, without the query.
        error: (...args) => logger.debug({ yoga: args.map(String).join(' ') }),
      },
      plugins: [useOperationTelemetry(logger, metrics)],
      maskedErrors: { maskError: (error) => maskAndCount(error) },
      graphiql: { title: 'Chat API', defaultQuery: GRAPHIQL_QUERY },
      // Yoga types contexts as open records; ours is the closed `Context` interface.
      context: async (initial: YogaInitialContext) => {
        const viewer = await auth.fromAuthorizationHeader(initial.request.headers.get('authorization'));
        if (viewer) await services.users.ensure(viewer);
        return createContext({ viewer, services, realtime }) as never;
      },
    });

    let draining = false;
    const httpServer = http.createServer((req, res) => {
      const pathname = (req.url ?? '/').split('?')[0];
      if (pathname === '/health') {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
        return;
      }
      if (pathname === '/metrics') {
        // Scraped per instance; the nginx template keeps it off the public port.
        void metrics.registry.metrics().then((text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text));
        return;
      }
      if (pathname === '/ready') {
        void (async () => {
          const checks = {
            draining,
            database: await pingDatabase(db),
            bus: await bus.healthy().catch(() => false),
          };
          const ready = !draining && checks.database && checks.bus;
          res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ready, ...checks }));
        })();
        return;
      }
      // Queries are small; a huge body is a mistake or an attack, refused before anything parses it.
      if (Number(req.headers['content-length'] ?? 0) > MAX_REQUEST_BYTES) {
        res.writeHead(413, { 'content-type': 'application/json', connection: 'close' }).end('{"errors":[{"message":"Request too large","extensions":{"code":"BAD_USER_INPUT"}}]}');
        req.destroy();
        return;
      }
      void yoga.handle(req, res);
    });
    // Keep-alive sockets from a load balancer must outlive its own idle timeout.
    httpServer.keepAliveTimeout = 65_000;

    let stopped = false;

    return {
      services,
      realtime,
      databaseUrl,
      async start(port = config.port, host = config.host) {
        sockets = createSocketServer({
          httpServer,
          path: GRAPHQL_PATH,
          schema,
          createContext: (viewer) => createContext({ viewer, services, realtime }),
          maskError: maskAndCount,
          onOperation: (ids, document, operationName, seconds, errors) =>
            recordOperation(logger, metrics, ids, describe(document, operationName), seconds, errors),
          onSubscriptionStart: (ids, document, operationName) =>
            logger.debug({ ...ids, operation: describe(document, operationName) }, 'subscription started'),
          auth,
          onViewer: (viewer) => services.users.ensure(viewer),
          presence,
          instanceId: config.instanceId,
          keepAliveMs: config.wsKeepAliveMs,
          onError,
        });
        await new Promise<void>((resolve, reject) => {
          httpServer.once('error', reject);
          httpServer.listen(port, host, () => {
            httpServer.off('error', reject);
            resolve();
          });
        });
        const actual = (httpServer.address() as AddressInfo).port;
        const shownHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host;
        return { port: actual, url: `http://${shownHost}:${actual}${GRAPHQL_PATH}` };
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        draining = true;
        // 1. No new connections; 2. sockets told to reconnect elsewhere;
        // 3. in-flight HTTP requests finish (bounded); 4. release resources.
        const httpClosed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
        httpServer.closeIdleConnections();
        await sockets?.close(CloseReason.ServiceRestart, 'Server restarting: reconnect and resume');
        const forced = setTimeout(() => httpServer.closeAllConnections(), 10_000);
        forced.unref();
        if (httpServer.listening) await httpClosed;
        clearTimeout(forced);
        for (const step of cleanup) await step().catch((error) => logger.warn({ err: error }, 'shutdown step failed'));
      },
    };
  } catch (error) {
    for (const step of cleanup) await step().catch(() => {});
    throw error;
  }
}
