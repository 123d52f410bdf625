import { serverAudits } from 'graphql-http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { TestServer } from './support/server.js';

// The GraphQL-over-HTTP conformance audit of graphql-http, against the real
// server: every MUST and every SHOULD passes (MAYs are reported, not
// required). It keeps the HTTP side of issue 10's error vocabulary and
// limits honest with the spec (statuses of refused requests, media types).

let db: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await TestServer.start({ DATABASE_URL: db.url });
});
afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

describe('the graphql-http audit', () => {
  const audits = serverAudits({ url: () => server.url, fetchFn: fetch });

  it.each(audits.filter((audit) => !audit.name.startsWith('MAY')).map((audit) => [audit.name, audit] as const))('%s', async (_name, audit) => {
    const result = await audit.fn();
    expect(result.status, result.status === 'ok' ? '' : `${result.reason}\n${JSON.stringify(result.response ? { status: result.response.status } : {})}`).toBe('ok');
  });
});
