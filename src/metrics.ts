import client from 'prom-client';

/**
 * Prometheus metrics of one instance, served at /metrics. Hot-path counters
 * (deliveries happen once per socket per message) are plain numbers read at
 * scrape time, so counting costs an addition, not a registry lookup.
 */
export function createMetrics(sources: {
  connections: () => number;
  pool: () => { total: number; idle: number; waiting: number };
}) {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'chat_' });

  const counts = { delivered: 0, messagesSent: 0, publishFailed: 0, repaired: 0, slowConsumerWs: 0, slowConsumerSse: 0 };
  const subscriptions = new Map<string, number>();

  new client.Counter({
    name: 'chat_publish_failures_total',
    help: 'Publishes the broker refused (Redis away); the position check delivers what they carried',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(counts.publishFailed);
    },
  });
  new client.Counter({
    name: 'chat_slow_consumers_cut_total',
    help: 'Connections cut off for falling more than MAX_SOCKET_BUFFER_BYTES behind (WebSocket closed with 1013, event stream ended); their clients resume from their cursors',
    labelNames: ['transport'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ transport: 'ws' }, counts.slowConsumerWs);
      this.inc({ transport: 'sse' }, counts.slowConsumerSse);
    },
  });
  new client.Counter({
    name: 'chat_messages_repaired_total',
    help: 'Messages a feed read from the database because the broker did not bring them (lost publishes, reconnects, position checks)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(counts.repaired);
    },
  });
  new client.Gauge({
    name: 'chat_connections',
    help: 'Open WebSocket connections and SSE streams',
    registers: [registry],
    collect() {
      this.set(sources.connections());
    },
  });
  new client.Gauge({
    name: 'chat_subscriptions_active',
    help: 'Active subscriptions by root field',
    labelNames: ['field'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [field, count] of subscriptions) this.set({ field }, count);
    },
  });
  new client.Counter({
    name: 'chat_messages_sent_total',
    help: 'Messages stored and published by this instance',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(counts.messagesSent);
    },
  });
  new client.Counter({
    name: 'chat_messages_delivered_total',
    help: 'Subscription payloads written to sockets or streams by this instance (one per subscriber per event)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(counts.delivered);
    },
  });
  new client.Gauge({
    name: 'chat_db_pool_connections',
    help: 'PostgreSQL pool connections by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const stats = sources.pool();
      this.set({ state: 'total' }, stats.total);
      this.set({ state: 'idle' }, stats.idle);
      this.set({ state: 'waiting' }, stats.waiting);
    },
  });
  const latencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
  const operationDuration = new client.Histogram({
    name: 'chat_operation_duration_seconds',
    help: 'GraphQL query and mutation duration by root field (sendMessage is the send latency)',
    labelNames: ['type', 'field'],
    buckets: latencyBuckets,
    registers: [registry],
  });
  const deliveryLatency = new client.Histogram({
    name: 'chat_delivery_latency_seconds',
    help: 'From a message being stored to this instance handing it to its subscribers',
    buckets: latencyBuckets,
    registers: [registry],
  });
  const pubsubLag = new client.Histogram({
    name: 'chat_pubsub_lag_seconds',
    help: 'From publish to receipt on the event bus (across hosts this includes clock skew)',
    buckets: latencyBuckets,
    registers: [registry],
  });
  const queryDuration = new client.Histogram({
    name: 'chat_db_query_duration_seconds',
    help: 'PostgreSQL statement duration',
    labelNames: ['outcome'],
    buckets: latencyBuckets,
    registers: [registry],
  });
  const errors = new client.Counter({
    name: 'chat_graphql_errors_total',
    help: 'GraphQL errors returned to clients, by extensions.code',
    labelNames: ['code'],
    registers: [registry],
  });

  return {
    registry,
    delivered(count = 1) {
      counts.delivered += count;
    },
    messageSent() {
      counts.messagesSent++;
    },
    publishFailed() {
      counts.publishFailed++;
    },
    repaired(count: number) {
      counts.repaired += count;
    },
    subscriptionStarted(field: string) {
      subscriptions.set(field, (subscriptions.get(field) ?? 0) + 1);
    },
    subscriptionEnded(field: string) {
      subscriptions.set(field, (subscriptions.get(field) ?? 1) - 1);
    },
    slowConsumerCut(transport: 'ws' | 'sse') {
      if (transport === 'ws') counts.slowConsumerWs++;
      else counts.slowConsumerSse++;
    },
    operation(type: string, field: string, seconds: number) {
      operationDuration.observe({ type, field }, seconds);
    },
    deliveryLatency(seconds: number) {
      deliveryLatency.observe(seconds);
    },
    pubsubLag(seconds: number) {
      pubsubLag.observe(Math.max(0, seconds));
    },
    query(seconds: number, failed: boolean) {
      queryDuration.observe({ outcome: failed ? 'error' : 'ok' }, seconds);
    },
    error(code: string) {
      errors.inc({ code });
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
