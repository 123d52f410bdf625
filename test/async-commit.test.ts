import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../src/db/client.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';

// Derived data (the inbox index's order, last-seen times) is written through
// `db.asyncCommit`, whose commits do not wait for the WAL flush; everything
// else, a send first, through `db.sql` and Prisma, whose commits do.
let test: TestDatabase;
beforeAll(async () => {
  test = await createTestDatabase();
});
afterAll(async () => {
  await test?.drop();
});

const setting = async (sql: { query<R>(text: string, values: readonly unknown[]): Promise<R[]> }) =>
  (await sql.query<{ synchronous_commit: string }>('SHOW synchronous_commit', []))[0]!.synchronous_commit;

describe('asynchronous commit for derived data', () => {
  it.each([
    ['one host', (url: string) => url],
    // A multi-host URL goes through the failover client (src/db/connection.ts): the setting must survive it.
    ['a multi-host URL', (url: string) => {
      const u = new URL(url);
      return `postgresql://${u.username}${u.password ? `:${u.password}` : ''}@${u.host},${u.host}${u.pathname}?target_session_attrs=read-write`;
    }],
    // Options of its own in the URL: kept, and ours added (node-postgres alone would let the URL's win).
    ['a URL with options', (url: string) => `${url}${url.includes('?') ? '&' : '?'}options=${encodeURIComponent('-c application_name=from-url')}`],
  ])('is off on db.asyncCommit and as the server says on db.sql and Prisma (%s)', async (_, urlOf) => {
    const { db } = createDatabase(urlOf(test.url), 2);
    try {
      const server = (await test.query<{ synchronous_commit: string }>('SHOW synchronous_commit'))[0]!.synchronous_commit;
      expect(server).not.toBe('off'); // or this test proves nothing
      expect(await setting(db.asyncCommit)).toBe('off');
      if (urlOf(test.url).includes('options=')) {
        expect((await db.asyncCommit.query<{ application_name: string }>('SHOW application_name', []))[0]!.application_name).toBe('from-url');
      }
      expect(await setting(db.sql)).toBe(server);
      expect((await db.$queryRaw<{ synchronous_commit: string }[]>`SHOW synchronous_commit`)[0]!.synchronous_commit).toBe(server);
    } finally {
      await db.$disconnect();
    }
  });
});
