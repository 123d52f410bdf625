import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DISTRIBUTION } from '../src/db/distribution.js';
import { applyMigrations } from '../src/db/migrate.js';
import { CitusWriteRules } from './support/citus-write-rules.js';
import { citusCluster, createTestDatabase, type TestDatabase } from './support/database.js';
import { classify, shapeOf } from './support/statement-shapes.js';

// The classifier that test/citus-routing.test.ts applies to every statement the
// server sends: these pin down how it reads SQL, so that a change to it cannot
// quietly call a fan-out a router statement.

describe('the statement classifier', () => {
  const router = (sql: string) => classify(sql, DISTRIBUTION).routing;
  const why = (sql: string) => classify(sql, DISTRIBUTION).reasons;

  it('reduces a statement to its shape: one per call site, whatever the parameters and list lengths', () => {
    expect(shapeOf('SELECT  a FROM t\n WHERE id IN ($1,$2,$3) AND b = $4')).toBe('SELECT a FROM t WHERE id IN ($…) AND b = $');
    expect(shapeOf('INSERT INTO t (a, b) VALUES ($1,$2), ($3,$4), ($5,$6)')).toBe('INSERT INTO t (a, b) VALUES ($,$), …');
    expect(shapeOf('SELECT a FROM t WHERE ((x = $1 AND y = $2) OR (x = $3 AND y = $4))')).toBe('SELECT a FROM t WHERE ((x = $ AND y = $) OR …)');
  });

  it('routes a statement whose every distributed table is filtered by one distribution value', () => {
    expect(router('SELECT "public"."messages"."seq" FROM "public"."messages" WHERE ("public"."messages"."conversation_id" = $1 AND "public"."messages"."seq" > $2) ORDER BY "public"."messages"."seq" ASC LIMIT $3')).toBe('router');
    expect(router('SELECT kind FROM conversations WHERE id = $1::uuid FOR UPDATE')).toBe('router');
    expect(router('INSERT INTO "public"."users" ("id","name") VALUES ($1,$2) ON CONFLICT ("id") DO UPDATE SET "name" = $3')).toBe('router');
    expect(router('UPDATE conversation_members SET x = 1 WHERE conversation_id = $1::uuid AND (user_id = $2 OR user_id = $3)')).toBe('router');
  });

  it('calls lists, ORs of values, missing filters, multi-row inserts and cross-group joins multi-shard, saying why', () => {
    expect(why('SELECT * FROM "public"."conversations" WHERE "public"."conversations"."id" IN ($1,$2)')).toEqual(['conversations: id IN (list)']);
    expect(why('SELECT * FROM messages WHERE (conversation_id = $1 AND seq = $2) OR (conversation_id = $3 AND seq = $4)')).toEqual([
      'messages: conversation_id = $n only under an OR',
    ]);
    expect(why('SELECT * FROM conversation_members WHERE conversation_id = $1 OR user_id = $2')).toEqual([
      'conversation_members: conversation_id = $n only under an OR',
    ]);
    expect(why('SELECT * FROM "public"."conversation_members" WHERE "public"."conversation_members"."user_id" = $1')).toEqual([
      'conversation_members: no conversation_id = $n filter',
    ]);
    expect(why('INSERT INTO "public"."messages" ("conversation_id","seq") VALUES ($1,$2), ($3,$4)')).toEqual([
      'messages: multi-row INSERT (2 rows, each routed by its conversation_id)',
    ]);
    expect(why('SELECT * FROM conversations JOIN user_conversations USING (id) WHERE id = $1 AND user_id = $2')).toContain(
      'touches tables of 2 co-location groups (conversations, users)',
    );
    expect(why('SELECT * FROM conversations, messages WHERE id = $1')).toContain('messages is referenced outside FROM/JOIN/UPDATE/INTO');
  });

  it('finds what the router planner refuses in single-shard writes', () => {
    const c = classify('UPDATE conversations SET active_at = clock_timestamp() WHERE id = $1', DISTRIBUTION, new Set(['clock_timestamp']));
    expect([c.routing, c.plannerIssues]).toEqual(['not-router', ['VOLATILE clock_timestamp() in a statement that writes conversations']]);
    const cte = classify('WITH m AS (INSERT INTO messages (conversation_id, seq) SELECT $1::uuid, 1 RETURNING seq) SELECT seq FROM m', DISTRIBUTION);
    expect([cte.routing, cte.plannerIssues]).toEqual(['not-router', ['INSERT inside WITH']]);
  });
});

describe("Citus's rules for writes to distributed tables", () => {
  // Each case is a write and what Citus 13.2 answers to it (its own error
  // message, or nothing when it accepts it). The rules decide on PostgreSQL's
  // parse tree, so the casts and operators PostgreSQL picks are what is
  // judged. On a Citus run (TEST_CITUS=1) every case is also executed on the
  // cluster, so the list is checked against Citus itself, not only against
  // our reading of it.
  const C = '6f1c0000-0000-4000-8000-000000000001';
  const CASES: { sql: string; values: unknown[]; refused: string | null }[] = [
    {
      sql: 'INSERT INTO "public"."conversations" ("id","kind","title","last_seq","member_count","created_at","active_at") VALUES ($1,CAST($2::text AS "public"."conversation_kind"),$3,$4,$5,$6,$7) RETURNING "public"."conversations"."id", "public"."conversations"."kind"::text',
      values: [C, 'GROUP', 't', 0, 1, new Date(), new Date()],
      refused: 'non-IMMUTABLE functions are not allowed in the RETURNING clause',
    },
    { sql: 'INSERT INTO users (id, name) VALUES ($1, $2) RETURNING created_at::text', values: ['a', 'b'], refused: 'non-IMMUTABLE functions are not allowed in the RETURNING clause' },
    { sql: 'UPDATE users SET name = $2 WHERE id = $1 RETURNING name, inbox_version + 1', values: ['a', 'x'], refused: null },
    { sql: 'UPDATE conversations SET active_at = clock_timestamp() WHERE id = $1', values: [C], refused: 'functions used in UPDATE queries on distributed tables must not be VOLATILE' },
    { sql: 'UPDATE users SET last_seen_at = now() WHERE id = $1', values: ['a'], refused: null },
    { sql: 'UPDATE conversations SET title = kind::text WHERE id = $1', values: [C], refused: 'STABLE functions used in UPDATE queries cannot be called with column references' },
    { sql: 'DELETE FROM conversation_members WHERE conversation_id = $1 AND role::text = $2', values: [C, 'OWNER'], refused: 'STABLE functions used in UPDATE queries cannot be called with column references' },
    { sql: 'DELETE FROM conversation_members WHERE conversation_id = $1 AND role = CAST($2::text AS member_role)', values: [C, 'OWNER'], refused: null },
    { sql: 'UPDATE conversations SET kind = CAST($2::text AS conversation_kind) WHERE id = $1 RETURNING id', values: [C, 'GROUP'], refused: null },
    { sql: 'UPDATE conversations SET title = coalesce(title, now()::text) WHERE id = $1', values: [C], refused: 'non-IMMUTABLE functions are not allowed in CASE or COALESCE statements' },
    { sql: 'UPDATE conversations SET id = $2 WHERE id = $1', values: [C, '6f1c0000-0000-4000-8000-000000000002'], refused: 'modifying the partition value of rows is not allowed' },
    { sql: 'INSERT INTO users (id, name) VALUES ($1, (SELECT name FROM users WHERE id = $2))', values: ['a', 'b'], refused: 'subqueries are not supported within INSERT queries' },
    {
      sql: 'INSERT INTO users (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = now()::text',
      values: ['a', 'b'],
      refused: 'functions used in the DO UPDATE SET clause of INSERTs on distributed tables must be marked IMMUTABLE',
    },
    { sql: 'INSERT INTO users (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = excluded.name', values: ['a', 'b'], refused: null },
    {
      // Sign-ins written together (src/chat/users.ts, UserRowWriter): Citus routes each row to its shard.
      sql: 'INSERT INTO users (id, name, created_at) VALUES ($2, $3, $1), ($4, $5, $1) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name RETURNING id, inbox_version AS "inboxVersion"',
      values: [new Date(), 'a', 'A', 'b', 'B'],
      refused: null,
    },
  ];

  let db: TestDatabase;
  let client: pg.Client;
  let rules: CitusWriteRules;
  beforeAll(async () => {
    db = await createTestDatabase();
    await applyMigrations(db.url);
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
    rules = new CitusWriteRules(client, DISTRIBUTION);
  });
  afterAll(async () => {
    await client?.end();
    await db?.drop();
  });

  it('refuses what Citus refuses, with its message, and accepts the rest', async () => {
    const predicted = [];
    for (const { sql } of CASES) predicted.push((await rules.check(sql))?.refusals[0] ?? null);
    expect(predicted.map((p) => p?.replace(/ \(.*\)$/, '') ?? null)).toEqual(CASES.map((c) => c.refused));
  });

  it.runIf(citusCluster())('agrees with the Citus cluster the suite runs on, case by case', async () => {
    const answers = [];
    for (const { sql, values } of CASES) {
      await client.query('BEGIN');
      try {
        await client.query(sql, values);
        answers.push(null);
      } catch (error) {
        answers.push((error as Error).message);
      } finally {
        await client.query('ROLLBACK');
      }
    }
    expect(answers).toEqual(CASES.map((c) => c.refused));
  });

  it('leaves statements that write no distributed table alone', async () => {
    expect(await rules.check('SELECT * FROM conversations WHERE id = $1')).toBeNull();
    expect(await rules.check('INSERT INTO _prisma_migrations (id, checksum, migration_name) VALUES ($1, $2, $3)')).toBeNull();
  });
});
