import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { endpoint, settle, TestServer, uid, type TestUser } from './support/server.js';

let db: TestDatabase;
let server: TestServer;
const users: TestUser[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  server = await TestServer.start({ DATABASE_URL: db.url });
});
afterAll(async () => {
  await Promise.all(users.map((u) => u.closeSockets()));
  await server?.stop();
  await db?.drop();
});

async function user(name: string): Promise<TestUser> {
  const u = await server.user(uid(name), name);
  users.push(u);
  return u;
}
async function dm(a: TestUser, b: TestUser): Promise<string> {
  return (await a.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: b.id })).startDirectConversation.id;
}

async function waitUntil(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (let polls = 0; !(await condition()); polls++) {
    if (polls > 500) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const PRESENCE = 'subscription($c: ID) { presence(conversationId: $c) { user { id } online } }';
const TYPING = 'subscription($c: ID!) { typing(conversationId: $c) { conversationId user { id name } typing expiresAt } }';

describe('presence', () => {
  it("shows contacts' current state, then each change, and keeps lastSeenAt", async () => {
    const [alice, bob] = [await user('alice'), await user('bob')];
    await dm(alice, bob);
    expect((await bob.ok('query($id: ID!) { user(id: $id) { online lastSeenAt } }', { id: alice.id })).user).toEqual({ online: false, lastSeenAt: null });

    const watch = bob.subscribe(PRESENCE);
    await watch.count(1);
    expect(watch.data[0].presence).toEqual({ user: { id: alice.id }, online: false });

    const socket = alice.socket();
    await watch.until((s) => s.data.some((d) => d.presence.online), 5000, 'online');
    const seen = await bob.ok('query($id: ID!) { user(id: $id) { online lastSeenAt } }', { id: alice.id });
    expect(seen.user.online).toBe(true);
    expect(new Date(seen.user.lastSeenAt).getTime()).toBeGreaterThan(Date.now() - 60_000);

    await socket.dispose();
    await watch.until((s) => s.data.length >= 3, 5000, 'offline');
    expect(watch.data.map((d) => d.presence.online)).toEqual([false, true, false]);
    expect((await bob.ok('query($id: ID!) { user(id: $id) { online } }', { id: alice.id })).user.online).toBe(false);
  });

  it("watches a conversation's members, and only a member may", async () => {
    const [alice, bob, carol, eve] = [await user('alice'), await user('bob'), await user('carol'), await user('eve')];
    const c = (await alice.ok('mutation($m: [ID!]!) { createGroup(title: "p", memberIds: $m) { id } }', { m: [bob.id, carol.id] })).createGroup.id;
    const watch = alice.subscribe(PRESENCE, { c });
    await watch.count(2);
    expect(watch.data.map((d) => d.presence.user.id).sort()).toEqual([bob.id, carol.id].sort());
    carol.socket();
    await watch.until((s) => s.data.some((d) => d.presence.user.id === carol.id && d.presence.online), 5000, 'carol online');
    const denied = eve.subscribe(PRESENCE, { c });
    await denied.until((s) => s.results.length > 0 || s.error !== undefined, 5000, 'an error');
    expect(denied.results[0]?.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });
});

describe('presence with a grace period on disconnects (PRESENCE_GRACE_MS)', () => {
  it('shows no change for a user back within the grace, and goes offline after it with lastSeenAt when the connection ended', async () => {
    const graced = await TestServer.start({ DATABASE_URL: db.url, PRESENCE_GRACE_MS: '800' });
    const people: TestUser[] = [];
    try {
      const [alice, bob, carol] = [await graced.user(uid('alice'), 'alice'), await graced.user(uid('bob'), 'bob'), await graced.user(uid('carol'), 'carol')];
      people.push(alice, bob, carol);
      await dm(alice, bob);
      await dm(carol, bob);
      const watch = bob.subscribe(PRESENCE);
      await watch.count(2);
      const states = (who: TestUser) => watch.data.filter((d) => d.presence.user.id === who.id).map((d) => d.presence.online);
      const first = alice.socket();
      const marker = carol.socket();
      await watch.until((s) => states(alice).at(-1) === true && states(carol).at(-1) === true, 5000, 'both online');

      // Alice's socket drops and she is back at once: nobody sees her go. (Back once the
      // server has seen the first connection end: before that there is nothing to hide.)
      const open = async () => Number(/^chat_connections (\d+)/m.exec(await fetch(`http://127.0.0.1:${graced.port}/metrics`).then((r) => r.text()))?.[1]);
      const before = await open();
      await first.dispose();
      await waitUntil(async () => (await open()) === before - 1, 'the first connection closed on the server');
      const third = alice.socket();
      await new Promise<void>((resolve) => third.on('connected', () => resolve()));
      // Carol leaves after that: her offline comes a grace later than any of alice's would have.
      await marker.dispose();
      await watch.until((s) => states(carol).at(-1) === false, 5000, 'carol offline');
      expect(states(alice)).toEqual([false, true]);
      expect((await bob.ok('query($id: ID!) { user(id: $id) { online } }', { id: alice.id })).user.online).toBe(true);

      // Now she stays away: offline after the grace, last seen when her connection ended.
      const ended = Date.now();
      await third.dispose();
      await watch.until((s) => states(alice).at(-1) === false, 5000, 'alice offline');
      const announced = Date.now();
      expect(states(alice)).toEqual([false, true, false]);
      const { user } = await bob.ok('query($id: ID!) { user(id: $id) { online lastSeenAt } }', { id: alice.id });
      expect(user.online).toBe(false);
      const lastSeen = new Date(user.lastSeenAt).getTime();
      expect(lastSeen).toBeGreaterThanOrEqual(ended - 5);
      expect(lastSeen).toBeLessThan(announced);
    } finally {
      await Promise.all(people.map((p) => p.closeSockets()));
      await graced.stop();
    }
  });
});

describe.skipIf(!inject('redisUrl'))('presence grace across a restart (Redis)', () => {
  it("shows no change for users of a stopped instance who are back elsewhere within the grace; another instance announces the rest", async () => {
    const env = { DATABASE_URL: db.url, REDIS_URL: inject('redisUrl')!, PRESENCE_GRACE_MS: '800', PRESENCE_TTL_MS: '1500' };
    const a = await TestServer.start({ ...env, INSTANCE_ID: uid('a') });
    const b = await TestServer.start({ ...env, INSTANCE_ID: uid('b') });
    const people: TestUser[] = [];
    try {
      const [alice, bob, carol] = [await a.user(uid('alice'), 'alice'), await b.user(uid('bob'), 'bob'), await a.user(uid('carol'), 'carol')];
      people.push(alice, bob, carol);
      await dm(alice, bob.at(endpoint(a.url)));
      await dm(carol, bob.at(endpoint(a.url)));
      const watch = bob.subscribe(PRESENCE);
      await watch.count(2);
      const states = (who: TestUser) => watch.data.filter((d) => d.presence.user.id === who.id).map((d) => d.presence.online);
      alice.socket();
      carol.socket();
      await watch.until((s) => states(alice).at(-1) === true && states(carol).at(-1) === true, 10_000, 'both online');

      // Instance a stops (its sockets are closed with 1012); alice is back on b at once, carol is not.
      await a.stop();
      alice.at(endpoint(b.url)).socket();
      await watch.until((s) => states(carol).at(-1) === false, 10_000, 'carol offline, announced by b');
      expect(states(alice)).toEqual([false, true]);
      expect(states(carol)).toEqual([false, true, false]);
      expect((await bob.ok('query($id: ID!) { user(id: $id) { online } }', { id: alice.id })).user.online).toBe(true);
    } finally {
      await Promise.all(people.map((p) => p.closeSockets()));
      await a.stop();
      await b.stop();
    }
  });
});

describe('last seen', () => {
  it('writes many users\' last-seen times at once (a reconnect storm), each user\'s latest, in few statements', async () => {
    const people = await Promise.all(Array.from({ length: 40 }, (_, i) => user(`seen${i}`)));
    const at = (i: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, i));
    // Every user twice (offline then online), all at once: the second write of each must win.
    await Promise.all(people.flatMap((p, i) => [server.app.services.users.setLastSeen(p.id, at(i)), server.app.services.users.setLastSeen(p.id, at(i + 100))]));
    const rows = await db.query<{ id: string; last_seen_at: Date }>('SELECT id, last_seen_at FROM users WHERE id = ANY($1::text[])', [people.map((p) => p.id)]);
    const byId = new Map(rows.map((r) => [r.id, r.last_seen_at.toISOString()]));
    expect(people.map((p) => byId.get(p.id))).toEqual(people.map((_, i) => at(i + 100).toISOString()));
  });
});

describe('typing indicators', () => {
  it('reach the other members, coalesce renewals, expire on their own, and are never stored', async () => {
    const [alice, bob] = [await user('alice'), await user('bob')];
    const c = await dm(alice, bob);
    const bobSees = bob.subscribe(TYPING, { c });
    const aliceSees = alice.subscribe(TYPING, { c });
    await server.listening(bob.id);
    await server.listening(alice.id);
    const set = (typing: boolean) => alice.ok('mutation($c: ID!, $t: Boolean) { setTyping(conversationId: $c, typing: $t) }', { c, t: typing });
    await set(true);
    await set(true); // a keystroke later: absorbed
    await bobSees.count(1);
    const first = bobSees.data[0].typing;
    expect(first).toMatchObject({ conversationId: c, user: { id: alice.id, name: 'alice' }, typing: true });
    const ttl = new Date(first.expiresAt).getTime() - Date.now();
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(6000);
    await set(false);
    await bobSees.count(2);
    expect(bobSees.data[1].typing.typing).toBe(false);
    await settle(200);
    expect(bobSees.results).toHaveLength(2);
    expect(aliceSees.results).toHaveLength(0); // not your own
    expect(await db.query('SELECT count(*)::int AS n FROM messages WHERE conversation_id = $1', [c])).toEqual([{ n: 0 }]);
  });

  it('is for members only, and rate-limited', async () => {
    const [alice, bob, eve] = [await user('alice'), await user('bob'), await user('eve')];
    const c = await dm(alice, bob);
    expect(await eve.errorCode('mutation($c: ID!) { setTyping(conversationId: $c) }', { c })).toBe('FORBIDDEN');
    const codes: (string | undefined)[] = [];
    for (let i = 0; i < 40; i++) {
      const result = await alice.query('mutation($c: ID!) { setTyping(conversationId: $c) }', { c });
      codes.push(result.errors?.[0]?.extensions?.code);
    }
    expect(codes).toContain('RATE_LIMITED');
  });
});
