import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MessageRecord } from '../src/chat/records.js';
import { ConversationFeed, type FeedMember, type FeedSink } from '../src/realtime/feed.js';
import { feedStores } from '../src/realtime/index.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { TestServer, uid } from './support/server.js';

// The per-conversation feed on its own, reading real stored messages from
// PostgreSQL, with sinks whose rendering can be made asynchronous to open the
// windows a subscriber can fall into.

let db: TestDatabase;
let server: TestServer;
let conversationId: string;
let stored: MessageRecord[];

beforeAll(async () => {
  db = await createTestDatabase();
  server = await TestServer.start({ DATABASE_URL: db.url });
  const alice = await server.user(uid('alice'));
  conversationId = (await alice.ok('mutation { createGroup(title: "feed", memberIds: []) { id } }')).createGroup.id;
  for (let i = 1; i <= 6; i++) {
    await alice.ok('mutation($c: ID!, $m: String!) { sendMessage(conversationId: $c, body: $m, clientMessageId: $m) { seq } }', { c: conversationId, m: `m${i}` });
  }
  stored = await server.app.services.messages.range(conversationId, 0, 100);
});
afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

function feed() {
  const errors: unknown[] = [];
  const f = new ConversationFeed<MessageRecord>({
    conversationId,
    keyOf: (message) => message.seq,
    store: feedStores(server.app.services).messages,
    recentCapacity: 0,
    onError: (error) => errors.push(error),
  });
  return { feed: f, errors };
}

/** A subscriber: records seqs it is handed; `slow` makes its rendering asynchronous. */
function subscriber(shareKey: string, cursor: number, slow?: () => Promise<void>) {
  const seqs: number[] = [];
  const sink: FeedSink<MessageRecord> = {
    shareKey,
    render: (message) => (slow ? slow().then(() => `{"seq":${message.seq}}`) : `{"seq":${message.seq}}`),
    deliver: (message) => seqs.push(message.seq),
    closed: false,
  };
  const member: FeedMember<MessageRecord> = { cursor, sink };
  return { member, seqs };
}

const until = async (predicate: () => boolean) => {
  const deadline = Date.now() + 5000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

describe('the conversation feed', () => {
  it('hands a message to a member that joins live while that message is still being rendered', async () => {
    const { feed: f } = feed();
    f.initialize(0);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const a = subscriber('shape A', 0, () => gate);
    await f.join(a.member);
    f.push(stored[0]!); // seq 1: A's render is now pending
    await new Promise((resolve) => setTimeout(resolve, 20));
    const b = subscriber('shape B', 0); // another selection, joining live during the render
    await f.join(b.member);
    release();
    f.push(stored[1]!);
    await until(() => a.seqs.length === 2 && b.seqs.length === 2);
    expect(a.seqs).toEqual([1, 2]);
    expect(b.seqs).toEqual([1, 2]);
  });

  it('emits each seq once and in order when events are lost, duplicated and reordered', async () => {
    const { feed: f } = feed();
    f.initialize(0);
    const a = subscriber('shape A', 0);
    await f.join(a.member);
    // 1, then 4 (2 and 3 lost), then 3 late, 1 again, 6 before 5, 5.
    for (const seq of [1, 4, 3, 1, 6, 5]) f.push(stored[seq - 1]!);
    await until(() => a.seqs.length >= 6);
    expect(a.seqs).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('catches a member up from its cursor before it goes live, without repeating what it has', async () => {
    const { feed: f } = feed();
    f.initialize(4);
    f.push(stored[4]!); // 5
    const behind = subscriber('shape A', 2);
    const ahead = subscriber('shape A', 5);
    await Promise.all([f.join(behind.member), f.join(ahead.member)]);
    f.push(stored[5]!); // 6
    await until(() => behind.seqs.includes(6) && ahead.seqs.includes(6));
    expect(behind.seqs).toEqual([3, 4, 5, 6]);
    expect(ahead.seqs).toEqual([6]);
  });

  it('fails the members waiting for it when its starting point cannot be read', async () => {
    const { feed: f } = feed();
    const waiting = subscriber('shape A', 0);
    const joined = f.join(waiting.member);
    f.fail(new Error('database unavailable'));
    await expect(joined).rejects.toThrow('database unavailable');
  });

  it('hands what queued up during a slow emission to each member as one corked batch, in order, once', async () => {
    const { feed: f } = feed();
    f.initialize(0);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let first = true;
    // Shape A renders its first message slowly: messages 2..6 queue up meanwhile.
    const a = subscriber('shape A', 0, () => (first ? ((first = false), gate) : Promise.resolve()));
    const log: string[] = [];
    const corked = (name: string, cursor: number) => {
      const seqs: number[] = [];
      const sink: FeedSink<MessageRecord> = {
        shareKey: 'shape A',
        render: (message) => `{"seq":${message.seq}}`,
        deliver: (message) => {
          seqs.push(message.seq);
          log.push(`${name}:${message.seq}`);
        },
        cork: () => log.push(`${name}:cork`),
        uncork: () => log.push(`${name}:uncork`),
        closed: false,
      };
      return { member: { cursor, sink } as FeedMember<MessageRecord>, seqs };
    };
    await f.join(a.member);
    const b = corked('b', 0);
    const c = corked('c', 0);
    await f.join(b.member);
    await f.join(c.member);
    // In order (a gap would start a database read, whose timing would decide the batches), one duplicate.
    for (const message of [stored[0]!, stored[1]!, stored[1]!, stored[2]!, stored[3]!, stored[4]!, stored[5]!]) f.push(message);
    await new Promise((resolve) => setTimeout(resolve, 20));
    release();
    await until(() => [a, b, c].every((s) => s.seqs.length === 6));
    for (const s of [a, b, c]) expect(s.seqs).toEqual([1, 2, 3, 4, 5, 6]);
    // Message 1 alone (nothing else had arrived), then 2..6 together, each member's inside one cork.
    expect(log).toEqual(['b:1', 'c:1', 'b:cork', 'b:2', 'b:3', 'b:4', 'b:5', 'b:6', 'b:uncork', 'c:cork', 'c:2', 'c:3', 'c:4', 'c:5', 'c:6', 'c:uncork']);
  });

  it('serves members resuming from the same cursor at once with one read of the database', async () => {
    const real = feedStores(server.app.services).messages;
    let reads = 0;
    const f = new ConversationFeed<MessageRecord>({
      conversationId,
      keyOf: (message) => message.seq,
      store: { range: (...args) => (reads++, real.range(...args)) },
      recentCapacity: 0,
      onError: () => {},
    });
    f.initialize(6);
    const resuming = Array.from({ length: 50 }, (_, i) => subscriber(`shape ${i % 3}`, 2));
    await Promise.all(resuming.map((s) => f.join(s.member)));
    for (const s of resuming) expect(s.seqs).toEqual([3, 4, 5, 6]);
    expect(reads).toBe(1);
    // A member behind by another range reads its own.
    const other = subscriber('shape 0', 4);
    await f.join(other.member);
    expect([other.seqs, reads]).toEqual([[5, 6], 2]);
  });
});
