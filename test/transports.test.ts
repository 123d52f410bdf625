import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { settle, TestServer, TRANSPORTS, uid, type TestUser } from './support/server.js';

// Delivery guarantees that must hold on every transport (issue 8): each test
// runs over WebSocket and over Server-Sent Events.

let db: TestDatabase;
let server: TestServer;
const users: TestUser[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  // A short position check keeps the "nothing else happens" tests quick; the default is 2 s.
  server = await TestServer.start({ DATABASE_URL: db.url, DELIVERY_CHECK_MS: '200' });
});

afterAll(async () => {
  await Promise.all(users.map((u) => u.closeSockets()));
  await server?.stop();
  await db?.drop();
});

async function user(name: string, options: { expiresIn?: string } = {}): Promise<TestUser> {
  const u = await server.user(uid(name), name, options);
  users.push(u);
  return u;
}

const SEND = 'mutation($c: ID!, $b: String!, $m: String!) { sendMessage(conversationId: $c, body: $b, clientMessageId: $m) { seq } }';
const MESSAGE_ADDED = 'subscription($c: ID!, $a: Int) { messageAdded(conversationId: $c, afterSeq: $a) { seq body } }';
const INBOX = 'subscription { inbox { __typename ... on Message { conversationId seq body } ... on ConversationLeft { conversationId } } }';
const PRESENCE = 'subscription($c: ID) { presence(conversationId: $c) { user { id } online } }';
const TYPING = 'subscription($c: ID!) { typing(conversationId: $c) { user { id } typing } }';

const send = async (u: TestUser, c: string, body: string) => (await u.ok(SEND, { c, b: body, m: uid('m') })).sendMessage.seq as number;
const dm = async (a: TestUser, b: TestUser) =>
  (await a.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: b.id })).startDirectConversation.id as string;
const group = async (owner: TestUser, members: TestUser[]) =>
  (await owner.ok('mutation($m: [ID!]!) { createGroup(title: "g", memberIds: $m) { id } }', { m: members.map((m) => m.id) })).createGroup.id as string;
const remove = (owner: TestUser, c: string, u: TestUser) =>
  owner.ok('mutation($c: ID!, $u: ID!) { removeMember(conversationId: $c, userId: $u) { id } }', { c, u: u.id });

/** Commits a message the way a send does, but publishes nothing: an announcement lost for good. */
async function commitUnannounced(c: string, sender: TestUser, body: string): Promise<void> {
  await db.query(
    `WITH conv AS (UPDATE conversations SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq)
     INSERT INTO messages (conversation_id, seq, id, sender_id, body, client_message_id)
     SELECT $1, last_seq, gen_random_uuid(), $2, $3, $4 FROM conv`,
    [c, sender.id, body, uid('lost')],
  );
}

describe.each(TRANSPORTS)('over %s', (transport) => {
  it('delivers live to a subscriber who holds no other connection (delivery is routed by subscription, not presence)', async () => {
    const [alice, bob] = [await user('alice'), await user('bob')];
    const c = await dm(alice, bob);
    const live = server.app.realtime.hub.stats().live;
    const inbox = bob.subscribeVia(transport, INBOX);
    const one = bob.subscribeVia(transport, MESSAGE_ADDED, { c });
    await server.live(live + 2);
    await send(alice, c, 'live 1');
    await send(alice, c, 'live 2');
    await inbox.count(2);
    await one.count(2);
    expect(inbox.data.map((d) => d.inbox.body)).toEqual(['live 1', 'live 2']);
    expect(one.data.map((d) => d.messageAdded.seq)).toEqual([1, 2]);
  });

  it('delivers a committed message whose announcement was lost, though nothing follows it', async () => {
    const [alice, bob] = [await user('alice'), await user('bob')];
    const c = await dm(alice, bob);
    const sub = bob.subscribeVia(transport, MESSAGE_ADDED, { c, a: 0 });
    await send(alice, c, 'one');
    await sub.count(1);
    await commitUnannounced(c, alice, 'the last word');
    // No later message reveals the gap: the position check must.
    await sub.count(2, 10_000);
    expect(sub.data.map((d) => [d.messageAdded.seq, d.messageAdded.body])).toEqual([
      [1, 'one'],
      [2, 'the last word'],
    ]);
  });

  it("ends a conversation's presence subscription with FORBIDDEN when the viewer is removed, and shows nothing after", async () => {
    const [alice, bob, carol] = [await user('alice'), await user('bob'), await user('carol')];
    const c = await group(alice, [bob, carol]);
    const watch = bob.subscribeVia(transport, PRESENCE, { c });
    await watch.count(2); // alice and carol, offline
    await remove(alice, c, bob);
    await watch.until((s) => s.ended, 5000, 'the end');
    expect(watch.errorCode).toBe('FORBIDDEN');
    const seen = watch.results.length;
    // Carol comes and goes: none of it may reach Bob any more.
    const carolSocket = carol.socket();
    await new Promise<void>((resolve) => carolSocket.on('connected', () => resolve()));
    await carol.closeSockets();
    await settle(300);
    expect(watch.results.length).toBe(seen);
  });

  it('ends a typing subscription with FORBIDDEN when the viewer is removed', async () => {
    const [alice, bob, carol] = [await user('alice'), await user('bob'), await user('carol')];
    const c = await group(alice, [bob, carol]);
    const sub = bob.subscribeVia(transport, TYPING, { c });
    await server.listening(bob.id);
    await carol.ok('mutation($c: ID!) { setTyping(conversationId: $c) }', { c });
    await sub.count(1);
    await remove(alice, c, bob);
    await sub.until((s) => s.ended, 5000, 'the end');
    expect(sub.errorCode).toBe('FORBIDDEN');
  });

  it('ends even when the removal was never announced (the position check notices)', async () => {
    const [alice, bob, carol] = [await user('alice'), await user('bob'), await user('carol')];
    const c = await group(alice, [bob, carol]);
    const sub = bob.subscribeVia(transport, MESSAGE_ADDED, { c, a: 0 });
    await send(alice, c, 'before');
    await sub.count(1);
    // What removeMember commits, without its event.
    await db.query('DELETE FROM conversation_members WHERE conversation_id = $1 AND user_id = $2', [c, bob.id]);
    await db.query('DELETE FROM user_conversations WHERE conversation_id = $1 AND user_id = $2', [c, bob.id]);
    await db.query('UPDATE users SET inbox_version = inbox_version + 1 WHERE id = $1', [bob.id]);
    await sub.until((s) => s.ended, 10_000, 'the end');
    expect(sub.errorCode).toBe('FORBIDDEN');
  });

  it('ends the stream when the token expires', async () => {
    const [alice, eve] = [await user('alice'), await user('eve', { expiresIn: '3s' })];
    const c = await dm(alice, eve);
    const sub = eve.subscribeVia(transport, MESSAGE_ADDED, { c });
    await server.listening(eve.id);
    await sub.until((s) => s.ended, 15_000, 'the end');
    // WebSocket: the socket closes with 4403 (clients reconnect with a fresh token). SSE: the stream ends with UNAUTHENTICATED.
    if (transport === 'ws') expect((sub.error as { code?: number }).code).toBe(4403);
    else expect(sub.errorCode).toBe('UNAUTHENTICATED');
  }, 30_000);

  it('refuses an operation over the size limit with SIZE_LIMIT_EXCEEDED', async () => {
    const alice = await user('alice');
    const padding = ' '.repeat(17 * 1024);
    const sub = alice.subscribeVia(transport, `subscription {${padding} inbox { __typename } }`);
    await sub.until((s) => s.ended || s.results.length > 0, 5000, 'an answer');
    expect(sub.errorCode).toBe('SIZE_LIMIT_EXCEEDED');
  });
});

describe.each(TRANSPORTS)('shutdown, over %s', (transport) => {
  it('ends every stream without completing it, so clients reconnect elsewhere and resume', async () => {
    const other = await TestServer.start({ DATABASE_URL: db.url });
    try {
      const alice = await other.user(uid('alice'), 'alice');
      users.push(alice);
      const sub = alice.subscribeVia(transport, INBOX);
      await other.listening(alice.id);
      await other.stop();
      await sub.until((s) => s.ended, 10_000, 'the end');
      // Not `complete` (which means "this subscription is over"): an error the client retries.
      expect(sub.completed).toBe(false);
      expect(sub.error).toBeDefined();
    } finally {
      await other.stop();
    }
  });
});

const SEQ_ONLY = 'subscription($c: ID!) { messageAdded(conversationId: $c) { seq } }';

describe('a subscriber that stops reading', () => {
  // A small bound so that a paused client fills it quickly (the default is 8 MiB), yet above what a
  // reader that keeps up holds during a burst; a keepalive long enough not to drop the paused one first.
  let tight: TestServer;
  beforeAll(async () => {
    tight = await TestServer.start({ DATABASE_URL: db.url, MAX_SOCKET_BUFFER_BYTES: String(1024 * 1024), WS_KEEPALIVE_MS: '120000' });
  });
  afterAll(async () => {
    await tight?.stop();
  });

  /** Sends big messages until `ended` says the server gave up on the reader (or a generous number was sent). */
  /** Connections the server has cut off as slow consumers (its /metrics), by transport. */
  async function cuts(transport: 'ws' | 'sse'): Promise<number> {
    const text = await fetch(`http://127.0.0.1:${tight.port}/metrics`).then((r) => r.text());
    return Number(new RegExp(`^chat_slow_consumers_cut_total\\{transport="${transport}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  }

  /**
   * Sends until `ended` says the server cut the slow reader off. Decided on
   * the server's side: a paused reader cannot see its close frame, and a
   * flood that went on past ws's close timeout (30 s, on a loaded machine)
   * would see the socket destroyed (1006) instead.
   */
  async function flood(sender: TestUser, c: string, ended: () => boolean | Promise<boolean>): Promise<number> {
    const body = 'x'.repeat(4000);
    let sent = 0;
    while (!(await ended()) && sent < 4000) {
      await Promise.all(Array.from({ length: 20 }, () => sender.ok(SEND, { c, b: body, m: uid('flood') })));
      sent += 20;
    }
    return sent;
  }

  it('closes a WebSocket that falls too far behind with 1013, and others keep receiving', async () => {
    const [alice, bob, carol] = [await tight.user(uid('alice'), 'alice'), await tight.user(uid('bob'), 'bob'), await tight.user(uid('carol'), 'carol')];
    users.push(alice, bob, carol);
    const c = await group(alice, [bob, carol]);
    const { default: WebSocket } = await import('ws');
    const before = tight.app.realtime.hub.stats().live;
    const socket = new WebSocket(tight.wsUrl, 'graphql-transport-ws');
    let closedWith: number | undefined;
    socket.on('close', (code) => (closedWith = code));
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${bob.token}` } }));
    await new Promise((resolve) => socket.once('message', resolve)); // connection_ack
    socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: MESSAGE_ADDED, variables: { c } } }));
    // Carol keeps up (and asks for small payloads, so a burst never fills her buffer on a loaded machine).
    const healthy = carol.subscribe(SEQ_ONLY, { c });
    await tight.live(before + 2);
    // Bob stops reading: the kernel buffers fill, then the server's.
    const cutBefore = await cuts('ws');
    (socket as unknown as { _socket: { pause(): void } })._socket.pause();
    const sent = await flood(alice, c, async () => closedWith !== undefined || (await cuts('ws')) > cutBefore);
    (socket as unknown as { _socket: { resume(): void } })._socket.resume();
    await new Promise<void>((resolve) => (closedWith !== undefined ? resolve() : socket.once('close', () => resolve())));
    expect(closedWith).toBe(1013);
    expect(await cuts('ws')).toBe(cutBefore + 1);
    await healthy.until((h) => h.data.at(-1)?.messageAdded.seq === sent, 60_000, `seq ${sent}`);
  }, 180_000);

  it('cuts off an event stream that falls too far behind, and others keep receiving', async () => {
    const [alice, bob, carol] = [await tight.user(uid('alice'), 'alice'), await tight.user(uid('bob'), 'bob'), await tight.user(uid('carol'), 'carol')];
    users.push(alice, bob, carol);
    const c = await group(alice, [bob, carol]);
    const http = await import('node:http');
    const before = tight.app.realtime.hub.stats().live;
    let ended = false;
    const response = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      const request = http.request(tight.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${bob.token}` },
      });
      request.on('response', resolve).on('error', reject);
      request.end(JSON.stringify({ query: MESSAGE_ADDED, variables: { c } }));
    });
    response.on('close', () => (ended = true)).on('error', () => (ended = true));
    response.pause(); // Bob stops reading
    const healthy = carol.subscribe(SEQ_ONLY, { c });
    await tight.live(before + 2);
    const cutBefore = await cuts('sse');
    const sent = await flood(alice, c, async () => ended || (await cuts('sse')) > cutBefore);
    response.resume();
    response.on('data', () => {});
    await new Promise<void>((resolve) => (ended ? resolve() : response.once('close', () => resolve())));
    expect(ended).toBe(true);
    expect(await cuts('sse')).toBe(cutBefore + 1);
    // Bob's subscription is over on the server too: only carol's is left.
    for (let waited = 0; tight.app.realtime.hub.stats().live > before + 1 && waited < 5000; waited += 50) await settle(50);
    expect(tight.app.realtime.hub.stats().live).toBe(before + 1);
    await healthy.until((h) => h.data.at(-1)?.messageAdded.seq === sent, 60_000, `seq ${sent}`);
  }, 180_000);
});
