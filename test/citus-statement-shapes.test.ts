import { describe, expect, it } from 'vitest';
import { DISTRIBUTION } from '../src/db/distribution.js';
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
