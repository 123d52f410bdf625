import { log, now, round, sleep, socketSender, type Context, type Row } from './common.js';
import { seedGroups } from './database.js';
import { Clients, startBaseline, startChatServer } from './processes.js';
import { MESSAGE_ADDED } from './targets.js';

/**
 * storm: `clients` members of one conversation, each subscribed with a
 * cursor (messageAdded(conversationId, afterSeq)), all dropped at once (every
 * socket terminated); `missed` messages are sent while they are away; then
 * all reconnect at once (`wave` handshakes in flight per client process),
 * each resuming after the last seq it saw. Measured: from the first
 * reconnect until every socket holds every missed message, each exactly once
 * and in order, vs the time a raw ws server takes to accept the same
 * reconnection storm. A live message afterwards must follow without a gap.
 */
export async function stormScenario(ctx: Context, options: { clients: number; missed: number; wave: number }) {
  const { clients: count, missed, wave } = options;
  console.log(`\nstorm: ${count} subscribed clients dropped at once, ${missed} messages sent meanwhile, all reconnecting from their cursors (${wave} in flight per client process)`);
  const { ids, members } = await seedGroups(ctx.databaseUrl, `st${Date.now() % 100000}`, 1, count);
  const conversation = ids[0]!;
  const users = members[0]!;

  // --- ours
  const chat = await startChatServer({ DATABASE_URL: ctx.databaseUrl, JWT_SECRET: ctx.secret });
  const clients = await Clients.start(ctx.workers);
  const wsUrl = `ws://127.0.0.1:${chat.port}/graphql`;
  let oursMs: number;
  let oursRetries = 0;
  try {
    const send = await socketSender(wsUrl, ctx.secret, users[0]!);
    // Two messages before anyone connects; subscribing from afterSeq 0 replays them, so every socket starts with a cursor.
    await send(conversation, 'before 1');
    let seq = await send(conversation, 'before 2');
    await clients.connect({ url: wsUrl, mode: 'graphql', users, secret: ctx.secret, query: MESSAGE_ADDED, variables: { c: conversation, a: 0 }, batch: wave });
    await clients.waitFor([1, 2], count, 120_000);
    const { retries: before } = await clients.verify('storm: before the drop', seq);
    await clients.drop();
    await sleep(200);
    const away: number[] = [];
    for (let i = 0; i < missed; i++) away.push((seq = await send(conversation, `while away ${i}`)));
    const started = now();
    await clients.resume('a', wave);
    oursMs = (await clients.waitFor(away, count, 300_000)) - started;
    const { retries } = await clients.verify('storm: caught up', seq);
    oursRetries = retries - before;
    const live = await send(conversation, 'live after the storm');
    await clients.waitFor([live], count);
    await clients.verify('storm: live after catching up', live);
    send.close();
  } finally {
    await clients.close();
    await chat.stop();
  }
  log(`ours    all ${count} re-subscribed and caught up ${missed} messages in ${Math.round(oursMs)} ms (${oursRetries} reconnections retried after a refused or reset handshake)`);

  // --- raw ws: the same storm of reconnections, nothing to authenticate or replay
  const raw = await startBaseline();
  const rawClients = await Clients.start(ctx.workers);
  let rawMs: number;
  let rawRetries = 0;
  try {
    await rawClients.connect({ url: `ws://127.0.0.1:${raw.port}/`, mode: 'raw', users, secret: ctx.secret, query: '', variables: {}, batch: wave });
    const { retries: before } = await rawClients.verify('storm raw: before the drop');
    await rawClients.drop();
    await sleep(200);
    const started = now();
    await rawClients.resume('a', wave);
    rawMs = now() - started;
    await fetch(`http://127.0.0.1:${raw.port}/broadcast?count=1&size=100&from=1`);
    await rawClients.waitFor([1], count);
    rawRetries = (await rawClients.verify('storm raw', 1)).retries - before;
  } finally {
    await rawClients.close();
    await raw.stop();
  }
  log(`raw ws  accepted ${count} reconnections in ${Math.round(rawMs)} ms (${rawRetries} retried)`);
  const rows: Row[] = [
    {
      goal: `storm ${count}: all resumed and caught up <= 2x raw ws reconnecting`,
      measured: `${Math.round(oursMs)} ms`,
      baseline: `${Math.round(rawMs)} ms`,
      ratio: round(oursMs / rawMs, 2),
      met: oursMs <= 2 * rawMs,
    },
  ];
  return { result: { clients: count, missed, wave, oursMs: Math.round(oursMs), rawMs: Math.round(rawMs), oursRetries, rawRetries }, rows };
}
