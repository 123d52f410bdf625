import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signToken } from '../src/auth.js';
import { createDatabase } from '../src/db/client.js';
import { applyMigrations, MIGRATIONS_DIR } from '../src/db/migrate.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { TestServer, TestUser, uid } from './support/server.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const SEND = 'mutation($c: ID!, $b: String!, $m: String!) { sendMessage(conversationId: $c, body: $b, clientMessageId: $m) { seq } }';

describe('migrations', () => {
  it('records each migration in _prisma_migrations the way prisma migrate deploy does, once', async () => {
    await applyMigrations(db.url);
    const again = await applyMigrations(db.url);
    expect(again).toEqual([]);
    const names = (await readdir(MIGRATIONS_DIR, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name).sort();
    const rows = await db.query<{ migration_name: string; checksum: string; finished_at: Date | null; applied_steps_count: number; rolled_back_at: Date | null }>(
      'SELECT migration_name, checksum, finished_at, applied_steps_count, rolled_back_at FROM _prisma_migrations ORDER BY migration_name',
    );
    expect(rows.map((r) => r.migration_name)).toEqual(names);
    for (const row of rows) {
      const sql = await readFile(path.join(MIGRATIONS_DIR, row.migration_name, 'migration.sql'));
      expect(row.checksum).toBe(createHash('sha256').update(sql).digest('hex'));
      expect(row.finished_at).not.toBeNull();
      expect(row.rolled_back_at).toBeNull();
      expect(row.applied_steps_count).toBe(1);
    }
  });

  it('leaves a database that every model of the Prisma schema can read and write', async () => {
    await applyMigrations(db.url);
    const { db: prisma } = createDatabase(db.url, 2);
    try {
      // Each findMany selects every scalar column the schema declares: a missing
      // or mistyped column in the SQL migrations fails here.
      await Promise.all([
        prisma.user.findMany({ take: 1 }),
        prisma.conversation.findMany({ take: 1 }),
        prisma.conversationMember.findMany({ take: 1 }),
        prisma.userConversation.findMany({ take: 1 }),
        prisma.message.findMany({ take: 1 }),
      ]);
      const id = uid('schema-check');
      await prisma.user.create({ data: { id, name: 'x', lastSeenAt: new Date() } });
      expect(await prisma.user.findUnique({ where: { id } })).toMatchObject({ id, name: 'x' });
    } finally {
      await prisma.$disconnect();
    }
  });
});

describe('persistence', () => {
  it('keeps every message across a restart, and sequences continue', async () => {
    let server = await TestServer.start({ DATABASE_URL: db.url });
    const alice = await server.user(uid('alice'));
    const bob = await server.user(uid('bob'));
    const c = (await alice.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: bob.id })).startDirectConversation.id;
    for (let i = 1; i <= 3; i++) await alice.ok(SEND, { c, b: `before ${i}`, m: `b${i}` });
    await server.stop();

    server = await TestServer.start({ DATABASE_URL: db.url });
    try {
      const bobAgain = new TestUser(server, bob.id, bob.token);
      const since = await bobAgain.ok('query($c: ID!) { messagesSince(conversationId: $c, afterSeq: 0) { messages { seq body } } }', { c });
      expect(since.messagesSince.messages).toEqual([1, 2, 3].map((seq) => ({ seq, body: `before ${seq}` })));
      expect((await bobAgain.ok(SEND, { c, b: 'after', m: 'a1' })).sendMessage.seq).toBe(4);
      // An idempotent retry that spans the restart still returns the stored message.
      const aliceAgain = new TestUser(server, alice.id, alice.token);
      expect((await aliceAgain.ok(SEND, { c, b: 'before 2', m: 'b2' })).sendMessage.seq).toBe(2);
    } finally {
      await server.stop();
    }
  });

  it('runs on the embedded default: its own PostgreSQL under DATA_DIR, a development secret, data kept across restarts', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'chat-embedded-'));
    try {
      const env = { DATABASE_URL: undefined, JWT_SECRET: undefined, DATA_DIR: dataDir };
      let server = await TestServer.start(env);
      const secret = (await readFile(path.join(dataDir, 'jwt-secret'), 'utf8')).trim();
      const token = await signToken(secret, 'embedded-user', { name: 'Em' });
      let me = new TestUser(server, 'embedded-user', token);
      const c = (await me.ok('mutation { createGroup(title: "notes", memberIds: []) { id } }')).createGroup.id;
      await me.ok(SEND, { c, b: 'kept', m: 'k1' });
      await server.stop();

      server = await TestServer.start(env);
      me = new TestUser(server, 'embedded-user', token); // same secret: the token still works
      try {
        const data = await me.ok('query($c: ID!) { messages(conversationId: $c) { messages { body } } }', { c });
        expect(data.messages.messages).toEqual([{ body: 'kept' }]);
      } finally {
        await server.stop();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
