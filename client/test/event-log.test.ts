import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { TestServer, uid } from '../../test/support/server.js';
import { startTcpProxy, type TcpProxy } from '../../test/support/tcp-proxy.js';
import { documents, type ChatClient, type ChatEvent, type Cursors, type Message, type ReadReceipt } from '../src/index.js';
import { range, session, waitFor, type Recorded } from './helpers.js';

// The SDK on the conversation event log: edits, deletions, reactions,
// replies, threads, read receipts and renames, applied to the session's
// local model exactly once and in order, live and after time offline, and
// resumed from persisted cursors. Real server, real PostgreSQL; a real TCP
// proxy cuts the network.

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

async function proxy(): Promise<TcpProxy> {
  const p = await startTcpProxy(server.port);
  proxies.push(p);
  return p;
}

async function users<const Names extends string[]>(...names: Names): Promise<{ [K in keyof Names]: string }> {
  const ids = names.map(uid) as { [K in keyof Names]: string };
  for (const id of ids) await server.user(id, id.split('-')[0]);
  return ids;
}

/** Opens sessions and waits until each is live and heard by the server. */
async function live(...recorded: Recorded[]): Promise<void> {
  await Promise.all(recorded.map((r) => r.chat.ready()));
  for (const r of recorded) await server.listening((await r.chat.viewer()).id);
}

/** What a message looks like, for comparing the model with the server. */
const state = (m: Message | undefined) =>
  m && {
    seq: m.seq,
    body: m.body,
    deleted: m.deleted,
    edited: m.editedAt !== null,
    reactions: m.reactions.map((r) => `${r.reaction}${r.count}${r.reactedByViewer ? '*' : ''}`),
    threadReplyCount: m.threadReplyCount,
    replyTo: m.replyTo && `${m.replyTo.seq}:${m.replyTo.deleted ? '(deleted)' : m.replyTo.body}`,
  };

/** The server's view of a conversation for a user, read without touching the session's model. */
async function serverState(chat: ChatClient, conversationId: string) {
  const { messages } = await chat.request(documents.MessagesDocument, { conversationId, last: 100 });
  return messages.messages.map(state);
}

/** The session's model of the same messages. */
const modelState = (chat: ChatClient, conversationId: string) => chat.local.timeline(conversationId, { threadReplies: true }).map(state);

/** Waits until the session has applied every event of the conversation's log. */
async function caughtUp(recorded: Recorded, conversationId: string): Promise<void> {
  const { lastEventSeq } = await recorded.chat.conversation(conversationId);
  await waitFor(() => (recorded.chat.getCursors()[conversationId]?.afterEventSeq ?? -1) >= lastEventSeq, `event ${lastEventSeq} of ${conversationId}`, 20_000, () => ({
    cursors: recorded.chat.getCursors(),
    errors: recorded.errors.map((e) => `${e.code}: ${e.message}`),
  }));
}

/**
 * One message's changes as [action, actor, reaction], without compacted ones:
 * the server sends a live event compacted, without its actor, when it read it
 * back from the database (its position check ran before the publish arrived),
 * and one compacted event may then stand for several changes.
 */
const liveChanges = (recorded: Recorded, conversationId: string, seq: number) =>
  recorded.changes(conversationId, seq).flatMap((e) => (e.catchUp ? [] : [[e.action, e.actor?.id ?? null, e.reaction]]));

/** Whether `live` is `expected` with some steps left out (those that came compacted), in order. */
const followsFrom = (live: unknown[][], expected: unknown[][]) => {
  let i = 0;
  for (const step of expected) if (i < live.length && JSON.stringify(live[i]) === JSON.stringify(step)) i++;
  return i === live.length;
};

/** Event numbers the session applied to one conversation, in order (message events carry none). */
const logSeqs = (events: ChatEvent[], conversationId: string) =>
  events.flatMap((e) => ('eventSeq' in e && e.conversationId === conversationId ? [e.eventSeq] : []));

describe('changes arriving live', () => {
  it('shows an edit, reactions, a quote, a thread reply and a deletion to the other member as they happen, in the model and as events', async () => {
    const [aliceId, bobId] = await users('alice', 'bob');
    const alice = await session(server, aliceId, sessions);
    const bob = await session(server, bobId, sessions);
    const { id: c } = await alice.chat.startDirectConversation(bobId);
    await live(alice, bob);
    await alice.chat.send(c, 'hello');
    await bob.until(c, 1);

    await alice.chat.edit(c, 1, 'hello, edited');
    await bob.chat.react(c, 1, '👍');
    await alice.chat.react(c, 1, '👍');
    await alice.chat.react(c, 1, '🎉');
    // Each side's model knows its own reactions (the live payloads do not say).
    const summary = (r: Recorded) => {
      const m = state(r.chat.local.message(c, 1));
      return m && `${m.body}${m.edited ? ' (edited)' : ''} ${m.reactions.join(' ')}`;
    };
    await waitFor(() => summary(bob) === 'hello, edited (edited) 👍2* 🎉1', "bob's model", 15_000, () => summary(bob));
    await waitFor(() => summary(alice) === 'hello, edited (edited) 👍2* 🎉1*', "alice's model", 15_000, () => summary(alice));
    // As events, each with who did it.
    const expected = [
      ['EDITED', aliceId, null],
      ['REACTION_ADDED', bobId, '👍'],
      ['REACTION_ADDED', aliceId, '👍'],
      ['REACTION_ADDED', aliceId, '🎉'],
    ];
    const seen = liveChanges(bob, c, 1);
    expect(followsFrom(seen, expected), JSON.stringify(seen)).toBe(true);
    expect(bob.changes(c, 1).at(-1)?.message.reactions).toEqual([
      { reaction: '👍', count: 2, reactedByViewer: true },
      { reaction: '🎉', count: 1, reactedByViewer: false },
    ]);

    // A quote, then a reply in message 1's thread.
    const quote = await bob.chat.reply(c, 1, 'a quote');
    expect(quote).toMatchObject({ seq: 2, replyToSeq: 1, replyTo: { seq: 1, body: 'hello, edited' } });
    const inThread = await bob.chat.sendInThread(c, 1, 'in the thread');
    expect(inThread).toMatchObject({ seq: 3, threadRootSeq: 1 });
    await alice.until(c, 3);
    await waitFor(() => alice.changes(c, 1).at(-1)?.message.threadReplyCount === 1, 'the thread reply on its root');
    expect(alice.changes(c, 1).at(-1)?.message).toMatchObject({ threadReplyCount: 1, threadLastReply: { seq: 3, body: 'in the thread' } });
    expect(alice.chat.local.timeline(c).map((m) => m.seq)).toEqual([1, 2]); // thread replies live under their root
    expect(alice.chat.local.thread(c, 1).map((m) => m.body)).toEqual(['in the thread']);

    // Deleted: a tombstone in its place, and the quote of it shows it deleted.
    await alice.chat.delete(c, 1);
    await waitFor(() => bob.changes(c, 1).some((e) => e.action === 'DELETED'), 'the deletion'); // compacted or not, its last change is known
    expect(state(bob.chat.local.message(c, 1))).toMatchObject({ body: '', deleted: true, reactions: [] });
    expect(state(bob.chat.local.message(c, 2))?.replyTo).toBe('1:(deleted)');

    // Every event once, in ascending order; the model is what the server holds.
    await caughtUp(bob, c);
    const seqs = logSeqs(bob.events, c);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(modelState(bob.chat, c)).toEqual(await serverState(bob.chat, c));
    expect(bob.seqs(c)).toEqual([1, 2, 3]);
  });

  it("keeps the viewer's own reaction flags when another device of the same user reacts", async () => {
    const [aliceId, bobId] = await users('alice', 'bob');
    const alice = await session(server, aliceId, sessions);
    const laptop = await session(server, bobId, sessions);
    const phone = await session(server, bobId, sessions);
    const { id: c } = await alice.chat.startDirectConversation(bobId);
    await live(alice, laptop, phone);
    await alice.chat.send(c, 'react to me');
    await laptop.until(c, 1);

    await phone.chat.react(c, 1, '❤️');
    await alice.chat.react(c, 1, '❤️');
    await phone.chat.unreact(c, 1, '❤️');
    await phone.chat.react(c, 1, 'party_parrot');
    // Four live events (or fewer, compacted, if the server had to repair their order; the session then asks whose they are).
    const reactions = () => state(laptop.chat.local.message(c, 1))?.reactions.join(' ');
    await waitFor(() => reactions() === '❤️1 party_parrot1*', "the laptop's flags", 15_000, () => ({
      reactions: reactions(),
      changes: laptop.changes(c, 1).map((e) => [e.eventSeq, e.action, e.catchUp, e.actor?.id === bobId ? 'bob' : e.actor?.id, e.reaction, state(e.message)?.reactions]),
    }));
    await caughtUp(laptop, c);
    expect(modelState(laptop.chat, c)).toEqual(await serverState(laptop.chat, c));
  });

  it("knows a reaction is the viewer's own even when its live event was lost and the server delivered it compacted, without an actor", async () => {
    const [aliceId, bobId] = await users('alice', 'bob');
    const alice = await session(server, aliceId, sessions);
    const laptop = await session(server, bobId, sessions);
    const { id: c } = await alice.chat.startDirectConversation(bobId);
    await live(alice, laptop);
    await alice.chat.send(c, 'react to me');
    await laptop.until(c, 1);

    // What Bob's addReaction from another device commits, without its
    // announcement: the server's position check finds it and delivers it as
    // a compacted event, which does not say who reacted.
    await db.query(`SELECT outcome FROM chat_react($1::uuid, 1, $2, '🙌', true, now(), 20, 100, NULL, NULL)`, [c, bobId]);
    await waitFor(() => laptop.changes(c, 1).length > 0, 'the repaired event (within the delivery bound)');
    expect(laptop.changes(c, 1)[0]).toMatchObject({ catchUp: true, actor: null });
    // The session asks the server whose it is.
    await waitFor(() => state(laptop.chat.local.message(c, 1))?.reactions[0] === '🙌1*', "the viewer's own flag");
    expect(laptop.changes(c, 1).at(-1)).toMatchObject({ action: 'UPDATED', message: { reactions: [{ reaction: '🙌', count: 1, reactedByViewer: true }] } });
  });

  it('pushes read receipts live: "seen by" follows markSeen, sends and new members without polling', async () => {
    const [aliceId, bobId, carolId] = await users('alice', 'bob', 'carol');
    const alice = await session(server, aliceId, sessions);
    const bob = await session(server, bobId, sessions);
    const { id: g } = await alice.chat.createGroup('receipts', [bobId]);
    // Another tab of Alice's, listening before it has even connected.
    const tab = await session(server, aliceId, sessions);
    let tabReceipts: ReadReceipt[] = [];
    tab.chat.onReadReceipts(g, (next) => (tabReceipts = next));
    await live(alice, bob, tab);
    await alice.chat.send(g, 'one');
    await alice.chat.send(g, 'two');
    await bob.until(g, 2);

    let receipts: ReadReceipt[] = [];
    const off = alice.chat.onReadReceipts(g, (next) => (receipts = next));
    const readBy = (id: string) => receipts.find((r) => r.user.id === id)?.lastReadSeq;
    await waitFor(() => readBy(aliceId) === 2 && readBy(bobId) === 0, 'the first list');

    bob.chat.markSeen(g, 1);
    await waitFor(() => readBy(bobId) === 1, "bob's receipt");
    await bob.chat.send(g, 'three'); // sending moves the sender's read position too
    await waitFor(() => readBy(bobId) === 3, "bob's own message");
    await alice.chat.addMembers(g, [carolId]);
    await waitFor(() => readBy(carolId) === 3, 'carol, who joined having seen what was there');
    await alice.chat.removeMember(g, carolId);
    await waitFor(() => readBy(carolId) === undefined, 'carol gone');
    expect(alice.events.filter((e) => e.type === 'receipt' && e.conversationId === g).map((e) => e.type === 'receipt' && [e.user.id, e.lastReadSeq])).toEqual([[bobId, 1]]);
    expect(await alice.chat.readReceipts(g)).toEqual(receipts);
    await waitFor(() => JSON.stringify(tabReceipts) === JSON.stringify(receipts), 'the early tab to follow too');
    off();
  });

  it('renames a group for every member, and pages a thread into the model', async () => {
    const [aliceId, bobId] = await users('alice', 'bob');
    const alice = await session(server, aliceId, sessions);
    const bob = await session(server, bobId, sessions);
    const { id: g } = await alice.chat.createGroup('before', [bobId]);
    await live(alice, bob);
    await bob.chat.rename(g, 'after');
    await waitFor(() => alice.events.some((e) => e.type === 'renamed' && e.title === 'after'), 'the rename');
    expect(alice.chat.local.title(g)).toBe('after');

    await alice.chat.send(g, 'root');
    for (let i = 1; i <= 5; i++) await bob.chat.sendInThread(g, 1, `reply ${i}`);
    // A third session, started afterwards, loads the thread's newest page, then the one before.
    const later = await session(server, aliceId, sessions);
    await later.chat.ready();
    const page = await later.chat.loadThread(g, 1, { last: 3 });
    expect(page.messages.map((m) => m.body)).toEqual(['reply 3', 'reply 4', 'reply 5']);
    expect(page.hasMore).toBe(true);
    await later.chat.loadThread(g, 1, { before: page.messages[0]!.seq });
    expect(later.chat.local.thread(g, 1).map((m) => m.body)).toEqual(range(1, 5).map((i) => `reply ${i}`));
    expect(later.messages).toEqual([]); // history is not news: nothing was delivered as new
  });
});

describe('your own sends', () => {
  it('are delivered to onMessage before send() resolves, also in a conversation started a moment ago', async () => {
    const [aliceId] = await users('alice');
    const alice = await session(server, aliceId, sessions);
    await live(alice);
    // Each time the conversation's announcement and the send's answer race.
    for (let i = 1; i <= 5; i++) {
      const [otherId] = await users('other');
      const { id } = await alice.chat.startDirectConversation(otherId);
      const sent = await alice.chat.send(id, `hello ${i}`);
      expect(alice.seqs(id)).toEqual([sent.seq]);
    }
    // And later: nothing twice.
    await alice.chat.send(alice.messages[0]!.conversationId, 'again');
    expect(alice.seqs(alice.messages[0]!.conversationId)).toEqual([1, 2]);
  });
});

describe('changes made while offline', () => {
  it('arrive once, compacted, on reconnect: a message edited 50 times comes in its final state, a deleted one as a tombstone', async () => {
    const [aliceId, bobId] = await users('alice', 'bob');
    const net = await proxy();
    const alice = await session(server, aliceId, sessions);
    const bob = await session(net, bobId, sessions, { catchUpPageSize: 2 });
    const phone = await session(server, bobId, sessions); // Bob's other device stays online
    const { id: c } = await alice.chat.startDirectConversation(bobId);
    await live(alice, bob, phone);
    for (const body of ['m1', 'm2', 'm3']) await alice.chat.send(c, body);
    await bob.until(c, 3);
    const before = bob.events.length;

    net.setOffline(true);
    await waitFor(() => bob.chat.status === 'connecting', 'bob to notice');
    for (let i = 1; i <= 50; i++) await alice.chat.edit(c, 1, `m1 v${i}`);
    await alice.chat.delete(c, 2);
    await phone.chat.react(c, 3, '👍');
    await alice.chat.react(c, 3, '👍');
    await alice.chat.sendInThread(c, 3, 'thread reply');
    await alice.chat.send(c, 'm5');
    phone.chat.markSeen(c, 5);
    await waitFor(async () => (await alice.chat.readReceipts(c)).some((r) => r.user.id === bobId && r.lastReadSeq === 5), "the phone's receipt");
    net.setOffline(false);
    await caughtUp(bob, c);

    const after = bob.events.slice(before);
    const described = after.map((e) =>
      e.type === 'message' ? `message ${e.message.seq}` : e.type === 'messageChanged' ? `${e.action} ${e.seq}` : e.type === 'receipt' ? `receipt ${e.lastReadSeq}` : e.type,
    );
    // Once each, in the order of their last change; 49 of the 50 edits were superseded.
    expect(described).toEqual(['EDITED 1', 'DELETED 2', 'message 4', 'THREAD_REPLIED 3', 'message 5', 'receipt 5']);
    expect(after.every((e) => !('catchUp' in e) || e.catchUp)).toBe(true);
    expect(bob.changes(c, 1).at(-1)?.message.body).toBe('m1 v50');
    // Bob's own reaction (from his phone) is his in the model: the catch-up is a query, it says so.
    expect(state(bob.chat.local.message(c, 3))).toMatchObject({ reactions: ['👍2*'], threadReplyCount: 1 });
    expect(modelState(bob.chat, c)).toEqual(await serverState(bob.chat, c));
    expect(bob.seqs(c)).toEqual([1, 2, 3, 4, 5]);
  });

  it('sends edits and reactions made offline once the network is back, once each and in the order they were made', async () => {
    const [aliceId, bobId] = await users('alice', 'bob');
    const net = await proxy();
    const alice = await session(server, aliceId, sessions);
    const bob = await session(net, bobId, sessions);
    const { id: c } = await alice.chat.startDirectConversation(bobId);
    await live(alice, bob);
    await bob.chat.send(c, 'tpyo');
    await alice.until(c, 1);

    net.setOffline(true);
    await waitFor(() => bob.chat.status === 'connecting', 'bob to notice');
    const writes = Promise.all([bob.chat.edit(c, 1, 'typo'), bob.chat.edit(c, 1, 'no typo'), bob.chat.react(c, 1, '✅')]);
    await waitFor(() => bob.errors.some((e) => e.code === 'NETWORK_ERROR'), 'a failed attempt');
    // Back online, the first edit is made but its answer is lost on the way
    // back: the retry is a no-op, and the later writes still come after it.
    const lostAnswer = net.loseNextResponse((request) => request.includes('EditMessage'));
    net.setOffline(false);
    await lostAnswer;
    const [, last] = await writes;
    expect(last.body).toBe('no typo');
    await caughtUp(alice, c);
    // Once each, in order (and no more events than writes: the retried edit changed nothing).
    const seen = liveChanges(alice, c, 1);
    expect(followsFrom(seen, [['EDITED', bobId, null], ['EDITED', bobId, null], ['REACTION_ADDED', bobId, '✅']]), JSON.stringify(seen)).toBe(true);
    expect(alice.changes(c, 1).length).toBeLessThanOrEqual(3);
    expect(alice.changes(c, 1).at(-1)?.message.body).toBe('no typo');
    expect(state(alice.chat.local.message(c, 1))).toMatchObject({ body: 'no typo', reactions: ['✅1'] });
    expect(state(bob.chat.local.message(c, 1))).toMatchObject({ body: 'no typo', reactions: ['✅1*'] });
  });
});

describe('exactly once, in order, across reconnects', () => {
  it('applies every event once and in ascending order while the socket is cut again and again, and ends with the server’s state', async () => {
    const [aliceId, bobId] = await users('alice', 'bob');
    const net = await proxy();
    const alice = await session(server, aliceId, sessions);
    const phone = await session(server, bobId, sessions);
    const bob = await session(net, bobId, sessions, { catchUpPageSize: 5 });
    const { id: c } = await alice.chat.startDirectConversation(bobId);
    await live(alice, bob, phone);

    // A workload of sends, edits, reactions (Bob's from his phone), thread
    // replies and deletions; the socket is cut at three points, one live
    // event is lost and one is delivered twice.
    let reconnects = 0;
    bob.chat.onStatus((status) => status === 'connecting' && reconnects++);
    let sent = 0;
    // A change the server refuses (editing a tombstone, reacting to one) changes nothing: part of the workload.
    const refused = () => {};
    const cuts = new Set([15, 35, 55]);
    const lost = net.dropNextFrame((frame) => frame.includes('REACTION_ADDED'));
    const doubled = net.duplicateNextFrame((frame) => frame.includes('"EDITED"'));
    for (let step = 1; step <= 70; step++) {
      if (cuts.has(step)) {
        await waitFor(() => bob.chat.status === 'live', 'bob live again', 20_000);
        net.cutAll();
      }
      if (step % 3 !== 0 || sent < 3) {
        sent++;
        await (sent % 7 === 0 ? alice.chat.sendInThread(c, 1, `t${sent}`) : alice.chat.send(c, `m${sent}`));
      } else if (step % 9 === 0) await phone.chat.react(c, step % sent || 1, '👍').catch(refused);
      else if (step % 15 === 0) await alice.chat.delete(c, sent - 1);
      else await alice.chat.edit(c, sent - 2, `edited at step ${step}`).catch(refused);
    }
    await Promise.all([lost, doubled]);
    await alice.chat.send(c, 'the end');
    sent++;
    await bob.until(c, sent, 30_000);
    await caughtUp(bob, c);

    expect(bob.seqs(c)).toEqual(range(1, sent));
    const seqs = logSeqs(bob.events, c);
    // Ascending, never repeated (a thread reply's root shares its reply's number).
    const changes = bob.events.filter((e) => e.type === 'messageChanged').map((e) => e.type === 'messageChanged' && `${e.eventSeq}:${e.seq}`);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(changes).size).toBe(changes.length);
    expect(modelState(bob.chat, c)).toEqual(await serverState(bob.chat, c));
    expect(reconnects).toBeGreaterThanOrEqual(cuts.size);
  }, 120_000);
});

describe('cursors persisted and resumed', () => {
  it('resumes from saved cursors with exactly what changed since: new messages once, changed ones compacted, live after', async () => {
    const [aliceId, bobId] = await users('alice', 'bob');
    const alice = await session(server, aliceId, sessions);
    const { id: g } = await alice.chat.createGroup('saved', [bobId]);
    let saved = '{}';
    const first = await session(server, bobId, sessions, { onCursorsChange: (cursors) => (saved = JSON.stringify(cursors)) });
    await live(first);
    for (const body of ['one', 'two', 'three']) await alice.chat.send(g, body);
    await first.until(g, 3);
    await caughtUp(first, g);
    await waitFor(() => (JSON.parse(saved) as Cursors)[g]?.afterEventSeq === first.chat.getCursors()[g]?.afterEventSeq, 'cursors saved');
    await first.chat.close();

    // Away: an edit (three times), a reaction, a rename, two new messages.
    for (const body of ['one!', 'one!!', 'one!!!']) await alice.chat.edit(g, 1, body);
    await alice.chat.react(g, 2, '👀');
    await alice.chat.rename(g, 'renamed');
    await alice.chat.send(g, 'four');
    await alice.chat.send(g, 'five');

    const second = await session(server, bobId, sessions, { cursors: JSON.parse(saved) as Cursors });
    await live(second);
    await caughtUp(second, g);
    await alice.chat.edit(g, 4, 'four, live');
    await waitFor(() => second.changes(g, 4).length === 1, 'the live edit'); // EDITED, compacted or not
    const described = second.events.map((e) =>
      e.type === 'message' ? `message ${e.message.seq}` : e.type === 'messageChanged' ? `${e.action} ${e.seq} ${e.message.body}` : e.type === 'renamed' ? `renamed ${e.title}` : e.type,
    );
    expect(described).toEqual(['EDITED 1 one!!!', 'UPDATED 2 two', 'renamed renamed', 'message 4', 'message 5', 'EDITED 4 four, live']);
    expect(second.chat.local.title(g)).toBe('renamed');
    const { lastEventSeq } = await alice.chat.conversation(g);
    expect(second.chat.getCursors()).toEqual({ [g]: { afterEventSeq: lastEventSeq, afterSeq: 5 } });
  });

  it("accepts cursors saved by SDK 0.1 (plain seqs): delivers the messages after them, then the event log from there on", async () => {
    const [aliceId, bobId] = await users('alice', 'bob');
    const alice = await session(server, aliceId, sessions);
    const { id: c } = await alice.chat.startDirectConversation(bobId);
    for (let i = 1; i <= 5; i++) await alice.chat.send(c, `m${i}`);
    await alice.chat.edit(c, 4, 'm4, edited before the upgrade');

    const bob = await session(server, bobId, sessions, { cursors: { [c]: 3 } });
    await live(bob);
    await bob.until(c, 5);
    await alice.chat.edit(c, 5, 'm5, edited after');
    await waitFor(() => bob.changes(c, 5).length === 1, 'the live edit');
    expect(bob.messages.map((m) => m.body)).toEqual(['m4, edited before the upgrade', 'm5']);
    expect(bob.changes(c, 5)[0]!.message.body).toBe('m5, edited after');
    const { lastEventSeq } = await alice.chat.conversation(c);
    expect(bob.chat.getCursors()).toEqual({ [c]: { afterEventSeq: lastEventSeq, afterSeq: 5 } });
  });
});
