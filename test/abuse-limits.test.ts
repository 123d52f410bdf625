import http from 'node:http';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { overSse, overWs } from './support/raw.js';
import { settle, TestServer, uid, type TestUser } from './support/server.js';

// Issue 10: abuse limits that hold across instances (Redis-backed), each
// answered with RATE_LIMITED and a retry hint, or the protocol's own code:
// HTTP 429 before a WebSocket upgrade or an SSE stream, 1013 with "retry
// after N ms" at connection_init (README, "Abuse limits").

const redisUrl = inject('redisUrl');
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

/** Two instances sharing PostgreSQL and Redis, with these limits. */
async function pair(env: Record<string, string>): Promise<[TestServer, TestServer]> {
  const shared = { DATABASE_URL: db.url, REDIS_URL: redisUrl!, ...env };
  return [await TestServer.start({ ...shared, INSTANCE_ID: 'a' }), await TestServer.start({ ...shared, INSTANCE_ID: 'b' })];
}

/** A loopback address of its own, so per-address counts start at zero. */
const freshAddress = () => `127.${1 + Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;

/** An SSE subscription request from a given local address: its status and body (the stream is left open, then cut). */
function sseFrom(url: string, token: string, localAddress: string): Promise<{ status: number; body: string; req: http.ClientRequest }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', localAddress, headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${token}` } }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => {
        body += chunk;
        if (res.statusCode === 200) resolve({ status: 200, body, req });
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, req }));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ query: 'subscription { inbox { __typename } }' }));
  });
}

describe.skipIf(!redisUrl)('abuse limits across instances (Redis)', () => {
  let a: TestServer;
  let b: TestServer;
  const users: TestUser[] = [];
  beforeAll(async () => {
    [a, b] = await pair({ SEND_RATE_PER_SECOND: '1', SEND_BURST: '3', MAX_CONNECTIONS_PER_USER: '2', MAX_SUBSCRIPTIONS_PER_CONNECTION: '2' });
  });
  afterAll(async () => {
    await Promise.all(users.map((u) => u.closeSockets()));
    await a?.stop();
    await b?.stop();
  });
  const user = async (at: TestServer, name: string) => {
    const u = await at.user(uid(name));
    users.push(u);
    return u;
  };

  it('limit sends per user across instances: RATE_LIMITED with retryAfterMs, nothing stored for it', async () => {
    const alice = await user(a, 'alice');
    const c = (await alice.ok('mutation { createGroup(title: "limits", memberIds: []) { id } }')).createGroup.id;
    const SEND = 'mutation($c: ID!, $m: String!) { sendMessage(conversationId: $c, body: "x", clientMessageId: $m) { seq } }';
    await alice.ok(SEND, { c, m: '1' });
    await alice.at(b).ok(SEND, { c, m: '2' });
    await alice.ok(SEND, { c, m: '3' });
    const refused = await alice.at(b).query(SEND, { c, m: '4' });
    expect(refused.errors![0]!.extensions).toMatchObject({ code: 'RATE_LIMITED' });
    expect(refused.errors![0]!.extensions!.retryAfterMs).toBeGreaterThan(0);
    expect(await db.query('SELECT seq FROM messages WHERE conversation_id = $1 ORDER BY seq', [c])).toEqual([{ seq: 1 }, { seq: 2 }, { seq: 3 }]);
  });

  it('limit typing updates per user across instances', async () => {
    const bob = await user(a, 'bob');
    const c = (await bob.ok('mutation { createGroup(title: "typing", memberIds: []) { id } }')).createGroup.id;
    // The bucket holds 20 and refills 2 a second (src/security/abuse.ts), so
    // however slow the machine, the updates allowed before the first refusal
    // are at most 20 plus what refilled meanwhile; on one instance alone they
    // would be twice that.
    const codes: (string | undefined)[] = [];
    const started = Date.now();
    for (let i = 0; i < 200 && !codes.includes('RATE_LIMITED'); i++) {
      const result = await (i % 2 ? bob.at(b) : bob).query('mutation($c: ID!) { setTyping(conversationId: $c) }', { c });
      codes.push(result.errors?.[0]?.extensions?.code);
    }
    const allowed = codes.indexOf('RATE_LIMITED');
    expect(allowed, JSON.stringify(codes)).toBeGreaterThanOrEqual(20);
    expect(codes.slice(0, allowed).every((code) => code === undefined)).toBe(true);
    expect(allowed).toBeLessThanOrEqual(20 + Math.ceil((2 * (Date.now() - started)) / 1000) + 1);
  });

  it("cap a user's open connections across instances: a WebSocket is closed with 1013 and a retry hint, an SSE stream refused with 429", async () => {
    const carol = await user(a, 'carol');
    const first = carol.subscribe('subscription { inbox { __typename } }');
    await a.listening(carol.id);
    const second = carol.at(b).subscribeSse('subscription { inbox { __typename } }');
    await b.listening(carol.id);
    const third = await overWs('subscription { inbox { __typename } }', undefined, { url: a.url, token: carol.token });
    expect(third.closeCode).toBe(1013);
    expect(third.closeReason).toMatch(/retry after \d+ ms/);
    const fourth = await overSse('subscription { inbox { __typename } }', undefined, { url: b.url, token: carol.token });
    expect(fourth.status).toBe(429);
    expect(fourth.errors![0]!.extensions).toMatchObject({ code: 'RATE_LIMITED' });
    // A slot frees when its connection closes.
    second.close();
    await settle(500);
    const again = await overSse('subscription { inbox { __typename } }', undefined, { url: b.url, token: carol.token, untilEvents: 0 });
    expect(again.status).toBe(200);
    first.close();
  });

  it('limit operations in flight on one WebSocket: the one over the limit gets RATE_LIMITED, the socket stays', async () => {
    const dave = await user(a, 'dave');
    const socket = dave.socket();
    const subs = [0, 1, 2].map(() => dave.subscribe('subscription { inbox { __typename } }', undefined, socket));
    await subs[2]!.until((s) => s.ended, 10_000, 'the refusal');
    expect(subs[2]!.errorCode).toBe('RATE_LIMITED');
    expect(subs[0]!.ended || subs[1]!.ended).toBe(false);
    for (const sub of subs) sub.close();
  });
});

describe.skipIf(!redisUrl)('connection attempts across instances (Redis)', () => {
  let a: TestServer;
  let b: TestServer;
  beforeAll(async () => {
    [a, b] = await pair({ CONNECT_RATE_PER_MINUTE: '3', CONNECT_RATE_PER_MINUTE_PER_ADDRESS: '3' });
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
  });

  it('limit attempts per user: the one over the limit is closed with 1013 and a retry hint', async () => {
    const erin = await a.user(uid('erin'));
    const closes: (number | undefined)[] = [];
    for (const at of [a, b, a, b]) {
      const result = await overWs('{ viewer { id } }', undefined, { url: at.url, token: erin.token, localAddress: freshAddress() });
      closes.push(result.closeCode);
    }
    expect(closes.slice(0, 3)).toEqual([undefined, undefined, undefined]);
    expect(closes[3]).toBe(1013);
  });

  it('limit attempts per address: refused before the upgrade (or the stream) with HTTP 429, RATE_LIMITED and Retry-After', async () => {
    const address = freshAddress();
    const users = await Promise.all([0, 1, 2, 3].map(() => a.user(uid('frank'))));
    const first = await overWs('{ viewer { id } }', undefined, { url: a.url, token: users[0]!.token, localAddress: address });
    expect(first.data?.viewer.id).toBe(users[0]!.id);
    await overWs('{ viewer { id } }', undefined, { url: b.url, token: users[1]!.token, localAddress: address });
    const stream = await sseFrom(b.url, users[2]!.token, address);
    expect(stream.status).toBe(200);
    stream.req.destroy();
    const refused = await overWs('{ viewer { id } }', undefined, { url: a.url, token: users[3]!.token, localAddress: address });
    expect(refused.status).toBe(429);
    expect(refused.errors![0]!.extensions).toMatchObject({ code: 'RATE_LIMITED' });
    const refusedStream = await sseFrom(b.url, users[3]!.token, address);
    expect(refusedStream.status).toBe(429);
    expect(JSON.parse(refusedStream.body).errors[0].extensions.code).toBe('RATE_LIMITED');
  });
});

describe('abuse limits without Redis (one instance)', () => {
  it("cap a user's open connections in the process", async () => {
    const server = await TestServer.start({ DATABASE_URL: db.url, MAX_CONNECTIONS_PER_USER: '1' });
    try {
      const gina = await server.user(uid('gina'));
      const first = gina.subscribe('subscription { inbox { __typename } }');
      await server.listening(gina.id);
      const second = await overWs('{ viewer { id } }', undefined, { url: server.url, token: gina.token });
      expect(second.closeCode).toBe(1013);
      first.close();
      await gina.closeSockets();
      await settle(300);
      const third = await overWs('{ viewer { id } }', undefined, { url: server.url, token: gina.token });
      expect(third.data?.viewer.id).toBe(gina.id);
    } finally {
      await server.stop();
    }
  });
});
