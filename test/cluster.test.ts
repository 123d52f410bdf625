import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ChatClient } from '../client/src/index.js';
import { session as sdkSession, type Recorded } from '../client/test/helpers.js';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import WebSocket from 'ws';
import { Cluster } from '../ops/cluster.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { endpoint, settle, TEST_JWT_SECRET, uid, userAt, type Endpoint, type TestUser } from './support/server.js';

const redisUrl = inject('redisUrl');
const nginx = inject('nginx');

const SEND = 'mutation($c: ID!, $b: String!, $m: String!) { sendMessage(conversationId: $c, body: $b, clientMessageId: $m) { seq } }';
const MESSAGE_ADDED = 'subscription($c: ID!, $a: Int) { messageAdded(conversationId: $c, afterSeq: $a) { seq body } }';
const INBOX_FROM = 'subscription($cursors: [ConversationCursor!]) { inbox(cursors: $cursors) { __typename ... on Message { conversationId seq body } ... on ConversationJoined { conversationId } ... on ConversationLeft { conversationId reason } } }';
const INBOX = 'subscription { inbox { __typename ... on Message { conversationId seq body } ... on ConversationJoined { conversationId } ... on ConversationLeft { conversationId reason } } }';

// Separate server processes behind a real nginx, sharing real PostgreSQL and Redis.
describe.skipIf(!redisUrl || !nginx)('a cluster of instances behind nginx', () => {
  let db: TestDatabase;
  let cluster: Cluster;
  let lb: Endpoint;
  let at: Endpoint[];
  const users: TestUser[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    cluster = await Cluster.start({
      instances: 3,
      env: {
        DATABASE_URL: db.url,
        REDIS_URL: redisUrl!,
        JWT_SECRET: TEST_JWT_SECRET,
        FANOUT_DIRECT_MAX: '3',
        PRESENCE_TTL_MS: '1500',
        WS_KEEPALIVE_MS: '1000',
        SEND_RATE_PER_SECOND: '0',
        LOG_LEVEL: 'warn',
      },
    });
    lb = endpoint(cluster.url);
    at = cluster.instances.map((instance) => endpoint(instance.url));
  }, 120_000);

  afterAll(async () => {
    await Promise.all(users.map((u) => u.closeSockets()));
    await cluster?.stop();
    await db?.drop();
  });

  async function user(name: string, where: Endpoint): Promise<TestUser> {
    const u = await userAt(where, uid(name), name);
    users.push(u);
    return u;
  }
  const dm = async (a: TestUser, b: TestUser) =>
    (await a.ok('mutation($u: ID!) { startDirectConversation(userId: $u) { id } }', { u: b.id })).startDirectConversation.id as string;
  const group = async (owner: TestUser, members: TestUser[]) =>
    (await owner.ok('mutation($m: [ID!]!) { createGroup(title: "g", memberIds: $m) { id } }', { m: members.map((m) => m.id) })).createGroup.id as string;

  it('delivers a message sent through one instance to subscribers on the others and through the load balancer', async () => {
    const alice = await user('alice', at[0]!);
    const bob = await user('bob', at[1]!);
    const carol = await user('carol', at[2]!);
    const dave = await user('dave', lb);
    // Small (fan-out on write): a direct conversation.
    const direct = await dm(alice, bob);
    // Large (fan-out on read): four members > FANOUT_DIRECT_MAX = 3.
    const big = await group(alice, [bob, carol, dave]);
    const subs = [
      bob.subscribe(MESSAGE_ADDED, { c: direct, a: 0 }),
      bob.subscribe(MESSAGE_ADDED, { c: big, a: 0 }),
      carol.subscribe(MESSAGE_ADDED, { c: big, a: 0 }),
      dave.subscribe(MESSAGE_ADDED, { c: big, a: 0 }),
    ];
    for (let i = 1; i <= 5; i++) {
      await alice.ok(SEND, { c: direct, b: `dm ${i}`, m: `d${i}` });
      await alice.at(lb).ok(SEND, { c: big, b: `big ${i}`, m: `b${i}` });
    }
    for (const sub of subs) {
      await sub.count(5);
      await settle(100);
      expect(sub.data.map((d) => d.messageAdded.seq)).toEqual([1, 2, 3, 4, 5]);
    }
    expect(subs[0]!.data.map((d) => d.messageAdded.body)).toEqual(['dm 1', 'dm 2', 'dm 3', 'dm 4', 'dm 5']);
  });

  it('streams Server-Sent Events through the load balancer as they come (unbuffered), and answers queries there too', async () => {
    const alice = await user('alice', lb);
    const bob = await user('bob', lb);
    const direct = await dm(alice, bob);
    const sub = bob.subscribeSse(MESSAGE_ADDED, { c: direct, a: 0 });
    for (let i = 1; i <= 3; i++) {
      await alice.ok(SEND, { c: direct, b: `sse ${i}`, m: `sse${i}` });
      // Each one arrives before the next is sent: nginx passes events through, it does not hold them.
      await sub.count(i);
    }
    expect(sub.data.map((d) => d.messageAdded.body)).toEqual(['sse 1', 'sse 2', 'sse 3']);
  });

  it('applies membership changes to live subscriptions on other instances', async () => {
    const owner = await user('owner', at[0]!);
    const erin = await user('erin', at[1]!);
    const frank = await user('frank', at[2]!);
    const others = [await user('x', at[0]!), await user('y', at[0]!)];
    const c = await group(owner, [erin, ...others]); // 4 members: large
    const erinInbox = erin.subscribe(INBOX_FROM, { cursors: [{ conversationId: c, afterSeq: 0 }] });
    const frankInbox = frank.subscribe(INBOX);
    // A live message proves erin's subscription is in place; frank has nothing yet.
    await owner.ok(SEND, { c, b: 'first', m: 'f1' });
    await erinInbox.until((s) => s.data.some((d) => d.inbox.body === 'first'), 10_000, 'first');
    await owner.ok('mutation($c: ID!, $u: ID!) { removeMember(conversationId: $c, userId: $u) { id } }', { c, u: erin.id });
    await owner.ok('mutation($c: ID!, $u: [ID!]!) { addMembers(conversationId: $c, userIds: $u) { id } }', { c, u: [frank.id] });
    await erinInbox.until((s) => s.data.some((d) => d.inbox.__typename === 'ConversationLeft'), 10_000, 'left');
    await frankInbox.until((s) => s.data.some((d) => d.inbox.__typename === 'ConversationJoined'), 10_000, 'joined');
    await owner.ok(SEND, { c, b: 'second', m: 'f2' });
    await frankInbox.until((s) => s.data.some((d) => d.inbox.body === 'second'), 10_000, 'second');
    await settle(300);
    expect(erinInbox.data.map((d) => d.inbox.body ?? d.inbox.__typename)).toEqual(['first', 'ConversationLeft']);
    expect(frankInbox.data.map((d) => d.inbox.body ?? d.inbox.__typename)).toEqual(['ConversationJoined', 'second']);
  });

  it('takes the users of a SIGKILLed instance offline by themselves', async () => {
    const watcher = await user('watcher', at[0]!);
    const victim = await user('victim', at[2]!);
    await dm(watcher, victim);
    const presence = watcher.subscribe('subscription { presence { user { id } online } }');
    await presence.count(1);
    victim.socket();
    await presence.until((s) => s.data.some((d) => d.presence.online), 10_000, 'online');
    expect(await cluster.signal(2, 'SIGKILL')).toBeNull();
    // Nobody says goodbye for it: the presence TTL (1.5 s) runs out and a sweeper announces it.
    await presence.until((s) => s.data.at(-1)?.presence.online === false, 15_000, 'offline');
    expect((await watcher.ok('query($id: ID!) { user(id: $id) { online lastSeenAt } }', { id: victim.id })).user.online).toBe(false);
    await victim.closeSockets();
    await cluster.startInstance(2);
  });

  it('drains on SIGTERM: sockets are told to reconnect elsewhere (1012) and the process exits cleanly', async () => {
    const eve = await user('eve', at[1]!);
    const code = new Promise<number>((resolve) => {
      const socket = new WebSocket(at[1]!.wsUrl, 'graphql-transport-ws');
      socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${eve.token}` } })));
      socket.on('message', (data) => {
        if (JSON.parse(String(data)).type === 'connection_ack') void cluster.signal(1, 'SIGTERM').then((exit) => expect(exit).toBe(0));
      });
      socket.on('close', (closeCode) => resolve(closeCode));
    });
    expect(await code).toBe(1012);
    await cluster.startInstance(1);
    // Back in the pool: the load balancer reaches all three again.
    expect((await eve.at(lb).ok('{ viewer { id } }')).viewer.id).toBe(eve.id);
  });

  it('survives a rolling restart of every instance while clients keep chatting: every client ends with every message once, in order', async () => {
    const sessions: ChatClient[] = [];
    try {
      const people = await Promise.all(['ann', 'ben', 'cat', 'dan', 'eva', 'fay'].map((name, i) => user(name, at[i % 3]!)));
      // One large group (fan-out on read) and three direct conversations (fan-out on write).
      const team = await group(people[0]!, people.slice(1));
      const pairs = [[0, 1], [2, 3], [4, 5]] as const;
      const directs = await Promise.all(pairs.map(([a, b]) => dm(people[a]!, people[b]!)));
      // Each person talks through the load balancer with the SDK, which
      // reconnects, resumes from its cursors and retries unacknowledged sends.
      const clients: Recorded[] = await Promise.all(people.map((p) => sdkSession(lb, p.id, sessions)));
      await Promise.all(clients.map((c) => c.chat.ready()));
      // What the SDK retried, by code. A graceful restart shows as network
      // errors only (a connection refused or reset, a 502 from nginx): never a
      // server error from a request cut off by the stopping instance.
      const retried = new Map<string, number>();
      for (const client of clients) client.chat.onError((error) => retried.set(`${error.code}: ${error.message}`, (retried.get(`${error.code}: ${error.message}`) ?? 0) + 1));

      // Everyone keeps chatting until every instance has been restarted.
      let restarting = true;
      const rounds = clients.map(() => 0);
      const began = Date.now();
      const progress = (what: string) =>
        console.log(`rolling restart: ${what} after ${((Date.now() - began) / 1000).toFixed(1)} s (sends per client: ${rounds.join(', ')}; retried: ${JSON.stringify(Object.fromEntries(retried))})`);
      // Progress goes to the log: on a loaded machine this test is long, and a timeout must say where it was.
      const heartbeat = setInterval(
        () => progress(`still going: connections ${clients.map((c) => c.chat.status).join(', ')}; attempts of sends not yet answered ${clients.map((c) => c.chat.pendingSends().map((p) => p.attempts).join('/') || '-').join(', ')}`),
        15_000,
      );
      const chatting = Promise.all(
        clients.map(async (client, i) => {
          const direct = directs[Math.floor(i / 2)]!;
          while (restarting || rounds[i]! < 5) {
            await client.chat.send(team, `${people[i]!.id} to the team ${rounds[i]}`);
            await client.chat.send(direct, `${people[i]!.id} direct ${rounds[i]}`);
            rounds[i]!++;
            await new Promise((resolve) => setTimeout(resolve, 40));
          }
        }),
      );
      // Meanwhile: restart each instance in turn (SIGTERM, drain, start again).
      for (const instance of cluster.instances) {
        await new Promise((resolve) => setTimeout(resolve, 300));
        await cluster.restart(instance.index);
        progress(`instance ${instance.index} restarted`);
      }
      restarting = false;
      await chatting.finally(() => clearInterval(heartbeat));
      progress('chatting done');
      expect([...retried.keys()].filter((error) => !error.startsWith('NETWORK_ERROR:')), 'errors retried besides network errors').toEqual([]);
      // nginx always had an instance to try: each is also a backup (ops/nginx.ts, upstreamServers).
      const nginxLog = await readFile(path.join(cluster.dir, 'nginx', 'logs', 'error.log'), 'utf8');
      expect(nginxLog.split('\n').filter((line) => line.includes('no live upstreams')).length, 'requests nginx answered with "no live upstreams"').toBe(0);

      // The database is the truth: every message, each client's view of it.
      const stored = async (conversationId: string) =>
        (await db.query<{ seq: number }>('SELECT seq FROM messages WHERE conversation_id = $1 ORDER BY seq', [conversationId])).map((r) => r.seq);
      const teamSeqs = await stored(team);
      const sends = rounds.reduce((sum, n) => sum + n, 0);
      expect(teamSeqs).toHaveLength(sends); // every send stored exactly once
      expect(teamSeqs).toEqual(teamSeqs.map((_, i) => i + 1));
      for (const [i, client] of clients.entries()) {
        const direct = directs[Math.floor(i / 2)]!;
        const directSeqs = await stored(direct);
        const pair = Math.floor(i / 2) * 2;
        expect(directSeqs).toHaveLength(rounds[pair]! + rounds[pair + 1]!);
        await client.until(team, teamSeqs.length, 30_000);
        await client.until(direct, directSeqs.length, 30_000);
        progress(`${people[i]!.id} holds everything`);
        expect(client.seqs(team), `${people[i]!.id} in the team`).toEqual(teamSeqs);
        expect(client.seqs(direct), `${people[i]!.id} in their direct conversation`).toEqual(directSeqs);
      }
      // Nothing from conversations a client is not in.
      for (const [i, client] of clients.entries()) {
        const mine = new Set([team, directs[Math.floor(i / 2)]!]);
        expect(client.messages.filter((m) => !mine.has(m.conversationId))).toEqual([]);
      }
    } finally {
      await Promise.all(sessions.map((s) => s.close()));
    }
    // Three restarts (each a drain and a cold start of the server under tsx) while everything else in
    // the suite runs in parallel: 24 s on a quiet machine, and once over 180 s in a full CI run.
  }, 360_000);
});
