import { readFile } from 'node:fs/promises';
import { buildSchema } from 'graphql';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DISTRIBUTION } from '../src/db/distribution.js';
import { CitusWriteRules } from './support/citus-write-rules.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { TestServer, uid, type Subscription, type TestUser } from './support/server.js';
import { classify, type Classified } from './support/statement-shapes.js';

// On Citus, a statement that pins every distributed table it touches to one
// value of the distribution column goes to one shard (the router planner);
// anything else fans out. This file records every statement the server sends
// during a tour of the whole API and checks each one. Statements that fan out
// on purpose are listed below, each with its reason; any other one fails.
// Every write to a distributed table is also checked against Citus's rules for
// modifications, on PostgreSQL's own parse tree of it
// (test/support/citus-write-rules.ts): a statement Citus would refuse fails
// here, on plain PostgreSQL, before it fails on a cluster.

/** A statement shape that is not a single-shard router statement, on purpose or as a known issue. */
interface Listed {
  name: string;
  /** Substrings of the statement's shape (see shapeOf) that identify its call site; all must appear. */
  fragments: string[];
  why: string;
  /**
   * Appears only when calls coincide (Prisma batches findUnique calls made in
   * the same tick), or only for conversation sizes the tour does not have.
   */
  sometimes?: true;
}

const IN_LIST = '"id" IN ($…)';

/**
 * Statements that fan out on purpose. Each reads or writes a bounded set of
 * rows whose distribution values it already knows, so Citus prunes it to the
 * shards holding them (it never scans every shard for a filter it cannot
 * route). Conversation-distributed first, then user-distributed.
 */
const MULTI_SHARD_ON_PURPOSE: Listed[] = [
  {
    name: "inbox page's conversations",
    fragments: ['"public"."conversations"."title_event_seq" FROM "public"."conversations" WHERE "public"."conversations"."id" IN ($…) OFFSET $'],
    why: 'conversations(first, after): the page is chosen on the viewer\'s shard of the inbox index (one router statement, ordered by its own active_at); this reads that page\'s conversations by primary key, at most one per conversation of the page (docs/citus.md, "The conversation list")',
  },
  {
    name: "viewer's memberships on an inbox page",
    fragments: ['FROM "public"."conversation_members" WHERE ("public"."conversation_members"."user_id" = $ AND "public"."conversation_members"."conversation_id" IN ($…))'],
    why: 'role and read position of the viewer in the conversations of one page (at most 100), by primary key',
  },
  {
    name: 'inbox subscription start',
    fragments: ['SELECT "public"."conversations"."id", "public"."conversations"."member_count", "public"."conversations"."last_seq", "public"."conversations"."last_event_seq" FROM "public"."conversations" WHERE'],
    why: 'inbox subscription: member count (delivery path) and last seq (cursor) of each of the subscriber\'s conversations, once per subscription, by primary key',
  },
  {
    name: 'position check',
    fragments: ['SELECT "public"."conversations"."id", "public"."conversations"."last_seq", "public"."conversations"."last_event_seq", "public"."conversations"."member_count" FROM "public"."conversations" WHERE', IN_LIST],
    why: 'an instance starting feeds for several conversations, and its position check every DELIVERY_CHECK_MS, read where they stand in one statement per 1000, by primary key',
  },
  {
    name: "presence contacts' direct conversations",
    fragments: [IN_LIST, 'AND "public"."conversations"."kind" = CAST('],
    why: 'presence subscription without a conversation: which of the viewer\'s conversations (ids from the inbox index) are direct, by primary key',
  },
  {
    name: "presence contacts' members",
    fragments: ['FROM "public"."conversation_members" WHERE ("public"."conversation_members"."conversation_id" IN ($…) AND "public"."conversation_members"."user_id" <> $)'],
    why: 'the other member of each of those direct conversations, once per presence subscription, bounded by PRESENCE_WATCH_MAX',
  },
  {
    name: 'lastMessage batch',
    fragments: ['FROM messages m WHERE (m.conversation_id = $::uuid AND m.seq = $) OR …'],
    why: 'Conversation.lastMessage for a page of conversations, and reply targets and threads\' last replies, in one statement (DataLoader), each by primary key (conversation_id, seq); with one key it is a router statement',
  },
  {
    name: 'members of a new or grown conversation',
    fragments: ['INSERT INTO "public"."conversation_members"', '), …'],
    why: 'createMany: every row carries the one conversation being created or joined (the text cannot show the values); Citus routes each row by its conversation_id, so all go to that conversation\'s shard',
  },
  {
    name: 'batched membership check',
    fragments: ['FROM "public"."conversation_members" WHERE (("public"."conversation_members"."conversation_id" = $ AND "public"."conversation_members"."user_id" = $) OR …)'],
    why: 'requireMember is one router statement, but Prisma merges findUnique calls made in the same tick (e.g. ConversationJoined events resolved together) into one OR of primary keys',
    sometimes: true,
  },
  {
    name: "batched membership check's conversations",
    // Not tied to the last selected column: the event log added two after active_at.
    fragments: ['FROM "public"."conversations" WHERE "public"."conversations"."id" IN ($…) OFFSET $'],
    why: 'the include of that merged findUnique: the conversations of those memberships, by primary key',
    sometimes: true,
  },
  {
    name: 'users by id',
    fragments: ['FROM "public"."users" WHERE "public"."users".' + IN_LIST],
    why: 'names of message senders and members, presence and lastSeenAt of a page of users (DataLoader, getMany): one statement per batch, by primary key',
  },
  {
    name: 'sign-ins written together',
    fragments: ['INSERT INTO users (id, name, created_at) VALUES', '), … ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name'],
    why: "users signing in while another sign-in's row is being written go in one upsert, each row on its user's shard (src/chat/users.ts, UserRowWriter); a sign-in alone is one router statement",
    sometimes: true,
  },
  {
    name: 'inbox versions read together',
    fragments: ['SELECT id, inbox_version AS "inboxVersion" FROM users WHERE id = ANY($::text[])'],
    why: "the hub's inbox-version reads of users attaching (or checked) at the same moment go in one statement (src/chat/streams.ts, inboxVersions, batched in bursts during a reconnect storm), each row by primary key on its user's shard; one user alone is a router statement",
    sometimes: true,
  },
  {
    name: "members' inbox versions",
    fragments: ['UPDATE "public"."users" SET "inbox_version" = ("public"."users"."inbox_version" + $) WHERE "public"."users".' + IN_LIST],
    why: "a membership change bumps the inbox version of each user it concerns (the members of a new group, those added, the one who left), on each user's shard, in the same transaction",
  },
  {
    name: 'inbox order after a send',
    fragments: ['UPDATE "public"."user_conversations" SET "active_at" = $ WHERE', '"public"."user_conversations"."user_id" IN ($…)'],
    why: "after a send, a small group moves up in its other members' lists in the background, at most once a second: one row per member, on that member's user shard (src/chat/inbox-order.ts; a direct conversation's one other member is a single-shard statement, and the tour's groups are all large)",
    sometimes: true,
  },
  {
    name: "inbox order of a large conversation",
    fragments: ['UPDATE "public"."user_conversations" SET "active_at" = $ WHERE ("public"."user_conversations"."conversation_id" = $ AND "public"."user_conversations"."active_at" < $)'],
    why: "a large conversation moves up in every member's list in the background, at most once per 10 s per instance: every user shard, through the index on conversation_id (the sender's own row moves at once, by primary key)",
  },
  {
    name: "members' inbox index rows",
    fragments: ['INSERT INTO "public"."user_conversations"', '), …'],
    why: 'a conversation created or joined adds one row to each new member\'s inbox index, on that member\'s user shard: the fan-out that makes "my conversations" a one-shard read',
  },
];

/**
 * Single-shard statements that Citus's router planner would refuse. Empty:
 * keep it that way. (The send used to be one statement with data-modifying
 * CTEs and clock_timestamp(); it is now the chat_send_message function, which
 * Citus delegates whole to the conversation's shard.)
 */
const KNOWN_NOT_ROUTER: Listed[] = [];

const matches = (entry: Listed, shape: string) => entry.fragments.every((fragment) => shape.includes(fragment));

let db: TestDatabase;
let server: TestServer;
const statements: string[] = [];
const users: TestUser[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  // FANOUT_DIRECT_MAX=2: direct conversations fan out on write, groups on
  // read, so both delivery paths (and their reads) are part of the tour.
  server = await TestServer.start({ DATABASE_URL: db.url, FANOUT_DIRECT_MAX: '2' }, { onQuery: (sql) => statements.push(sql) });
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

/** How long to wait for a subscription to see something: an upper bound for a loaded machine, not a latency claim. */
const PATIENCE_MS = 30_000;

const SEND = 'mutation($c: ID!, $b: String!, $m: String!) { sendMessage(conversationId: $c, body: $b, clientMessageId: $m) { id seq } }';
const CONVERSATION_FIELDS = `id kind title lastSeq memberCount createdAt lastMessageAt lastReadSeq unreadCount viewerRole
  lastMessage { id seq body conversationId createdAt clientMessageId sender { id name online lastSeenAt } }`;

/** Every query, mutation and subscription of schema.graphql, with the paths that read differently (retries, cursors, errors). */
async function tour(): Promise<void> {
  const [alice, bob, carol, dave, erin] = [await user('alice'), await user('bob'), await user('carol'), await user('dave'), await user('erin')];

  await alice.ok('{ viewer { id name online lastSeenAt } }');
  // Presence of someone she shares no conversation with yet: refused (the presence rule's reads).
  expect(await alice.errorCode('query($id: ID!) { user(id: $id) { id name online lastSeenAt } }', { id: bob.id })).toBe('FORBIDDEN');

  // Subscriptions that exist before the conversations do: they learn of them live.
  const bobInbox = bob.subscribe('subscription { inbox { __typename ... on Message { seq body } ... on ConversationJoined { conversationId conversation { id title memberCount } } ... on ConversationLeft { conversationId reason } } }');
  await server.listening(bob.id, PATIENCE_MS);

  const dm = (await alice.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: bob.id })).startDirectConversation.id as string;
  await alice.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: bob.id }); // exists already
  await alice.ok('query($id: ID!) { user(id: $id) { id name online lastSeenAt } }', { id: bob.id }); // a contact now
  const alicePresence = alice.subscribe('subscription { presence { user { id name } online } }'); // her contacts: bob
  const group = (await alice.ok('mutation($m: [ID!]!) { createGroup(title: "tour", memberIds: $m) { id } }', { m: [bob.id, carol.id] })).createGroup.id as string;
  await alice.ok('mutation($c: ID!, $u: [ID!]!) { addMembers(conversationId: $c, userIds: $u) { id memberCount } }', { c: group, u: [carol.id, dave.id, erin.id] });
  await until(bobInbox, (s) => s.data.filter((d) => d.inbox.__typename === 'ConversationJoined').length >= 2, 'bob joins two conversations');
  await until(alicePresence, (s) => s.data.some((d) => d.presence.user.id === bob.id && d.presence.online), 'bob online');

  // Conversation subscriptions from a cursor (backfill, then live), typing and members' presence.
  const bobDm = bob.subscribe('subscription($c: ID!) { messageAdded(conversationId: $c, afterSeq: 0) { seq body sender { name } } }', { c: dm });
  const carolGroup = carol.subscribe('subscription($c: ID!) { messageAdded(conversationId: $c) { seq } }', { c: group });
  const carolTyping = carol.subscribe('subscription($c: ID!) { typing(conversationId: $c) { user { id } typing expiresAt } }', { c: group });
  const davePresence = dave.subscribe('subscription($c: ID) { presence(conversationId: $c) { user { id } online } }', { c: group });
  await server.listening(carol.id, PATIENCE_MS);

  const first = (await alice.ok(SEND, { c: dm, b: 'hello', m: 'tour-1' })).sendMessage;
  const retry = (await alice.ok(SEND, { c: dm, b: 'hello', m: 'tour-1' })).sendMessage;
  expect(retry).toEqual(first);
  await bob.ok(SEND, { c: dm, b: 'hi', m: 'tour-2' });
  await alice.ok(SEND, { c: dm, b: 'how are you', m: 'tour-3' });
  for (let i = 1; i <= 3; i++) await bob.ok(SEND, { c: group, b: `group ${i}`, m: `tour-g${i}` });
  await until(bobDm, (s) => s.results.length >= 3, 'three direct messages');
  await until(carolGroup, (s) => s.results.length >= 3, 'three group messages');

  await alice.ok('mutation($c: ID!) { setTyping(conversationId: $c, typing: true) }', { c: group });
  await alice.ok('mutation($c: ID!) { setTyping(conversationId: $c, typing: false) }', { c: group });
  await until(carolTyping, (s) => s.results.length >= 2, 'typing on and off');
  await until(davePresence, (s) => s.results.length >= 1, 'members present');

  // The event log: a subscriber from a cursor, edits, deletes, reactions, replies, threads, renames.
  const carolEvents = carol.subscribe(
    `subscription($cursors: [EventCursor!]) { events(cursors: $cursors, announce: true) { __typename
      ... on MessageEvent { eventSeq action message { seq body reactions { reaction count } } threadRoot { seq threadReplyCount } }
      ... on ReadReceipt { eventSeq lastReadSeq } ... on ConversationRenamed { title } } }`,
    { cursors: [{ conversationId: group, afterEventSeq: 0 }] },
  );
  const MESSAGE = 'seq eventSeq body editedAt deletedAt deleted replyToSeq threadRootSeq threadReplyCount threadLastReplySeq reactions { reaction count reactedByViewer }';
  await bob.ok(`mutation($c: ID!) { editMessage(conversationId: $c, seq: 1, body: "group 1, edited") { ${MESSAGE} } }`, { c: group });
  await carol.ok(`mutation($c: ID!) { addReaction(conversationId: $c, seq: 1, reaction: "👍") { ${MESSAGE} } }`, { c: group });
  await carol.ok(`mutation($c: ID!) { removeReaction(conversationId: $c, seq: 1, reaction: "👍") { seq } }`, { c: group });
  await carol.ok(`mutation($c: ID!) { addReaction(conversationId: $c, seq: 2, reaction: "party") { seq } }`, { c: group });
  await carol.ok('mutation($c: ID!, $m: String!) { sendMessage(conversationId: $c, body: "re", clientMessageId: $m, replyToSeq: 1) { seq replyTo { seq body } } }', { c: group, m: 'tour-r1' });
  await carol.ok('mutation($c: ID!, $m: String!) { sendMessage(conversationId: $c, body: "in thread", clientMessageId: $m, threadRootSeq: 2) { seq } }', { c: group, m: 'tour-t1' });
  await bob.ok(`mutation($c: ID!) { deleteMessage(conversationId: $c, seq: 3) { ${MESSAGE} } }`, { c: group });
  await alice.ok('mutation($c: ID!) { renameConversation(conversationId: $c, title: "tour, renamed") { id title } }', { c: group });
  await until(carolEvents, (s) => s.data.some((d) => d.events.__typename === 'ConversationRenamed'), 'the rename, live');
  await carol.ok(
    `query($c: ID!) { eventsSince(conversationId: $c, afterEventSeq: 0, first: 2) { events { __typename
      ... on MessageEvent { eventSeq action catchUp message { ${MESSAGE} replyTo { seq deleted } threadLastReply { seq body } } }
      ... on MemberEvent { eventSeq action user { id } role newOwner { id } } ... on ReadReceipt { user { id } lastReadSeq }
      ... on ConversationRenamed { title } } nextAfterEventSeq hasMore lastEventSeq } }`,
    { c: group },
  );
  await carol.ok('query($c: ID!) { messages(conversationId: $c, threadRootSeq: 2, last: 10) { messages { seq body } hasMore } }', { c: group });

  await bob.ok('mutation($c: ID!) { markRead(conversationId: $c, seq: 2) { lastReadSeq unreadCount } }', { c: dm });
  await bob.ok('mutation($c: ID!) { markRead(conversationId: $c, seq: 1) { lastReadSeq } }', { c: dm }); // never backwards

  // Reads: one conversation with its members paged, the inbox paged, history, catch-up.
  const page = await alice.ok(`query($c: ID!) { conversation(id: $c) { ${CONVERSATION_FIELDS}
    members(first: 2) { edges { cursor node { role joinedAt lastReadSeq user { id name } } } pageInfo { hasNextPage endCursor } } } }`, { c: group });
  await alice.ok('query($c: ID!, $after: String) { conversation(id: $c) { members(first: 2, after: $after) { edges { node { user { id } } } } } }', {
    c: group,
    after: page.conversation.members.pageInfo.endCursor,
  });
  const inbox = await bob.ok(`{ conversations(first: 1) { edges { cursor node { ${CONVERSATION_FIELDS} } } pageInfo { hasNextPage endCursor } } }`);
  await bob.ok('query($after: String) { conversations(first: 1, after: $after) { edges { node { id lastMessage { body } } } } }', {
    after: inbox.conversations.pageInfo.endCursor,
  });
  await bob.ok(`{ conversations(first: 10) { edges { node { ${CONVERSATION_FIELDS} } } } }`); // lastMessage of several at once
  await bob.ok('query($c: ID!) { messages(conversationId: $c, last: 2) { messages { seq body sender { name } } hasMore } }', { c: dm });
  await bob.ok('query($c: ID!) { messages(conversationId: $c, before: 2, last: 10) { messages { seq } hasMore } }', { c: dm });
  await bob.ok('query($c: ID!) { messagesSince(conversationId: $c, afterSeq: 0, first: 2) { messages { seq body } hasMore nextAfterSeq lastSeq } }', { c: dm });

  // Refusals read too: a stranger (FORBIDDEN) and an unknown conversation (NOT_FOUND).
  const stranger = await user('mallory');
  expect(await stranger.errorCode('query($c: ID!) { conversation(id: $c) { id } }', { c: dm })).toBe('FORBIDDEN');
  expect(await stranger.errorCode('query($c: ID!) { messages(conversationId: $c) { hasMore } }', { c: '00000000-0000-4000-8000-000000000000' })).toBe('NOT_FOUND');

  // Membership changes: removal, leaving, the owner leaving (an heir inherits).
  const carolInbox = carol.subscribe(
    'subscription($cursors: [ConversationCursor!]) { inbox(cursors: $cursors) { __typename ... on Message { seq } ... on ConversationLeft { reason } } }',
    { cursors: [{ conversationId: group, afterSeq: 1 }, { conversationId: dm, afterSeq: 0 }] },
  );
  await until(carolInbox, (s) => s.results.length >= 2, 'carol resumes the group from seq 1');
  await alice.ok('mutation($c: ID!, $u: ID!) { removeMember(conversationId: $c, userId: $u) { id memberCount } }', { c: group, u: erin.id });
  await dave.ok('mutation($c: ID!) { leaveConversation(conversationId: $c) }', { c: group });
  await alice.ok('mutation($c: ID!) { leaveConversation(conversationId: $c) }', { c: group });
  await bob.ok(SEND, { c: group, b: 'after the owner left', m: 'tour-g4' });
  await until(carolInbox, (s) => s.data.some((d) => d.inbox.__typename === 'Message' && d.inbox.seq === 4), 'carol hears seq 4');

  // Going offline writes lastSeenAt.
  await bob.closeSockets();
  await until(alicePresence, (s) => s.data.some((d) => d.presence.user.id === bob.id && !d.presence.online), 'bob offline');
}

async function until<T>(sub: Subscription<T>, predicate: (sub: Subscription<T>) => boolean, what: string): Promise<void> {
  await sub.until(predicate, PATIENCE_MS, what);
}

type Row = Classified & { count: number; listedAs?: string; sample: string; writeChecked?: boolean };

describe('statement routing on Citus', () => {
  let rows: Row[];

  beforeAll(async () => {
    await tour();
    const volatile = new Set(
      (await db.query<{ name: string }>("SELECT DISTINCT proname::text AS name FROM pg_proc WHERE provolatile = 'v'")).map((r) => r.name),
    );
    const byShape = new Map<string, Row>();
    for (const sql of statements) {
      const c = classify(sql, DISTRIBUTION, volatile);
      const seen = byShape.get(c.shape);
      if (seen) seen.count++;
      else byShape.set(c.shape, { ...c, count: 1, sample: sql });
    }
    rows = [...byShape.values()];
    // Citus's modification rules, on the parse tree of one statement per call site.
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const rules = new CitusWriteRules(client, DISTRIBUTION);
      for (const row of rows) {
        const check = await rules.check(row.sample);
        if (!check) continue;
        row.writeChecked = true;
        row.plannerIssues.push(...check.refusals);
        if (check.refusals.length > 0 && row.routing === 'router') row.routing = 'not-router';
      }
    } finally {
      await client.end();
    }
    for (const row of rows) {
      const list = row.plannerIssues.length > 0 ? KNOWN_NOT_ROUTER : row.routing === 'multi-shard' ? MULTI_SHARD_ON_PURPOSE : [];
      row.listedAs = list.find((entry) => matches(entry, row.shape))?.name;
    }
    printSummary(rows);
  }, 180_000);

  it('tours every query, mutation and subscription of schema.graphql', async () => {
    const schema = buildSchema(await readFile(new URL('../schema.graphql', import.meta.url), 'utf8'));
    const roots = [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()];
    const fields = roots.flatMap((root) => Object.keys(root?.getFields() ?? {}));
    const toured = [tour.toString(), SEND, CONVERSATION_FIELDS].join('\n');
    // A field in use is followed by its arguments or its selection; `typing: true` (an argument) does not count.
    expect(fields.filter((field) => !new RegExp(`\\b${field}\\s*[({]`).test(toured)), 'root fields the tour never uses').toEqual([]);
  });

  it('reaches every distributed table with single-shard statements', () => {
    for (const table of DISTRIBUTION.map((d) => d.table)) {
      expect(rows.some((r) => r.tables.includes(table) && r.routing === 'router'), `a router statement on ${table}`).toBe(true);
    }
  });

  it('sends every statement on a distributed table to one shard, except the fan-outs listed on purpose', () => {
    const unexpected = rows.filter((r) => r.routing === 'multi-shard' && !r.listedAs);
    expect(unexpected.map((r) => `${r.reasons.join('; ')}\n  ${r.shape}`), 'multi-shard statements not on MULTI_SHARD_ON_PURPOSE').toEqual([]);
  });

  it("chooses a page of conversations on the viewer's shard of the inbox index, in one statement", () => {
    const choosing = rows.filter((r) => /FROM "public"\."user_conversations" WHERE .*ORDER BY "public"\."user_conversations"\."active_at" DESC/.test(r.shape));
    expect(choosing.length, 'the statements choosing a page (first, and after a cursor)').toBeGreaterThanOrEqual(2);
    expect(choosing.map((r) => r.routing)).toEqual(choosing.map(() => 'router'));
  });

  it('has no stale entry on the list of fan-outs', () => {
    const used = new Set(rows.map((r) => r.listedAs));
    const stale = MULTI_SHARD_ON_PURPOSE.filter((entry) => !entry.sometimes && !used.has(entry.name)).map((entry) => entry.name);
    expect(stale, 'entries no statement of the tour needs (remove them, or extend the tour)').toEqual([]);
  });

  it("checks every write to a distributed table against Citus's rules for modifications", () => {
    const writes = rows.filter((r) => /^\s*(INSERT|UPDATE|DELETE)\b/i.test(r.shape) && r.tables.length > 0);
    expect(writes.length).toBeGreaterThan(0);
    expect(writes.filter((r) => !r.writeChecked).map((r) => r.shape), 'writes the rules did not read').toEqual([]);
  });

  it('writes nothing the router planner refuses', () => {
    const refused = rows.filter((r) => r.plannerIssues.length > 0 && !r.listedAs);
    expect(refused.map((r) => `${r.plannerIssues.join('; ')}\n  ${r.shape}`), 'statements not on KNOWN_NOT_ROUTER').toEqual([]);
    const used = new Set(rows.map((r) => r.listedAs));
    expect(KNOWN_NOT_ROUTER.filter((entry) => !used.has(entry.name)).map((e) => e.name), 'fixed: remove from KNOWN_NOT_ROUTER').toEqual([]);
  });

  it('sends through chat_send_message, which the migration delegates to the conversation\'s shard', async () => {
    const sends = statements.filter((sql) => /\bchat_send_message\s*\(/.test(sql));
    expect(sends.length).toBeGreaterThan(0);
    // The conversation id is the first argument: the distribution argument Citus routes the call by.
    for (const sql of sends) expect(sql).toMatch(/chat_send_message\(\s*\$1::uuid/);
    const { readFile } = await import('node:fs/promises');
    const migration = await readFile(new URL('../prisma/migrations/20261201000100_send_message_function/migration.sql', import.meta.url), 'utf8');
    expect(migration).toMatch(/create_distributed_function\(\s*'chat_send_message\(uuid, text, uuid, text, text, timestamptz, integer\)',\s*'p_conversation_id',\s*colocate_with => 'conversations'\)/);
    // No VOLATILE function inside it: its statements run on the worker as router statements.
    expect(migration.replace(/--.*$/gm, '')).not.toMatch(/clock_timestamp|random\(|now\(\)/);
  });
});

/** The table a reader of the test output sees: one row per statement shape, most frequent first. */
function printSummary(rows: Row[]): void {
  const label = (r: Row) =>
    r.routing === 'multi-shard' ? `multi-shard: ${r.listedAs ?? 'NOT LISTED'}` : r.routing === 'not-router' ? `not-router: ${r.listedAs ?? 'NOT LISTED'}` : r.routing;
  const sorted = [...rows].sort((a, b) => b.count - a.count);
  const lines = sorted.map((r) => {
    const detail = [...r.reasons, ...r.plannerIssues].join('; ');
    const shape = r.shape.length > 220 ? `${r.shape.slice(0, 217)}...` : r.shape;
    return `${String(r.count).padStart(5)}  ${label(r).padEnd(50)}  ${r.tables.join(', ')}${detail ? `  (${detail})` : ''}\n         ${shape}`;
  });
  const legend = [...MULTI_SHARD_ON_PURPOSE, ...KNOWN_NOT_ROUTER].map((entry) => `  ${entry.name}: ${entry.why}`);
  console.log(
    `\nStatements of the API tour by shape (count, routing on Citus, tables):\n${lines.join('\n')}\n\nWhy the listed ones are not router statements:\n${legend.join('\n')}\n`,
  );
}
