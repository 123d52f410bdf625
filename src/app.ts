import { createAuth, type Viewer } from './auth.js';
import type { Config } from './config.js';
import { createContext } from './context.js';
import { pingDatabase, type QueryObserver } from './db/client.js';
import { openStorage } from './db/storage.js';
import { maskError } from './errors.js';
import { createBrowserRoutes } from './http/index.js';
import { createHttpServer } from './http/server.js';
import { MAX_REQUEST_BYTES } from './http/server.js';
import { createGraphQLHttp, GRAPHQL_PATH } from './http/yoga.js';
import type { Logger } from './logger.js';
import { createMetrics } from './metrics.js';
import type { Broker } from './realtime/broker/broker.js';
import { createMemoryBroker } from './realtime/broker/memory-broker.js';
import { createRedisBroker } from './realtime/broker/redis-broker.js';
import { resolveRedis } from './realtime/broker/redis-connection.js';
import { channels, createPublisher, FanoutPolicy } from './realtime/fanout.js';
import { createRealtime, type Realtime } from './realtime/index.js';
import { Operations } from './realtime/transport/operations.js';
import { createSseTransport } from './realtime/transport/sse.js';
import { createSocketServer } from './realtime/transport/ws-server.js';
import { schema } from './schema/index.js';
import { SDK_DOCUMENTS } from './generated/trusted-documents.js';
import { EARLIER_SDK_DOCUMENTS } from './security/earlier-sdk-documents.js';
import { createAbuseLimits } from './security/abuse.js';
import { OperationGuard } from './security/guard.js';
import { TrustedDocuments } from './security/trusted-documents.js';
import { createServices, type Services } from './services.js';
import { describe, recordOperation } from './telemetry.js';

export { GRAPHQL_PATH };

export interface RunningApp {
  port: number;
  /** http://host:port/graphql (also the WebSocket endpoint, with ws://, and the SSE endpoint). */
  url: string;
}

export interface App {
  start(port?: number, host?: string): Promise<RunningApp>;
  /** Graceful: stops accepting, closes sockets with 1012 and ends SSE streams, lets in-flight requests finish, releases everything. */
  stop(): Promise<void>;
  readonly services: Services;
  readonly realtime: Realtime;
  readonly databaseUrl: string;
}

/** Optional observers, for metrics and for tests that inspect what the server does. */
export interface AppHooks {
  /** Every SQL statement sent to PostgreSQL, with its duration. */
  onQuery?: QueryObserver;
}

/**
 * Builds the whole server (docs/architecture.md, "The parts"): storage, the
 * broker, the services, the delivery core, and one HTTP server carrying
 * Yoga (queries, mutations, GraphiQL), Server-Sent Events and WebSocket on
 * one port.
 */
export async function buildApp(config: Config, logger: Logger, hooks: AppHooks = {}): Promise<App> {
  const onError = (error: unknown, what: string) => logger.error({ err: error, what }, `realtime: ${what} failed`);
  let connections = () => 0;
  let poolStats = () => ({ total: 0, idle: 0, waiting: 0 });
  const metrics = createMetrics({ connections: () => connections(), pool: () => poolStats() });

  const cleanup: (() => Promise<unknown>)[] = [];
  const release = async () => {
    for (const step of cleanup) await step().catch((error) => logger.warn({ err: error }, 'shutdown step failed'));
  };
  try {
    const storage = await openStorage({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      poolSize: config.databasePoolSize,
      logger,
      onQuery: (sql, ms, failed) => {
        metrics.query(ms / 1000, failed);
        hooks.onQuery?.(sql, ms, failed);
      },
    });
    cleanup.unshift(() => storage.close());
    poolStats = storage.poolStats;

    // One Redis, or a Redis Cluster (sharded pub/sub): docs/architecture.md, "Redis Cluster".
    const redis = await resolveRedis(config.redisUrl, config.redisClusterNodes);
    const broker: Broker = redis ? await createRedisBroker(redis, `chat:${config.instanceId}`) : createMemoryBroker();
    cleanup.unshift(() => broker.close());

    /** Error masking for every transport: count by code, log the unexpected. */
    const maskAndCount = (error: unknown) => {
      const masked = maskError(error);
      metrics.error(String(masked.extensions.code));
      if (masked.extensions.code === 'INTERNAL_SERVER_ERROR') {
        const original = (error as { originalError?: unknown }).originalError ?? error;
        logger.error({ err: original, path: masked.path }, 'unexpected error');
      } else if (masked.extensions.code === 'SERVICE_UNAVAILABLE') {
        const original = (error as { originalError?: unknown }).originalError ?? error;
        logger.warn({ err: original, path: masked.path }, 'database unavailable');
      }
      return masked;
    };

    // Services announce committed changes through the publisher, which
    // needs services for one rare read: bind that late.
    let services!: Services;
    const policy = new FanoutPolicy(config.fanoutDirectMax);
    const events = createPublisher({ broker, policy, memberIds: (id) => services.streams.memberIds(id), onError, observer: metrics });
    // Abuse limits, shared by every instance through Redis when there is one (docs/architecture.md, "Abuse limits").
    const abuse = await createAbuseLimits(
      {
        sendRatePerSecond: config.sendRatePerSecond,
        sendBurst: config.sendBurst,
        connectRatePerMinute: config.connectRatePerMinute,
        connectRatePerMinutePerAddress: config.connectRatePerMinutePerAddress,
        maxConnectionsPerUser: config.maxConnectionsPerUser,
        maxOperationsPerConnection: config.maxSubscriptionsPerConnection,
        connectionTtlMs: config.presenceTtlMs,
      },
      config.redisUrl,
      `chat:${config.instanceId}`,
      onError,
    );
    cleanup.unshift(() => abuse.close());
    services = createServices(storage.db, events, config, { limits: abuse, onError });
    // Runs after realtime.close (steps run in reverse order) and before the pool closes.
    cleanup.unshift(() => services.flush());
    const realtime = await createRealtime({
      broker,
      redis,
      policy,
      services,
      schema,
      config,
      maskError: maskAndCount,
      onError,
      observer: metrics,
      // The last-seen time first: whoever sees the change and then asks for `lastSeenAt` reads it
      // (a stalled database holds the announcement at most the writer's 5 s bound).
      onPresenceChange: async (userId, online, at) => {
        await services.users.setLastSeen(userId, at).catch((e) => onError(e, 'last seen'));
        await broker.publish(channels.presence(userId), { type: 'presence', userId, online }).catch((e) => onError(e, 'publish presence'));
      },
    });
    cleanup.unshift(() => realtime.close());

    const auth = await createAuth(config);
    const browserRoutes = await createBrowserRoutes(config);
    const newContext = (viewer: Viewer | null) => createContext({ viewer, services, realtime });
    const ensureUser = (viewer: Viewer) => services.users.ensure(viewer);
    // One gate for every transport: limits, validation, trusted documents (docs/architecture.md, "Operation limits").
    const trusted = new TrustedDocuments(config.trustedDocumentsOnly);
    trusted.add(SDK_DOCUMENTS, 'the SDK');
    trusted.add(EARLIER_SDK_DOCUMENTS, 'earlier SDK releases');
    for (const file of config.trustedDocuments) await trusted.addFile(file);
    const guard = new OperationGuard(schema, trusted);
    const operations = new Operations({ schema, guard, renderers: realtime.renderers, maskError: maskAndCount, onError });
    const onOperation = (ids: Record<string, string>, document: Parameters<typeof describe>[0], operationName: string | null | undefined, seconds: number, errors: string[] | undefined) =>
      recordOperation(logger, metrics, ids, describe(document, operationName), seconds, errors);
    // Built only when debug logging is on: every subscription start passes here.
    const onSubscriptionStart = (ids: Record<string, string>, document: Parameters<typeof describe>[0], operationName: string | null | undefined) => {
      if (logger.isLevelEnabled('debug')) logger.debug({ ...ids, operation: describe(document, operationName) }, 'subscription started');
    };
    const transportOptions = {
      operations,
      renderers: realtime.renderers,
      maskError: maskAndCount,
      auth,
      onViewer: ensureUser,
      presence: realtime.presence,
      observer: metrics,
      onOperation,
      onSubscriptionStart,
      onError,
      instanceId: config.instanceId,
      gate: abuse.gate,
      trustProxyHops: config.trustProxyHops,
    };

    const yoga = createGraphQLHttp({ schema, guard, auth, logger, metrics, maskError: maskAndCount, ensureUser, createContext: newContext });
    const sse = createSseTransport({
      ...transportOptions,
      createContext: newContext,
      maxBufferedBytes: config.maxSocketBufferBytes,
      keepAliveMs: config.wsKeepAliveMs,
      maxBodyBytes: MAX_REQUEST_BYTES,
    });
    const http = createHttpServer({
      path: GRAPHQL_PATH,
      browser: browserRoutes,
      graphql: (req, res) => yoga.handle(req, res),
      sse,
      webSocket: (httpServer) =>
        createSocketServer({
          ...transportOptions,
          httpServer,
          path: GRAPHQL_PATH,
          createContext: newContext,
          maxBufferedBytes: config.maxSocketBufferBytes,
          keepAliveMs: config.wsKeepAliveMs,
        }),
      // Without the broker an instance still delivers (the position check reads
      // the database), so only the database decides readiness: taking every
      // instance out of rotation when Redis blips would be the bigger outage.
      readiness: async () => {
        const database = await pingDatabase(storage.db);
        return { ready: database, checks: { database, broker: broker.healthy() } };
      },
      metrics: async () => ({ contentType: metrics.registry.contentType, text: await metrics.registry.metrics() }),
    });
    connections = () => http.connections;

    let stopped = false;
    return {
      services,
      realtime,
      databaseUrl: storage.url,
      async start(port = config.port, host = config.host) {
        const actual = await http.listen(port, host);
        const shownHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host;
        return { port: actual, url: `http://${shownHost}:${actual}${GRAPHQL_PATH}` };
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await http.drain();
        await release();
      },
    };
  } catch (error) {
    await release();
    throw error;
  }
}
