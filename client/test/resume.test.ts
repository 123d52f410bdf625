import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { TestServer, uid } from '../../test/support/server.js';
import { startTcpProxy, type TcpProxy } from '../../test/support/tcp-proxy.js';
import type { ChatClient, Cursors, JoinedEvent, LeftEvent } from '../src/index.js';
import { range, seqCursors, session, waitFor } from './helpers.js';

let db: TestDatabase;
let server: TestServer;
const proxies: TcpProxy[] = [];
const sessions: ChatClient[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  server = await TestServer.start({ DATABASE_URL: db.url });
});

afterAll(async () => {
  await Promise.all(sessions.map((s) => s.close()));
  await Promise.all(proxies.map((p) => p.close()));
  await server?.stop();
  await db?.drop();
});

async function proxy(target = server): Promise<TcpProxy> {
  const p = await startTcpProxy(target.port);
  proxies.push(p);
  return p;
}

async function users<const Names extends string[]>(...names: Names): Promise<{ [K in keyof Names]: string }> {
  const ids = names.map(uid) as { [K in keyof Names]: string };
  for (const id of ids) await server.user(id);
  return ids;
}

/** Sends `count` messages one after another, numbered from `from`. */
async function sendMany(chat: ChatClient, conversationId: string, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) await chat.send(conversationId, `m${i}`);
}

describe('delivery across disconnects', () => {
  it('delivers every message exactly once, in order, to a subscriber whose socket is cut mid-stream and again during catch-up', async () => {
    const [aliceId, bobId] = await users('alice', 'bob');
    const net = await proxy();
    const alice = await session(server, aliceId, sessions);
    const bob = await session(net, bobId, sessions, { catchUpPageSize: 25 });
    let reconnects = 0;
    bob.chat.onStatus((status) => status === 'connecting' && reconnects++);
    const { id: c } = await alice.chat.startDirectConversation(bobId);
    await bob.chat.ready();
    await server.listening(bobId);

    // Cut while messages stream in: three times, at points the subscriber has reached.
    const sending = sendMany(alice.chat, c, 1, 150);
    for (const reached of [20, 60, 100]) {
      await waitFor(() => bob.seqs(c).length >= reached, `bob to reach ${reached}`);
      net.cutAll();
    }
    await sending;
    await bob.until(c, 150);

    // Offline while 120 more are sent; back online, the catch-up takes pages
    // of 25 (eventsSince), and the second page's request cuts everything again.
    net.setOffline(true);
    await sendMany(alice.chat, c, 151, 120);
    const cutDuringCatchUp = net.cutOnRequest((request) => request.includes('EventsSince') && request.includes(c), { skip: 1 });
    net.setOffline(false);
    await cutDuringCatchUp;
    await sendMany(alice.chat, c, 271, 10);
    await bob.until(c, 280);

    expect(bob.seqs(c)).toEqual(range(1, 280));
    expect(bob.messages.filter((m) => m.conversationId === c).map((m) => m.body)).toEqual(range(1, 280).map((i) => `m${i}`));
    expect(bob.chat.getCursors()[c]?.afterSeq).toBe(280);
    expect(reconnects).toBeGreaterThanOrEqual(5);
  }, 90_000);

  it('fills the gap from eventsSince when a live event is lost, and drops a duplicated one', async () => {
    const [aliceId, bobId] = await users('alice', 'bob');
    const net = await proxy();
    const alice = await session(server, aliceId, sessions);
    const bob = await session(net, bobId, sessions);
    const { id: c } = await alice.chat.startDirectConversation(bobId);
    await bob.chat.ready();
    await server.listening(bobId);
    await sendMany(alice.chat, c, 1, 2);
    await bob.until(c, 2);

    const fetchedGap = net.waitForRequest((request) => request.includes('EventsSince') && request.includes(c));
    const lost = net.dropNextFrame((frame) => frame.includes(c) && frame.includes('"seq":3'));
    const doubled = net.duplicateNextFrame((frame) => frame.includes(c) && frame.includes('"seq":5'));
    await sendMany(alice.chat, c, 3, 4);
    await Promise.all([lost, doubled, fetchedGap]);
    await bob.until(c, 6);
    await sendMany(alice.chat, c, 7, 1);
    await bob.until(c, 7);
    expect(bob.seqs(c)).toEqual(range(1, 7));
  });

  it('resumes from cursors persisted by an earlier session: no gaps, no duplicates', async () => {
    const [aliceId, bobId, carolId] = await users('alice', 'bob', 'carol');
    const alice = await session(server, aliceId, sessions);
    const one = (await alice.chat.startDirectConversation(bobId)).id;
    const group = (await alice.chat.createGroup('resume', [bobId, carolId])).id;

    // First session: everything up to 5 (one) and 2 (group), saved as JSON on each change.
    let saved = '{}';
    const first = await session(server, bobId, sessions, { onCursorsChange: (cursors) => (saved = JSON.stringify(cursors)) });
    await first.chat.ready();
    await server.listening(bobId);
    await sendMany(alice.chat, one, 1, 5);
    await sendMany(alice.chat, group, 1, 2);
    await first.until(one, 5);
    await first.until(group, 2);
    await waitFor(() => (JSON.parse(saved) as Cursors)[one]?.afterSeq === 5 && (JSON.parse(saved) as Cursors)[group]?.afterSeq === 2, 'cursors saved');
    await first.chat.close();

    // Away: more messages in both, and Bob is removed from a third conversation.
    const removedFrom = (await alice.chat.createGroup('gone', [bobId])).id;
    await sendMany(alice.chat, one, 6, 4);
    await sendMany(alice.chat, group, 3, 3);
    // A cursor in SDK 0.1's format (a plain seq) is accepted too.
    const cursors = { ...(JSON.parse(saved) as Cursors), [removedFrom]: 0 };
    await alice.chat.removeMember(removedFrom, bobId);

    const second = await session(server, bobId, sessions, { cursors });
    const left: LeftEvent[] = [];
    second.chat.onLeft((event) => left.push(event));
    await second.chat.ready();
    await second.until(one, 9);
    await second.until(group, 5);
    await sendMany(alice.chat, one, 10, 1);
    await second.until(one, 10);
    expect(second.seqs(one)).toEqual(range(6, 10));
    expect(second.seqs(group)).toEqual(range(3, 5));
    expect(left).toEqual([{ type: 'left', conversationId: removedFrom, reason: null }]);
    expect(seqCursors(second.chat.getCursors())).toEqual({ [one]: 10, [group]: 5 });
  });

  it('announces a conversation joined while the socket was down and delivers its unread messages', async () => {
    const [aliceId, bobId] = await users('alice', 'bob');
    const net = await proxy();
    const alice = await session(server, aliceId, sessions);
    const bob = await session(net, bobId, sessions);
    const joined: JoinedEvent[] = [];
    bob.chat.onJoined((event) => joined.push(event));
    await bob.chat.ready();

    net.setOffline(true);
    await waitFor(() => bob.chat.status === 'connecting', 'bob to notice');
    const { id: c } = await alice.chat.createGroup('while you were away', [bobId]);
    await sendMany(alice.chat, c, 1, 3);
    net.setOffline(false);
    await bob.until(c, 3);
    await sendMany(alice.chat, c, 4, 1);
    await bob.until(c, 4);

    expect(bob.seqs(c)).toEqual(range(1, 4));
    expect(joined.map((event) => [event.conversationId, event.conversation?.title])).toEqual([[c, 'while you were away']]);
  });

  it('follows conversations joined live, and stops at ConversationLeft', async () => {
    const [aliceId, bobId] = await users('alice', 'bob');
    const alice = await session(server, aliceId, sessions);
    const bob = await session(server, bobId, sessions);
    const events: string[] = [];
    bob.chat.onEvent((event) => events.push(event.type === 'message' ? `message ${event.message.seq}` : `${event.type} ${event.type === 'left' ? event.reason : ''}`.trim()));
    await bob.chat.ready();
    await server.listening(bobId);

    const { id: g } = await alice.chat.createGroup('live', [bobId]);
    await sendMany(alice.chat, g, 1, 2);
    await bob.until(g, 2);
    await alice.chat.removeMember(g, bobId);
    await waitFor(() => events.includes('left REMOVED'), 'ConversationLeft');
    await sendMany(alice.chat, g, 3, 1);
    await alice.chat.addMembers(g, [bobId]);
    await sendMany(alice.chat, g, 4, 1);
    await bob.until(g, 4);

    expect(events).toEqual(['joined', 'message 1', 'message 2', 'left REMOVED', 'joined', 'message 4']);
    expect(bob.chat.getCursors()[g]?.afterSeq).toBe(4);
  });

  it('reconnects to a new instance after a restart (1012) and resumes where it was', async () => {
    const [aliceId, bobId] = await users('alice', 'bob');
    const net = await proxy();
    const alice = await session(server, aliceId, sessions);
    const bob = await session(net, bobId, sessions);
    const closes: string[] = [];
    bob.chat.onStatus((status) => closes.push(status));
    const { id: c } = await alice.chat.startDirectConversation(bobId);
    await bob.chat.ready();
    await server.listening(bobId);
    await sendMany(alice.chat, c, 1, 3);
    await bob.until(c, 3);

    const next = await TestServer.start({ DATABASE_URL: db.url });
    const nextAlice = await session(next, aliceId, sessions);
    net.setTarget(next.port);
    const old = server;
    server = next; // afterAll stops whichever is current
    await old.stop();
    await sendMany(nextAlice.chat, c, 4, 3);
    await bob.until(c, 6);
    expect(bob.seqs(c)).toEqual(range(1, 6));
    expect(closes).toContain('connecting');
  });
});
