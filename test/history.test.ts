import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Cluster } from '../ops/cluster.js';
import { checkHistory, clean, formatTable, KINDS, zeroCounts, type Report } from './history/checker.js';
import { HistoryRecorder, readStoredState } from './history/recorder.js';
import { Workload } from './history/workload.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { findPostgresBin, startPostgresServer, type PostgresServer } from './support/postgres-server.js';
import { track } from './support/processes.js';
import { findRedisServer, startRedisServer, type RedisServer } from './support/redis-server.js';
import { TEST_JWT_SECRET } from './support/server.js';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.js';

/*
 * The history checker (issue 8): SDK clients on three instances behind nginx
 * chat while one fault at a time hits the system; every send and delivery is
 * recorded, and afterwards compared with PostgreSQL (test/history/checker.ts
 * says what each count means). Each scenario runs once and is judged twice:
 * conversations that keep sending after the fault heals, and "tail"
 * conversations that stop a few seconds after it heals, so that a lost last
 * message cannot be repaired by a later one.
 *
 * Everything that a scenario breaks belongs to this test: its own
 * PostgreSQL (initdb + postgres as a child process) and its own redis-server,
 * never the machine's shared ones. One instance (CUT_OFF) reaches Redis
 * through a TCP proxy that can be cut; every client reaches nginx or its
 * instance through a TCP proxy that can drop every connection at once.
 *
 * The delivery bound is a deadline, not an assertion: after the last send of
 * a half settles, the checker waits at most DELIVERY_BOUND_MS (plus a margin
 * for the clients' own work) for that half's missing deliveries before
 * counting them.
 *
 * HISTORY_LONG=1 runs the long variant: more users, longer traffic, each
 * fault repeated.
 */

const LONG = process.env.HISTORY_LONG === '1';
/** The server's periodic stream-position check (issue 8); passed explicitly although today's server ignores it. */
const DELIVERY_CHECK_MS = 2000;
/** The promised bound: every committed message reaches every live subscriber within it. */
const DELIVERY_BOUND_MS = 5000;
/** The clients' own share of the wait (a catch-up request, a reconnect backoff of up to 1 s). */
const CLIENT_MARGIN_MS = 1000;
/** After a deadline with deliveries missing, how long to keep watching whether they are late or lost (reported, not judged). */
const LATE_GRACE_MS = 20_000;

// Long: the cut-off outlasts the default presence TTL (30 s), so the other
// instances stop counting the cut-off instance's users as online meanwhile.
const T = LONG
  ? { users: 45, warmupMs: 10_000, cycles: 3, cycleGapMs: 10_000, killDownMs: 5000, frozenMs: 20_000, redisDownMs: 10_000, cutOffMs: 40_000, postgresDownMs: 10_000, tailAfterHealMs: 3000, steadyAfterHealMs: 30_000, sendSettleMs: 60_000 }
  : { users: 30, warmupMs: 2000, cycles: 1, cycleGapMs: 0, killDownMs: 2000, frozenMs: 5000, redisDownMs: 10_000, cutOffMs: 10_000, postgresDownMs: 2000, tailAfterHealMs: 2000, steadyAfterHealMs: 6000, sendSettleMs: 20_000 };
/** Server keepalive (WS_KEEPALIVE_MS) and the clients' ping period; a frozen instance stays frozen for longer. */
const KEEPALIVE_MS = 2000;

const KILLED = 0;
const FROZEN = 1;
const CUT_OFF = 2;

const nginx = inject('nginx');
const tools = Boolean(nginx && findRedisServer() && findPostgresBin());
if (!tools && process.env.CI === 'true') throw new Error('CI=true but nginx, redis-server or the PostgreSQL server binaries are missing');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Outcome {
  steady: Report;
  tail: Report;
  /** Errors the SDK sessions handled by themselves, by code. */
  clientErrors: Record<string, number>;
  /** Sessions that lost their socket and reconnected. */
  reconnects: number;
  /** Anomalies per kind of conversation (direct, small group: fan-out on write; large group: on read), at the end, for attribution. */
  byKind: Record<string, Partial<Record<string, number>>>;
  /** Deliveries missing at the deadline that arrived within LATE_GRACE_MS after it (still counted as missing). */
  late: number;
  /** Sends never acknowledged, by client path. */
  unackedByPath: Record<string, number>;
  /** From the fault's start to its heal (e.g. how long a restart took). */
  faultMs: number;
}

const rows: { name: string; report: Report }[] = [];

describe.skipIf(!tools)('the history of SDK clients on three instances behind nginx, through faults', () => {
  let postgres: PostgresServer;
  let db: TestDatabase;
  let redis: RedisServer;
  let redisPath: TcpProxy;
  let cluster: Cluster;
  const clientPaths: TcpProxy[] = [];

  beforeAll(async () => {
    postgres = await startPostgresServer();
    db = await createTestDatabase(postgres.url);
    redis = await startRedisServer();
    redisPath = await startTcpProxy(redis.port);
    cluster = await Cluster.start({
      instances: 3,
      env: {
        DATABASE_URL: db.url,
        REDIS_URL: redis.url,
        JWT_SECRET: TEST_JWT_SECRET,
        // Groups of more than three fan out on read; three or fewer on write: both paths run.
        FANOUT_DIRECT_MAX: '3',
        DELIVERY_CHECK_MS: String(DELIVERY_CHECK_MS),
        WS_KEEPALIVE_MS: String(KEEPALIVE_MS),
        SEND_RATE_PER_SECOND: '0',
        LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
      },
      instanceEnv: (index) => (index === CUT_OFF ? { REDIS_URL: `redis://127.0.0.1:${redisPath.port}` } : {}),
      onSpawn: (child) => track(child),
    });
    // Clients reach nginx, or one instance directly, through proxies that can drop every connection.
    clientPaths.push(await startTcpProxy(cluster.port));
    for (const instance of cluster.instances) clientPaths.push(await startTcpProxy(instance.port));
  }, 180_000);

  afterAll(async () => {
    const anomalies = rows.some((row) => !clean(row.report));
    if (rows.length > 0) {
      console.log(`\nHistory checker (${LONG ? 'long' : 'short'} variant${anomalies ? `; instance logs kept in ${cluster?.dir}` : ''})\n${formatTable(rows)}\n`);
    }
    await Promise.all(clientPaths.map((p) => p.close()));
    await cluster?.stop();
    if (cluster && !anomalies) await rm(cluster.dir, { recursive: true, force: true });
    await redisPath?.close();
    await redis?.stop();
    if (postgres && !postgres.running) await postgres.start().catch(() => {});
    await db?.drop().catch(() => {});
    await postgres?.destroy();
  }, 120_000);

  /** Whatever a scenario left broken (it failed half-way): heal it, then wait until every instance is ready. */
  async function restore(): Promise<void> {
    for (const instance of cluster.instances) cluster.resume(instance.index);
    redisPath.setOffline(false);
    if (!redis.running) await redis.start();
    if (!postgres.running) await postgres.start();
    for (const instance of cluster.instances) if (!instance.process) await cluster.startInstance(instance.index);
    await Promise.all(cluster.instances.map((instance) => cluster.ready(instance.index, 60_000)));
  }

  /** The checker's database reads, retried while PostgreSQL is coming back. */
  async function stored(ids: string[]) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await readStoredState(db.query, ids);
      } catch (error) {
        if (attempt >= 20) throw error;
        await sleep(500);
      }
    }
  }

  async function run(name: string, fault: () => Promise<void>): Promise<Outcome> {
    await restore();
    const recorder = new HistoryRecorder();
    let faultMs = 0;
    const lb = clientPaths[0]!.url;
    const direct = clientPaths.slice(1).map((p) => p.url);
    const workload = await Workload.create({
      recorder,
      prefix: `${name}-u`,
      users: T.users,
      setupUrl: cluster.url,
      // Half the clients through nginx, half directly on each instance.
      urls: [lb, direct[0]!, lb, direct[1]!, lb, direct[2]!],
      smallGroupSize: 3,
      largeGroupSize: 6,
      pauseMs: [400, 1000],
      client: { keepAliveMs: KEEPALIVE_MS, requestTimeoutMs: 3000, retry: { initialDelayMs: 100, maxDelayMs: 1000 } },
    });
    try {
      workload.start();
      await sleep(T.warmupMs);
      const faultStart = Date.now();
      for (let cycle = 0; cycle < T.cycles; cycle++) {
        if (cycle > 0) await sleep(T.cycleGapMs);
        await fault();
      }
      const healedAt = Date.now();
      faultMs = healedAt - faultStart;
      workload.stop('tail', healedAt + T.tailAfterHealMs);
      workload.stop('steady', healedAt + T.steadyAfterHealMs);

      // Each half is judged on its own deadline: the delivery bound after its own last send settled.
      const judge = async (mode: 'steady' | 'tail'): Promise<Report> => {
        const ids = workload.conversationIds(mode);
        const settledAt = await workload.drain(mode, T.sendSettleMs);
        const deadline = settledAt + DELIVERY_BOUND_MS + CLIENT_MARGIN_MS;
        for (;;) {
          // Deliveries first, then the database: whatever was delivered was committed before the read.
          const history = recorder.snapshot();
          const report = checkHistory(history, await stored(ids), { conversations: new Set(ids) });
          if ((report.counts.missing === 0 && report.counts.stale === 0) || Date.now() >= deadline) return report;
          await sleep(250);
        }
      };
      const [steady, tail] = await Promise.all([judge('steady'), judge('tail')]);
      await workload.finished();
      // Not part of the verdict, for telling "late" (e.g. a starved machine) from "never": when
      // deliveries were missing at the deadline, how many still arrive within a further LATE_GRACE_MS.
      const missingAtDeadline = steady.counts.missing + tail.counts.missing + steady.counts.stale + tail.counts.stale;
      let final = { history: recorder.snapshot(), state: await stored(workload.conversationIds()) };
      let stillMissing = missingAtDeadline;
      for (const until = Date.now() + LATE_GRACE_MS; stillMissing > 0 && Date.now() < until; ) {
        await sleep(500);
        final = { history: recorder.snapshot(), state: await stored(workload.conversationIds()) };
        const counts = checkHistory(final.history, final.state).counts;
        stillMissing = counts.missing + counts.stale;
      }
      const byKind: Outcome['byKind'] = {};
      for (const kind of ['direct', 'small', 'large'] as const) {
        const ids = new Set(workload.conversations.filter((c) => c.kind === kind).map((c) => c.id));
        const counts = checkHistory(final.history, final.state, { conversations: ids }).counts;
        byKind[kind] = Object.fromEntries(KINDS.filter((k) => counts[k] > 0).map((k) => [k, counts[k]]));
      }
      // Sends never acknowledged, by the path their client used (0, 2, 4: nginx; 1, 3, 5: instance 0, 1, 2 directly).
      const unackedByPath: Record<string, number> = {};
      for (const send of final.history.sends) {
        if (send.outcome === 'acked') continue;
        const path = send.client.slice(send.client.lastIndexOf('@') + 1);
        unackedByPath[path] = (unackedByPath[path] ?? 0) + 1;
      }
      const outcome = { steady, tail, clientErrors: workload.errorCounts(), reconnects: workload.reconnects, byKind, late: missingAtDeadline - stillMissing, unackedByPath, faultMs };
      report(name, outcome);
      return outcome;
    } finally {
      await workload.close();
    }
  }

  function report(name: string, outcome: Outcome) {
    rows.push({ name: `${name}`, report: outcome.steady }, { name: `${name} (tail)`, report: outcome.tail });
    const lines = [formatTable([{ name, report: outcome.steady }, { name: `${name} (tail)`, report: outcome.tail }])];
    for (const [part, r] of [['', outcome.steady], [' (tail)', outcome.tail]] as const) {
      for (const kind of KINDS) if (r.counts[kind] > 0) lines.push(`  ${name}${part} ${kind}: ${r.examples[kind].slice(0, 3).join(' | ')}`);
    }
    if (!clean(outcome.steady) || !clean(outcome.tail)) {
      lines.push(`  ${name}: of the deliveries missing at the deadline, ${outcome.late} arrived within a further ${LATE_GRACE_MS / 1000} s (late, not lost)`);
      lines.push(`  ${name} by kind of conversation (both halves, at the end): ${JSON.stringify(outcome.byKind)}`);
    }
    if (Object.keys(outcome.unackedByPath).length > 0) lines.push(`  ${name}: sends never acknowledged, by client path (even: nginx; 1, 3, 5: instance 0, 1, 2): ${JSON.stringify(outcome.unackedByPath)}`);
    lines.push(`  the fault lasted ${(outcome.faultMs / 1000).toFixed(1)} s; the sessions reconnected ${outcome.reconnects} times and handled these errors themselves: ${JSON.stringify(outcome.clientErrors)}`);
    console.log(lines.join('\n'));
  }

  function expectClean(report: Report | undefined) {
    expect(report, 'the scenario did not run to the end').toBeDefined();
    const details = KINDS.filter((kind) => report!.counts[kind] > 0).map((kind) => `${kind}: ${report!.examples[kind].slice(0, 5).join(' | ')}`).join('\n');
    expect(report!.counts, details).toEqual(zeroCounts());
    expect(clean(report!)).toBe(true);
  }

  /** One scenario: the run in beforeAll, judged per half. */
  function scenario(title: string, name: string, fault: () => Promise<void>) {
    describe(title, () => {
      let outcome: Outcome | undefined;
      beforeAll(async () => {
        outcome = await run(name, fault);
      }, LONG ? 900_000 : 150_000);
      it('loses, duplicates, reorders and misses nothing, and leaves no seq gap, while sending goes on after the fault heals', () => expectClean(outcome?.steady));
      it('does the same when sending stops a few seconds after the fault heals (the tail case)', () => expectClean(outcome?.tail));
    });
  }

  scenario('an instance SIGKILLed during traffic, then started again', 'sigkill', async () => {
    await cluster.signal(KILLED, 'SIGKILL');
    await sleep(T.killDownMs);
    await cluster.startInstance(KILLED);
  });

  scenario(`an instance frozen (SIGSTOP) for longer than the keepalive, then continued`, 'sigstop', async () => {
    cluster.suspend(FROZEN);
    try {
      await sleep(T.frozenMs);
    } finally {
      cluster.resume(FROZEN);
    }
  });

  scenario(`Redis stopped for ${T.redisDownMs / 1000} s, then restarted (empty)`, 'redis-restart', async () => {
    await redis.stop();
    try {
      await sleep(T.redisDownMs);
    } finally {
      await redis.start();
    }
  });

  scenario('every pub/sub connection killed on Redis (CLIENT KILL TYPE pubsub)', 'pubsub-kill', async () => {
    const killed = Number(await redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub'));
    // One subscriber connection per instance at least, or the scenario tested nothing.
    if (killed < cluster.instances.length) throw new Error(`CLIENT KILL TYPE pubsub killed ${killed} connections`);
  });

  scenario(`one instance cut off from Redis for ${T.cutOffMs / 1000} s while its clients still reach it`, 'redis-cut-off', async () => {
    if (redisPath.connections === 0) throw new Error(`instance ${CUT_OFF} has no Redis connection through the proxy`);
    redisPath.setOffline(true);
    try {
      // The instance notices (its /ready reports the broker down; it stays ready: it still delivers), or the scenario tested nothing.
      const ready = cluster.instances[CUT_OFF]!.url.replace(/\/graphql$/, '/ready');
      const noticedBy = Date.now() + 5000;
      const brokerUp = () => fetch(ready).then((r) => r.json() as Promise<{ broker?: boolean }>).then((body) => body.broker !== false, () => true);
      while (await brokerUp()) {
        if (Date.now() > noticedBy) throw new Error(`instance ${CUT_OFF} still ready 5 s after being cut off from Redis`);
        await sleep(100);
      }
      await sleep(T.cutOffMs);
    } finally {
      redisPath.setOffline(false);
    }
  });

  scenario('PostgreSQL restarted', 'postgres-restart', async () => {
    await postgres.stop();
    try {
      await sleep(T.postgresDownMs);
    } finally {
      await postgres.start();
    }
  });

  scenario('every client socket closed at once', 'sockets-closed', async () => {
    const open = clientPaths.reduce((sum, path) => sum + path.connections, 0);
    if (open < T.users) throw new Error(`only ${open} client connections open, fewer than the sessions`);
    for (const path of clientPaths) path.cutAll();
  });
});
