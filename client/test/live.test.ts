import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { TestServer, uid } from '../../test/support/server.js';
import type { ChatClient, PresenceEvent, User } from '../src/index.js';
import { session, waitFor } from './helpers.js';

// Presence, typing and read receipts through the session, against a real server.

let db: TestDatabase;
let server: TestServer;
const sessions: ChatClient[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  server = await TestServer.start({ DATABASE_URL: db.url });
});

afterAll(async () => {
  await Promise.all(sessions.map((s) => s.close()));
  await server?.stop();
  await db?.drop();
});

async function users<const Names extends string[]>(...names: Names): Promise<{ [K in keyof Names]: string }> {
  const ids = names.map(uid) as { [K in keyof Names]: string };
  for (const id of ids) await server.user(id);
  return ids;
}

describe('presence', () => {
  it("reports contacts' current state, each change, and everyone again after a reconnect", async () => {
    const [aliceId, bobId] = await users('alice', 'bob');
    const alice = await session(server, aliceId, sessions);
    await alice.chat.startDirectConversation(bobId);
    const seen: PresenceEvent[] = [];
    alice.chat.onPresence((event) => seen.push(event));
    const states = () => seen.filter((e) => e.user.id === bobId).map((e) => e.online);
    await waitFor(() => states().length > 0, "bob's current state");
    expect(seen[0]).toEqual({ user: { id: bobId, name: bobId }, online: false });

    const bob = await session(server, bobId, sessions);
    await waitFor(() => states().at(-1) === true, 'bob online', 15_000, states);

    // A reconnect re-subscribes: the current state comes again (what
    // changed while the socket was down is repaired by it).
    const before = seen.length;
    alice.chat.reconnect();
    await waitFor(() => seen.length > before, 'the state after the reconnect', 15_000, states);
    expect(seen.at(-1)).toEqual({ user: { id: bobId, name: bobId }, online: true });

    await bob.chat.close();
    await waitFor(() => states().at(-1) === false, 'bob offline', 15_000, states);
  });

  it("watches one conversation's members; a non-member's watch ends with FORBIDDEN on onError", async () => {
    const [aliceId, bobId, carolId, eveId] = await users('alice', 'bob', 'carol', 'eve');
    const alice = await session(server, aliceId, sessions);
    const group = await alice.chat.createGroup('presence', [bobId, carolId]);
    const online = new Map<string, boolean>();
    alice.chat.onPresence((event) => online.set(event.user.id, event.online), { conversationId: group.id });
    await waitFor(() => online.size === 2, 'both members', 15_000, () => [...online]);
    expect([...online.keys()].sort()).toEqual([bobId, carolId].sort());
    await session(server, carolId, sessions);
    await waitFor(() => online.get(carolId) === true, 'carol online');

    const eve = await session(server, eveId, sessions);
    const events: PresenceEvent[] = [];
    eve.chat.onPresence((event) => events.push(event), { conversationId: group.id });
    await waitFor(() => eve.errors.some((e) => e.code === 'FORBIDDEN'), 'FORBIDDEN', 15_000, () => eve.errors);
    expect(events).toEqual([]);
  });
});

describe('typing', () => {
  it('shows who is typing, withdraws it on stopTyping, and drops an indicator that is not renewed', async () => {
    const [aliceId, bobId] = await users('alice', 'bob');
    const alice = await session(server, aliceId, sessions);
    const bob = await session(server, bobId, sessions);
    const dm = await alice.chat.startDirectConversation(bobId);
    const lists: User[][] = [];
    bob.chat.onTyping(dm.id, (typing) => lists.push(typing));
    const mine: User[][] = [];
    alice.chat.onTyping(dm.id, (typing) => mine.push(typing));
    await Promise.all([alice.chat.ready(), bob.chat.ready()]);
    // Typing is ephemeral (never repaired): notify only once both typing subscriptions are live.
    await waitFor(() => server.app.realtime.hub.typingWatchers(dm.id) >= 2, 'typing subscriptions');

    alice.chat.notifyTyping(dm.id);
    await waitFor(() => lists.at(-1)?.length === 1, 'alice typing', 15_000, () => lists);
    expect(lists.at(-1)).toEqual([{ id: aliceId, name: aliceId }]);
    alice.chat.stopTyping(dm.id);
    await waitFor(() => lists.at(-1)?.length === 0, 'alice stopped', 15_000, () => lists);

    // Announced once and never renewed: it lapses by itself (the server says 6 s).
    await new Promise((resolve) => setTimeout(resolve, 2_100)); // past the renewal throttle
    alice.chat.notifyTyping(dm.id);
    await waitFor(() => lists.at(-1)?.length === 1, 'alice typing again', 15_000, () => lists);
    await waitFor(() => lists.at(-1)?.length === 0, 'the indicator to lapse', 15_000, () => lists);
    expect(mine).toEqual([]); // never one's own
  });
});

describe('read receipts', () => {
  it('markSeen moves the read position forward only, and readReceipts shows every member', async () => {
    const [aliceId, bobId] = await users('alice', 'bob');
    const alice = await session(server, aliceId, sessions);
    const bob = await session(server, bobId, sessions);
    const dm = await alice.chat.startDirectConversation(bobId);
    for (let i = 1; i <= 4; i++) await alice.chat.send(dm.id, `m${i}`);

    bob.chat.markSeen(dm.id, 1);
    bob.chat.markSeen(dm.id, 3);
    bob.chat.markSeen(dm.id, 2); // behind: ignored
    await waitFor(async () => (await bob.chat.conversation(dm.id)).lastReadSeq === 3, 'read up to 3');
    expect((await bob.chat.conversation(dm.id)).unreadCount).toBe(1);

    const receipts = await alice.chat.readReceipts(dm.id);
    const positions = Object.fromEntries(receipts.map((r) => [r.user.id, r.lastReadSeq]));
    // Sending marks everything before it read: alice is at 4.
    expect(positions).toEqual({ [aliceId]: 4, [bobId]: 3 });
    expect(bob.errors).toEqual([]);
  });
});
