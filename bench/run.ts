import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { signToken } from '../src/auth.js';
import { catchUpScenario } from './catch-up.js';
import { createBenchDatabase, seedGroups } from './database.js';
import { Clients, startBaseline, startChatServer, type Measured } from './processes.js';

/**
 * `npm run bench`: the delivery path against the bar in the README, each
 * number next to a raw `ws` server doing the same job on the same machine in
 * the same run (ratios, not absolute timings, are what carry across machines).
 *
 *   fan-out     one message to a group of --members sockets: time to the last
 *               one, and sustained frames/s, vs a raw ws broadcast of the same bytes
 *   memory      heap per idle connection with its subscription, vs an idle raw ws socket
 *   latency     send→receive percentiles at --rate messages/s spread over groups
 *   catchup     a member catching up after 10,000 changes, vs a raw SELECT of what it ends up holding
 */
const { values: args } = parseArgs({
  options: {
    members: { type: 'string', default: '10000' },
    workers: { type: 'string', default: '4' },
    rate: { type: 'string', default: '1000' },
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '15' },
    burst: { type: 'string', default: '20' },
    only: { type: 'string' },
    via: { type: 'string', default: 'ws' },
  },
});
const MEMBERS = Number(args.members);
const WORKERS = Number(args.workers);
const RATE = Number(args.rate);
const DURATION_S = Number(args.duration);
const ROUNDS = Number(args.rounds);
const BURST = Number(args.burst);
const SECRET = randomBytes(32).toString('hex');
const now = () => performance.timeOrigin + performance.now();
const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};
const round = (n: number, digits = 1) => Number(n.toFixed(digits));
const log = (line: string) => console.log(`  ${line}`);

/** Sends over a graphql-ws socket, as a chat client holding one socket would (mutations are allowed over it). */
async function socketSender(port: number, userId: string) {
  const { default: WebSocket } = await import('ws');
  const token = await signToken(SECRET, userId, { name: userId });
  const socket = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws');
  await new Promise((resolve) => socket.once('open', resolve));
  const pending = new Map<string, { resolve: (seq: number) => void; reject: (error: Error) => void }>();
  await new Promise<void>((resolve) => {
    socket.on('message', (data) => {
      const message = JSON.parse(String(data));
      if (message.type === 'connection_ack') return resolve();
      const waiter = pending.get(message.id);
      if (!waiter) return;
      if (message.type === 'next') {
        pending.delete(message.id);
        if (message.payload.data?.sendMessage) waiter.resolve(message.payload.data.sendMessage.seq);
        else waiter.reject(new Error(JSON.stringify(message.payload.errors)));
      } else if (message.type === 'error') {
        pending.delete(message.id);
        waiter.reject(new Error(JSON.stringify(message.payload)));
      }
    });
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
  });
  const query = 'mutation($c: ID!, $b: String!, $m: String!) { sendMessage(conversationId: $c, body: $b, clientMessageId: $m) { seq } }';
  let next = 0;
  return (conversationId: string, body: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const id = String(++next);
      pending.set(id, { resolve, reject });
      socket.send(JSON.stringify({ id, type: 'subscribe', payload: { query, variables: { c: conversationId, b: body, m: randomUUID() } } }));
    });
}

async function sender(port: number, userId: string) {
  const token = await signToken(SECRET, userId, { name: userId });
  const url = `http://127.0.0.1:${port}/graphql`;
  const query = 'mutation($c: ID!, $b: String!, $m: String!) { sendMessage(conversationId: $c, body: $b, clientMessageId: $m) { seq } }';
  return async (conversationId: string, body: string): Promise<number> => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables: { c: conversationId, b: body, m: randomUUID() } }),
    });
    const result = (await response.json()) as any;
    if (!result.data) throw new Error(JSON.stringify(result.errors));
    return result.data.sendMessage.seq;
  };
}

const FANOUT_QUERY = 'subscription($c: ID!) { messageAdded(conversationId: $c) { id seq body createdAt sender { id name } } }';

/** Size of the frame a fan-out subscriber receives, to make the raw baseline send the same bytes. */
function frameSize(seq: number): number {
  const payload = { data: { messageAdded: { id: randomUUID(), seq, body: 'fan-out bench message', createdAt: new Date().toISOString(), sender: { id: 'fan-0-0', name: 'fan-0-0' } } } };
  return JSON.stringify({ id: '1', type: 'next', payload }).length;
}

async function fanout(databaseUrl: string) {
  console.log(`\nfan-out to a group of ${MEMBERS} (one socket per member, ${WORKERS} client processes)`);
  const { ids, members } = await seedGroups(databaseUrl, 'fan', 1, MEMBERS);
  const conversation = ids[0]!;
  const users = members[0]!;

  // --- the chat API
  const chat = await startChatServer({ DATABASE_URL: databaseUrl, JWT_SECRET: SECRET });
  const clients = await Clients.start(WORKERS);
  const chatBefore = await chat.memory();
  let t = now();
  await clients.connect({ url: `ws://127.0.0.1:${chat.port}/graphql`, mode: 'graphql', users, secret: SECRET, query: FANOUT_QUERY, variables: { c: conversation } });
  log(`chat: ${MEMBERS} sockets connected and subscribed in ${round((now() - t) / 1000)} s`);
  const send = await sender(chat.port, users[0]!);
  // Warm up, and make sure every subscription is live.
  for (let i = 0; i < 3; i++) await clients.waitFor([await send(conversation, 'fan-out bench message')], MEMBERS);
  const chatAfter = await chat.memory();

  const toLast: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const started = now();
    const seq = await send(conversation, 'fan-out bench message');
    toLast.push((await clients.waitFor([seq], MEMBERS)) - started);
  }
  await clients.reset();
  t = now();
  const seqs = await Promise.all(Array.from({ length: BURST }, () => send(conversation, 'fan-out bench message')));
  const chatRate = (BURST * MEMBERS) / (((await clients.waitFor(seqs, MEMBERS, 120_000)) - t) / 1000);
  const size = frameSize(seqs[0]!);
  await clients.close();
  await chat.stop();

  // --- the raw ws baseline, same sockets, same bytes
  const raw = await startBaseline();
  const rawClients = await Clients.start(WORKERS);
  const rawBefore = await raw.memory();
  await rawClients.connect({ url: `ws://127.0.0.1:${raw.port}/`, mode: 'raw', users, secret: SECRET, query: '', variables: {} });
  const rawAfter = await raw.memory();
  const broadcast = (count: number, from: number) => fetch(`http://127.0.0.1:${raw.port}/broadcast?count=${count}&size=${size}&from=${from}`);
  const rawToLast: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const started = now();
    await broadcast(1, 1000 + i);
    rawToLast.push((await rawClients.waitFor([1000 + i], MEMBERS)) - started);
  }
  await rawClients.reset();
  t = now();
  await broadcast(BURST, 1);
  const rawRate = (BURST * MEMBERS) / (((await rawClients.waitFor(Array.from({ length: BURST }, (_, i) => i + 1), MEMBERS, 120_000)) - t) / 1000);
  await rawClients.close();
  await raw.stop();

  const perConnection = (before: NodeJS.MemoryUsage, after: NodeJS.MemoryUsage) => ({
    heapKB: (after.heapUsed + after.external - before.heapUsed - before.external) / MEMBERS / 1024,
    rssKB: (after.rss - before.rss) / MEMBERS / 1024,
  });
  return {
    members: MEMBERS,
    frameBytes: size,
    timeToLastMs: { chat: { p50: round(percentile(toLast, 50)), p95: round(percentile(toLast, 95)) }, raw: { p50: round(percentile(rawToLast, 50)), p95: round(percentile(rawToLast, 95)) } },
    framesPerSecond: { chat: Math.round(chatRate), raw: Math.round(rawRate), ratio: round(chatRate / rawRate, 2) },
    memoryPerConnection: (() => {
      const c = perConnection(chatBefore, chatAfter);
      const r = perConnection(rawBefore, rawAfter);
      return { chatHeapKB: round(c.heapKB), rawHeapKB: round(r.heapKB), ratio: round(c.heapKB / r.heapKB, 2), chatRssKB: round(c.rssKB), rawRssKB: round(r.rssKB) };
    })(),
  };
}

async function latency(databaseUrl: string) {
  const groups = 100;
  const size = 5;
  console.log(`\nsend→receive at ${RATE} messages/s for ${DURATION_S} s (${groups} groups of ${size}, every member subscribed to its inbox; sends over ${args.via === 'http' ? 'HTTP' : 'the WebSocket'})`);
  const { ids, members } = await seedGroups(databaseUrl, 'lat', groups, size);
  const chat: Measured = await startChatServer({ DATABASE_URL: databaseUrl, JWT_SECRET: SECRET });
  const clients = await Clients.start(Math.min(WORKERS, 2));
  const users = members.flat();
  await clients.connect({
    url: `ws://127.0.0.1:${chat.port}/graphql`,
    mode: 'graphql',
    users,
    secret: SECRET,
    query: 'subscription { inbox { ... on Message { seq body conversationId } } }',
    variables: {},
  });
  const senders = await Promise.all(members.map((group) => (args.via === 'http' ? sender : socketSender)(chat.port, group[0]!)));
  // Warm up every conversation's feed.
  await Promise.all(ids.map((id, g) => senders[g]!(id, `t=${now()}`)));
  await new Promise((resolve) => setTimeout(resolve, 500));
  await clients.latencies();

  let sent = 0;
  let failed = 0;
  const inflight = new Set<Promise<unknown>>();
  const started = now();
  const total = RATE * DURATION_S;
  // Open loop: each message is sent on schedule whether or not earlier ones have been answered.
  while (sent < total) {
    const due = started + (sent * 1000) / RATE;
    const wait = due - now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    const g = sent % groups;
    const p = senders[g]!(ids[g]!, `t=${now()}`).catch(() => failed++);
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
    sent++;
  }
  const sendSeconds = (now() - started) / 1000;
  await Promise.all(inflight);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const latencies = await clients.latencies();
  await clients.close();
  await chat.stop();
  return {
    rate: RATE,
    sendsOver: args.via === 'http' ? 'http' : 'websocket',
    achievedRate: Math.round(sent / sendSeconds),
    failedSends: failed,
    deliveries: { expected: (sent - failed) * size, received: latencies.length },
    latencyMs: { p50: round(percentile(latencies, 50)), p95: round(percentile(latencies, 95)), p99: round(percentile(latencies, 99)), max: round(Math.max(...latencies)) },
  };
}

async function main() {
  const database = await createBenchDatabase('chat_bench');
  const results: Record<string, unknown> = { at: new Date().toISOString(), node: process.version };
  try {
    if (!args.only || args.only === 'fanout') results.fanout = await fanout(database.url);
    if (!args.only || args.only === 'latency') results.latency = await latency(database.url);
    if (!args.only || args.only === 'catchup') {
      results.catchup = await catchUpScenario(database.url, SECRET, { messages: 5000, edits: 3000, reactions: 2000, rounds: 7 });
    }
  } finally {
    await database.drop();
  }
  console.log('\n' + JSON.stringify(results, null, 2));
  const f = results.fanout as Awaited<ReturnType<typeof fanout>> | undefined;
  const l = results.latency as Awaited<ReturnType<typeof latency>> | undefined;
  const c = results.catchup as Awaited<ReturnType<typeof catchUpScenario>> | undefined;
  console.log('\n  target                                                   measured');
  if (f) {
    console.log(`  message to ${f.members} members reaches the last in < 200 ms    p50 ${f.timeToLastMs.chat.p50} ms, p95 ${f.timeToLastMs.chat.p95} ms (raw ws p50 ${f.timeToLastMs.raw.p50} ms)`);
    console.log(`  fan-out throughput >= 0.5x raw ws                        ${f.framesPerSecond.ratio}x (${f.framesPerSecond.chat} vs ${f.framesPerSecond.raw} frames/s, ${f.frameBytes} B)`);
    console.log(`  idle connection + subscription <= 2x raw ws socket       ${f.memoryPerConnection.ratio}x (${f.memoryPerConnection.chatHeapKB} vs ${f.memoryPerConnection.rawHeapKB} KB heap; RSS ${f.memoryPerConnection.chatRssKB} vs ${f.memoryPerConnection.rawRssKB} KB)`);
  }
  if (l) {
    console.log(`  p99 send→receive < 25 ms at ${l.rate} msg/s (${l.sendsOver})      p99 ${l.latencyMs.p99} ms (p50 ${l.latencyMs.p50}, max ${l.latencyMs.max}; ${l.achievedRate} msg/s sent, ${l.deliveries.received}/${l.deliveries.expected} delivered)`);
  }
  if (c) {
    console.log(`  catch-up after ${c.changes} changes within 3x a raw SELECT   ${c.ratio}x (${c.catchUpMs} vs ${c.rawSelectMs} ms for ${c.messagesHeld} messages)`);
  }
  await mkdir('.data/bench', { recursive: true });
  await writeFile('.data/bench/latest.json', JSON.stringify(results, null, 2));
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
