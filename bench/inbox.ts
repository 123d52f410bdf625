import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { signToken } from '../src/auth.js';
import { citusTaskCount, createDistributedBenchDatabase, percentile, round, type BenchDatabase } from './distributed.js';
import { startChatServer } from './processes.js';

/**
 * `npm run bench:inbox`: the first page of `conversations` for a user in
 * --conversations conversations (default 10,000), on DATABASE_URL (plain
 * PostgreSQL or a Citus coordinator: docs/citus.md, "The conversation list").
 *
 * - the API: `conversations(first: 20)` and the next page, over HTTP against
 *   the server in its own process, as a client sees it;
 * - the statements: the page chosen on the user's shard of the inbox index
 *   (now) against the list as it was (every conversation id of the user in one
 *   `IN (…)`, ordered and limited across the conversation shards), each timed
 *   alone, and on Citus their plans' shard task counts.
 */
const { values: args } = parseArgs({
  options: {
    conversations: { type: 'string', default: '10000' },
    requests: { type: 'string', default: '200' },
    page: { type: 'string', default: '20' },
  },
});
const CONVERSATIONS = Number(args.conversations);
const REQUESTS = Number(args.requests);
const PAGE = Number(args.page);
const SECRET = randomBytes(32).toString('hex');
const log = (line: string) => console.log(`  ${line}`);

/** The heavy user's conversations, written straight to the database (setup is not what we measure). */
async function seed(db: BenchDatabase, user: string): Promise<string[]> {
  await db.query('INSERT INTO users (id, name) VALUES ($1, $1)', [user]);
  const ids: string[] = [];
  const started = Date.now();
  for (let from = 0; from < CONVERSATIONS; from += 2000) {
    const chunk = Array.from({ length: Math.min(2000, CONVERSATIONS - from) }, (_, i) => from + i);
    const conversationIds = chunk.map(() => randomUUID());
    const peers = chunk.map((i) => `peer-${i}`);
    // Activity spread over the last weeks, so that the page is a real ordering problem.
    const activeAt = chunk.map((i) => new Date(started - ((i * 7919) % CONVERSATIONS) * 60_000));
    ids.push(...conversationIds);
    await db.query('INSERT INTO users (id, name) SELECT u, u FROM unnest($1::text[]) u', [peers]);
    await db.query(
      `INSERT INTO conversations (id, kind, member_count, active_at, created_at)
       SELECT id, 'DIRECT', 2, at, at FROM unnest($1::uuid[], $2::timestamptz[]) AS t(id, at)`,
      [conversationIds, activeAt],
    );
    await db.query(
      `INSERT INTO conversation_members (conversation_id, user_id)
       SELECT id, u FROM unnest($1::uuid[], $2::text[]) AS t(id, u)
       UNION ALL SELECT id, $3 FROM unnest($1::uuid[]) AS t(id)`,
      [conversationIds, peers, user],
    );
    await db.query(
      `INSERT INTO user_conversations (user_id, conversation_id, active_at)
       SELECT u, id, at FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS t(id, u, at)
       UNION ALL SELECT $4, id, at FROM unnest($1::uuid[], $3::timestamptz[]) AS t(id, at)`,
      [conversationIds, peers, activeAt, user],
    );
  }
  await db.query('ANALYZE');
  return ids;
}

async function timed(times: number, run: () => Promise<unknown>): Promise<{ p50: number; p95: number; mean: number }> {
  for (let i = 0; i < 10; i++) await run(); // warm caches and plans
  const ms: number[] = [];
  for (let i = 0; i < times; i++) {
    const started = performance.now();
    await run();
    ms.push(performance.now() - started);
  }
  return { p50: round(percentile(ms, 50), 2), p95: round(percentile(ms, 95), 2), mean: round(ms.reduce((a, b) => a + b, 0) / ms.length, 2) };
}

async function main() {
  const db = await createDistributedBenchDatabase('chat_bench_inbox');
  const user = 'heavy';
  try {
    log(`database: ${db.citus ? `Citus (${db.citus.version.split(' on ')[0]}, ${db.citus.workers.length} workers)` : 'PostgreSQL'}`);
    const seedStarted = Date.now();
    await seed(db, user);
    log(`seeded ${CONVERSATIONS} conversations for one user in ${Math.round((Date.now() - seedStarted) / 1000)} s`);

    const server = await startChatServer({ DATABASE_URL: db.url, JWT_SECRET: SECRET });
    const token = await signToken(SECRET, user, { name: user });
    const graphql = async (query: string, variables: object = {}) => {
      const response = await fetch(`http://127.0.0.1:${server.port}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await response.json()) as { data?: any; errors?: unknown };
      if (body.errors) throw new Error(JSON.stringify(body.errors));
      return body.data;
    };
    const PAGE_QUERY = `query($first: Int!, $after: String) { conversations(first: $first, after: $after) {
      edges { node { id kind title unreadCount lastMessage { body } } } pageInfo { hasNextPage endCursor } } }`;
    const first = await graphql(PAGE_QUERY, { first: PAGE });
    const firstPage = await timed(REQUESTS, () => graphql(PAGE_QUERY, { first: PAGE }));
    const secondPage = await timed(REQUESTS, () => graphql(PAGE_QUERY, { first: PAGE, after: first.conversations.pageInfo.endCursor }));
    await server.stop();

    // The statements alone: how the page is chosen now, and how it was.
    const choose = `SELECT conversation_id, active_at FROM user_conversations WHERE user_id = $1 ORDER BY active_at DESC, conversation_id DESC LIMIT ${PAGE + 1}`;
    const pageIds = (await db.query<{ conversation_id: string }>(choose, [user])).map((r) => r.conversation_id);
    const byId = 'SELECT * FROM conversations WHERE id = ANY($1::uuid[])';
    const allIds = 'SELECT conversation_id FROM user_conversations WHERE user_id = $1';
    const ids = (await db.query<{ conversation_id: string }>(allIds, [user])).map((r) => r.conversation_id);
    const before = `SELECT * FROM conversations WHERE id = ANY($1::uuid[]) ORDER BY active_at DESC, id DESC LIMIT ${PAGE + 1}`;
    const statements = {
      now: {
        choosePage: { ...(await timed(REQUESTS, () => db.query(choose, [user]))), ...(await citusTaskCount(db, choose, [user])) },
        readPage: { ...(await timed(REQUESTS, () => db.query(byId, [pageIds]))), ...(await citusTaskCount(db, byId, [pageIds])) },
      },
      before: {
        readAllIds: { ...(await timed(REQUESTS, () => db.query(allIds, [user]))), ...(await citusTaskCount(db, allIds, [user])) },
        orderAll: { ...(await timed(REQUESTS, () => db.query(before, [ids]))), ...(await citusTaskCount(db, before, [ids])) },
      },
    };
    const results = {
      at: new Date().toISOString(),
      database: db.citus ? db.citus.version : 'PostgreSQL',
      conversations: CONVERSATIONS,
      page: PAGE,
      apiMs: { firstPage, secondPage },
      statements: {
        now: Object.fromEntries(Object.entries(statements.now).map(([k, v]) => [k, { p50: v.p50, p95: v.p95, tasks: v.tasks }])),
        before: Object.fromEntries(Object.entries(statements.before).map(([k, v]) => [k, { p50: v.p50, p95: v.p95, tasks: v.tasks }])),
      },
      plans: { choosePage: statements.now.choosePage.plan, readPage: statements.now.readPage.plan.slice(0, 6), orderAll: statements.before.orderAll.plan.slice(0, 6) },
    };
    console.log('\n' + JSON.stringify(results, null, 2));
    const tasks = (n: number | null) => (n === null ? '' : `, ${n} shard task${n === 1 ? '' : 's'}`);
    log('');
    log(`conversations(first: ${PAGE}) for a user in ${CONVERSATIONS} conversations, over HTTP: p50 ${firstPage.p50} ms, p95 ${firstPage.p95} ms; next page p50 ${secondPage.p50} ms`);
    log(`  now:    choose the page on the user's shard  p50 ${statements.now.choosePage.p50} ms${tasks(statements.now.choosePage.tasks)}`);
    log(`          read its ${PAGE + 1} conversations by id     p50 ${statements.now.readPage.p50} ms${tasks(statements.now.readPage.tasks)}`);
    log(`  before: read all ${CONVERSATIONS} ids                p50 ${statements.before.readAllIds.p50} ms${tasks(statements.before.readAllIds.tasks)}`);
    log(`          order them all, keep ${PAGE + 1}             p50 ${statements.before.orderAll.p50} ms${tasks(statements.before.orderAll.tasks)}`);
    await mkdir('.data/bench', { recursive: true });
    await writeFile('.data/bench/inbox.json', JSON.stringify(results, null, 2));
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
