import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import pg from 'pg';
import WebSocket from 'ws';
import { signToken } from '../src/auth.js';
import { createDistributedBenchDatabase, percentile, round, type BenchDatabase } from './distributed.js';
import { startChatServer } from './processes.js';

/**
 * `npm run bench:hot`: how fast one conversation can take messages, on
 * DATABASE_URL (plain PostgreSQL or a Citus coordinator), and what keeping
 * them costs (docs/citus.md, "A hot conversation", "Message retention").
 *
 * Every send into a conversation takes its row lock (last_seq + 1 in
 * chat_send_message), so sends into one conversation run one at a time. The
 * same number of senders is measured into one conversation and spread over
 * one conversation each, closed loop (each sender sends again when answered):
 *
 * - through the API: --senders WebSocket clients against the server in its
 *   own process (the figure for the README);
 * - the SQL function alone: --senders connections calling chat_send_message,
 *   the database's own ceiling.
 *
 * Then: bytes per stored message, and how fast old messages of the hot
 * conversation are deleted by seq range (retention).
 */
const { values: args } = parseArgs({
  options: {
    senders: { type: 'string', default: '16' },
    duration: { type: 'string', default: '10' },
    only: { type: 'string' },
  },
});
const SENDERS = Number(args.senders);
const DURATION_S = Number(args.duration);
const SECRET = randomBytes(32).toString('hex');
const log = (line: string) => console.log(`  ${line}`);
const BODY = 'a message of about the length people type in a chat, forty to eighty characters';

interface Rate {
  perSecond: number;
  sends: number;
  latencyMs: { p50: number; p99: number };
  /** A bystander on the same instance sending into its own conversation meanwhile: what the hot one costs others. */
  bystanderMs?: { p50: number; p99: number };
}

/** Users, and either one group holding them all or one direct conversation each (with a silent peer). */
async function seed(db: BenchDatabase, prefix: string, shared: boolean): Promise<{ users: string[]; conversations: string[] }> {
  const users = Array.from({ length: SENDERS }, (_, i) => `${prefix}-${i}`);
  const peers = users.map((u) => `${u}-peer`);
  await db.query('INSERT INTO users (id, name) SELECT u, u FROM unnest($1::text[]) u', [[...users, ...peers]]);
  const conversations = shared ? [randomUUID()] : users.map(() => randomUUID());
  const memberships = shared
    ? users.map((u) => [conversations[0]!, u])
    : users.flatMap((u, i) => [
        [conversations[i]!, u],
        [conversations[i]!, peers[i]!],
      ]);
  const size = shared ? users.length : 2;
  await db.query(`INSERT INTO conversations (id, kind, title, member_count) SELECT id, $2, 'hot', $3 FROM unnest($1::uuid[]) id`, [conversations, shared ? 'GROUP' : 'DIRECT', size]);
  await db.query('INSERT INTO conversation_members (conversation_id, user_id) SELECT c, u FROM unnest($1::uuid[], $2::text[]) AS t(c, u)', [
    memberships.map((m) => m[0]),
    memberships.map((m) => m[1]),
  ]);
  await db.query('INSERT INTO user_conversations (conversation_id, user_id) SELECT c, u FROM unnest($1::uuid[], $2::text[]) AS t(c, u)', [
    memberships.map((m) => m[0]),
    memberships.map((m) => m[1]),
  ]);
  return { users, conversations };
}

/** Closed loop for DURATION_S: each worker sends again as soon as its last send is answered. */
async function closedLoop(workers: ((i: number) => Promise<void>)[]): Promise<Rate> {
  const latencies: number[] = [];
  const deadline = performance.now() + DURATION_S * 1000;
  const started = performance.now();
  await Promise.all(
    workers.map(async (send) => {
      let n = 0;
      while (performance.now() < deadline) {
        const t = performance.now();
        await send(n++);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { perSecond: Math.round(latencies.length / seconds), sends: latencies.length, latencyMs: { p50: round(percentile(latencies, 50)), p99: round(percentile(latencies, 99)) } };
}

/** A graphql-ws client that sends messages (mutations over the socket), one at a time. */
async function socketSender(port: number, userId: string): Promise<(conversationId: string) => Promise<void>> {
  const token = await signToken(SECRET, userId, { name: userId });
  const socket = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws');
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  const waiting = new Map<string, { resolve: () => void; reject: (error: Error) => void }>();
  socket.on('message', (data) => {
    const message = JSON.parse(String(data));
    const waiter = waiting.get(message.id);
    if (!waiter || (message.type !== 'next' && message.type !== 'error')) return;
    waiting.delete(message.id);
    if (message.type === 'next' && message.payload.data?.sendMessage) waiter.resolve();
    else waiter.reject(new Error(JSON.stringify(message.payload)));
  });
  await new Promise<void>((resolve) => {
    socket.once('message', () => resolve()); // connection_ack
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
  });
  const query = 'mutation($c: ID!, $b: String!, $m: String!) { sendMessage(conversationId: $c, body: $b, clientMessageId: $m) { seq } }';
  let next = 0;
  return (conversationId) =>
    new Promise((resolve, reject) => {
      const id = String(++next);
      waiting.set(id, { resolve, reject });
      socket.send(JSON.stringify({ id, type: 'subscribe', payload: { query, variables: { c: conversationId, b: BODY, m: randomUUID() } } }));
    });
}

async function viaApi(db: BenchDatabase, shared: boolean): Promise<Rate> {
  const { users, conversations } = await seed(db, `api-${shared ? 'one' : 'many'}`, shared);
  const bystander = await seed(db, `bystander-${shared ? 'one' : 'many'}`, true);
  // The server's default pool (DATABASE_POOL_SIZE 10): what a hot conversation competes for.
  const server = await startChatServer({ DATABASE_URL: db.url, JWT_SECRET: SECRET });
  try {
    const senders = await Promise.all(users.map((u) => socketSender(server.port, u)));
    const other = await socketSender(server.port, bystander.users[0]!);
    let running = true;
    const probes: number[] = [];
    const probing = (async () => {
      while (running) {
        const t = performance.now();
        await other(bystander.conversations[0]!);
        probes.push(performance.now() - t);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    const rate = await closedLoop(senders.map((send, i) => () => send(conversations[shared ? 0 : i]!)));
    running = false;
    await probing;
    return { ...rate, bystanderMs: { p50: round(percentile(probes, 50)), p99: round(percentile(probes, 99)) } };
  } finally {
    await server.stop();
  }
}

async function viaSql(db: BenchDatabase, shared: boolean): Promise<Rate> {
  const { users, conversations } = await seed(db, `sql-${shared ? 'one' : 'many'}`, shared);
  const clients = await Promise.all(
    users.map(async () => {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      return client;
    }),
  );
  try {
    return await closedLoop(
      clients.map((client, i) => async () => {
        await client.query(
          'SELECT sent_seq FROM chat_send_message($1::uuid, $2, $3::uuid, $4, $5, $6::timestamptz, $7::integer)',
          [conversations[shared ? 0 : i], users[i], randomUUID(), BODY, randomUUID(), new Date(), 100],
        );
      }),
    );
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
}

async function storage(db: BenchDatabase): Promise<{ messages: number; bytesPerMessage: number; deleteRowsPerSecond: number; deleted: number }> {
  const [{ n }] = (await db.query<{ n: string }>('SELECT count(*) AS n FROM messages')) as [{ n: string }];
  const size = db.citus ? "citus_total_relation_size('messages')" : "pg_total_relation_size('messages')";
  const [{ bytes }] = (await db.query<{ bytes: string }>(`SELECT ${size} AS bytes`)) as [{ bytes: string }];
  // Retention of the busiest conversation: everything but its latest 1000 messages, by seq range (its primary key).
  const [hot] = await db.query<{ conversation_id: string; last: number }>(
    'SELECT conversation_id, max(seq) AS last FROM messages GROUP BY conversation_id ORDER BY count(*) DESC LIMIT 1',
  );
  const started = performance.now();
  const deleted = await db.query('DELETE FROM messages WHERE conversation_id = $1 AND seq <= $2 RETURNING seq', [hot!.conversation_id, hot!.last - 1000]);
  const seconds = (performance.now() - started) / 1000;
  return { messages: Number(n), bytesPerMessage: Math.round(Number(bytes) / Number(n)), deleted: deleted.length, deleteRowsPerSecond: Math.round(deleted.length / seconds) };
}

async function main() {
  const db = await createDistributedBenchDatabase('chat_bench_hot');
  try {
    const where = db.citus ? `Citus (${db.citus.version.split(' on ')[0]}, ${db.citus.workers.length} workers)` : 'PostgreSQL';
    log(`database: ${where}; ${SENDERS} senders, ${DURATION_S} s each, closed loop`);
    const line = (what: string, rate: Rate) =>
      log(`${what.padEnd(48)} ${rate.perSecond}/s (p50 ${rate.latencyMs.p50} ms, p99 ${rate.latencyMs.p99} ms${rate.bystanderMs ? `; a bystander's sends meanwhile p50 ${rate.bystanderMs.p50} ms, p99 ${rate.bystanderMs.p99} ms` : ''})`);
    const results: Record<string, unknown> = { at: new Date().toISOString(), database: db.citus ? db.citus.version : 'PostgreSQL', senders: SENDERS, durationS: DURATION_S };
    if (!args.only || args.only === 'api') {
      const api = { oneConversation: await viaApi(db, true), oneEach: await viaApi(db, false) };
      line(`API, ${SENDERS} senders into one conversation:`, api.oneConversation);
      line(`API, ${SENDERS} senders, one conversation each:`, api.oneEach);
      results.api = api;
    }
    if (!args.only || args.only === 'sql') {
      const sql = { oneConversation: await viaSql(db, true), oneEach: await viaSql(db, false) };
      line('chat_send_message alone, one conversation:', sql.oneConversation);
      line('chat_send_message alone, one each:', sql.oneEach);
      results.sql = sql;
    }
    const kept = await storage(db);
    log(`storage: ${kept.bytesPerMessage} bytes per message with its indexes (${kept.messages} messages); retention deletes ${kept.deleteRowsPerSecond} rows/s by seq range (${kept.deleted} rows)`);
    results.storage = kept;
    console.log('\n' + JSON.stringify(results, null, 2));
    await mkdir('.data/bench', { recursive: true });
    await writeFile(`.data/bench/hot-conversation${db.citus ? '-citus' : ''}.json`, JSON.stringify(results, null, 2));
  } finally {
    await db.drop();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
