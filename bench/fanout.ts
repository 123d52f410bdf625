import { log, now, percentile, round, type Context, type Row } from './common.js';
import { seedGroups } from './database.js';
import { KINDS, LABEL, startTarget, type Kind, type Target } from './targets.js';

/**
 * fanout: one message to a group of `members` sockets (one per member):
 * time from send to the last subscriber (p50/p95 over `rounds`), and
 * sustained deliveries/s for a burst of `burst` messages; ours vs Socket.IO
 * vs raw ws. Every socket must get every seq once, in order.
 *
 * memory: heap (+ external) per idle connection with its subscription, after
 * forced GCs through the inspector, for the same three.
 */
export async function fanoutScenario(ctx: Context, options: { members: number; rounds: number; burst: number }) {
  const { members, rounds, burst } = options;
  console.log(`\nfanout: one message to a group of ${members} (one socket per member, ${ctx.workers} client processes)`);
  const { ids, members: groups } = await seedGroups(ctx.databaseUrl, `fan${Date.now() % 100000}`, 1, members);
  const users = groups[0]!;
  const results = {} as Record<Kind, { p50: number; p95: number; deliveriesPerSecond: number }>;
  for (const kind of KINDS) {
    const target = await startTarget(kind, ctx, ids[0]!, users[0]!);
    try {
      results[kind] = await measureFanout(target, users, rounds, burst);
      log(`${LABEL[kind].padEnd(10)} to the last of ${members}: p50 ${results[kind].p50} ms, p95 ${results[kind].p95} ms; ${results[kind].deliveriesPerSecond} deliveries/s`);
    } finally {
      await target.stop();
    }
  }
  const { ours, raw, socketio } = results;
  const rows: Row[] = [
    { goal: `fanout ${members}: p50 to last <= 1.15x raw ws`, measured: `${ours.p50} ms (p95 ${ours.p95})`, baseline: `raw ${raw.p50} ms, Socket.IO ${socketio.p50} ms`, ratio: round(ours.p50 / raw.p50, 2), met: ours.p50 <= 1.15 * raw.p50 },
    {
      goal: `fanout ${members}: deliveries/s >= 0.9x raw ws`,
      measured: `${ours.deliveriesPerSecond}/s`,
      baseline: `raw ${raw.deliveriesPerSecond}/s, Socket.IO ${socketio.deliveriesPerSecond}/s`,
      ratio: round(ours.deliveriesPerSecond / raw.deliveriesPerSecond, 2),
      met: ours.deliveriesPerSecond >= 0.9 * raw.deliveriesPerSecond,
    },
  ];
  return { result: { members, rounds, burst, ...results }, rows };
}

/** Connects `users` to a started target, then times `rounds` single messages to the last socket and a burst of `burst`. */
export async function measureFanout(target: Target, users: string[], rounds: number, burst: number) {
  const members = users.length;
  const what = `fanout ${target.kind}`;
  await target.connect(users);
  // Make sure every subscription is live, and warm up.
  await target.settle(members);
  for (let i = 0; i < 3; i++) await target.clients.waitFor([await target.send()], members);
  const toLast: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const started = now();
    const seq = await target.send();
    toLast.push((await target.clients.waitFor([seq], members)) - started);
  }
  await target.clients.verify(`${what} rounds`);
  await target.clients.reset();
  const started = now();
  const seqs = await target.burst(burst);
  const rate = (burst * members) / (((await target.clients.waitFor(seqs, members, 120_000)) - started) / 1000);
  await target.clients.verify(`${what} burst`, Math.max(...seqs));
  return { p50: round(percentile(toLast, 50)), p95: round(percentile(toLast, 95)), deliveriesPerSecond: Math.round(rate) };
}

export async function memoryScenario(ctx: Context, options: { members: number }) {
  const { members } = options;
  console.log(`\nmemory: heap per idle connection with its subscription (${members} sockets, after forced GC)`);
  const { ids, members: groups } = await seedGroups(ctx.databaseUrl, `mem${Date.now() % 100000}`, 1, members);
  const users = groups[0]!;
  const results = {} as Record<Kind, { heapKB: number; rssKB: number }>;
  for (const kind of KINDS) {
    const target = await startTarget(kind, ctx, ids[0]!, users[0]!);
    try {
      const before = await target.server!.memory();
      await target.connect(users);
      // One delivery proves every subscription is live before it is weighed.
      const { seq } = await target.settle(members);
      await target.clients.verify(`memory ${LABEL[kind]}`, seq);
      const after = await target.server!.memory();
      results[kind] = {
        heapKB: round((after.heapUsed + after.external - before.heapUsed - before.external) / members / 1024, 2),
        rssKB: round((after.rss - before.rss) / members / 1024, 2),
      };
      log(`${LABEL[kind].padEnd(10)} ${results[kind].heapKB} KB heap, ${results[kind].rssKB} KB RSS per connection`);
    } finally {
      await target.stop();
    }
  }
  const { ours, raw, socketio } = results;
  const rows: Row[] = [
    { goal: 'memory: heap per idle subscribed connection <= 1.5x raw ws', measured: `${ours.heapKB} KB`, baseline: `raw ${raw.heapKB} KB, Socket.IO ${socketio.heapKB} KB`, ratio: round(ours.heapKB / raw.heapKB, 2), met: ours.heapKB <= 1.5 * raw.heapKB },
  ];
  return { result: { members, ...results }, rows };
}
