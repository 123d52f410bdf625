import { log, now, percentile, round, socketSender, type Context, type Row } from './common.js';
import { seedGroups } from './database.js';
import { Clients, startChatServer } from './processes.js';
import { MESSAGE_ADDED } from './targets.js';

/**
 * sender: what sendMessage costs the sender (client-observed, over its
 * graphql-ws socket) into a conversation of 2 subscribed members vs one of
 * `members` subscribed members, alternating, `sends` each. Each send's
 * deliveries are awaited before the next, so the figure is the send path
 * alone: if the server made the sender wait for fan-out, it would show here.
 */
export async function senderScenario(ctx: Context, options: { members: number; sends: number }) {
  const { members, sends } = options;
  console.log(`\nsender: sendMessage latency into 2 members vs ${members} subscribed members (${sends} sends each)`);
  const prefix = `snd${Date.now() % 100000}`;
  const small = await seedGroups(ctx.databaseUrl, `${prefix}s`, 1, 2);
  const big = await seedGroups(ctx.databaseUrl, `${prefix}b`, 1, members);
  const chat = await startChatServer({ DATABASE_URL: ctx.databaseUrl, JWT_SECRET: ctx.secret });
  const clients = await Clients.start(ctx.workers);
  const wsUrl = `ws://127.0.0.1:${chat.port}/graphql`;
  const groups = [
    { id: small.ids[0]!, users: small.members[0]!, times: [] as number[] },
    { id: big.ids[0]!, users: big.members[0]!, times: [] as number[] },
  ];
  try {
    const users = groups.flatMap((group) => group.users);
    await clients.connect({ url: wsUrl, mode: 'graphql', users, secret: ctx.secret, query: MESSAGE_ADDED, variables: users.map((_, i) => ({ c: i < 2 ? groups[0]!.id : groups[1]!.id })) });
    const senders = await Promise.all(groups.map((group) => socketSender(wsUrl, ctx.secret, group.users[0]!)));
    const settle = async (g: number) => {
      for (let tries = 0; ; tries++) {
        const seq = await senders[g]!(groups[g]!.id, 'sender bench message');
        try {
          return await clients.waitFor([seq], groups[g]!.users.length, 500);
        } catch (error) {
          if (tries > 200) throw error;
        }
      }
    };
    await settle(0);
    await settle(1);
    for (let i = 0; i < sends + 3; i++) {
      for (const g of [0, 1]) {
        const group = groups[g]!;
        const started = now();
        const seq = await senders[g]!(group.id, 'sender bench message');
        // The first three are a warm-up.
        if (i >= 3) group.times.push(now() - started);
        await clients.waitFor([seq], group.users.length);
      }
    }
    await clients.verify('sender');
    for (const send of senders) send.close();
  } finally {
    await clients.close();
    await chat.stop();
  }
  const [two, many] = groups.map((group) => ({ p50: round(percentile(group.times, 50), 2), p95: round(percentile(group.times, 95), 2) }));
  log(`2 members: p50 ${two!.p50} ms, p95 ${two!.p95} ms; ${members} members: p50 ${many!.p50} ms, p95 ${many!.p95} ms`);
  const rows: Row[] = [
    {
      goal: `sendMessage into ${members} members <= 1.2x into 2 (p50)`,
      measured: `${many!.p50} ms (p95 ${many!.p95})`,
      baseline: `${two!.p50} ms (p95 ${two!.p95})`,
      ratio: round(many!.p50 / two!.p50, 2),
      met: many!.p50 <= 1.2 * two!.p50,
    },
  ];
  return { result: { members, sends, twoMembers: two, manyMembers: many }, rows };
}
