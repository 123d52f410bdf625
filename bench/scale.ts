import { log, now, round, sleep, socketSender, type Context, type Row } from './common.js';
import { seedGroups } from './database.js';
import { Clients, startChatServer } from './processes.js';
import { MESSAGE_ADDED } from './targets.js';

/**
 * scale: `clients` connections (default 19,000: just under the 20,000
 * open-file limit, leaving the server room for its own descriptors), each
 * with its messageAdded subscription, on one instance, held by `workers`
 * client processes (each has the same limit, so no one process holds them
 * all). Reported: heap and RSS (after forced GC), the server's CPU while
 * idle over `idle` s (heartbeats only), and the time for one message to
 * reach all of them. An absolute report; if the connections cannot all be
 * opened, the error says how far it got.
 */
export async function scaleScenario(ctx: Context, options: { clients: number; workers: number; idleS: number; batch: number }) {
  const { clients: count, workers, idleS, batch } = options;
  console.log(`\nscale: ${count} subscribed connections on one instance (${workers} client processes)`);
  const { ids, members } = await seedGroups(ctx.databaseUrl, `sc${Date.now() % 100000}`, 1, count);
  const conversation = ids[0]!;
  const users = members[0]!;
  const chat = await startChatServer({ DATABASE_URL: ctx.databaseUrl, JWT_SECRET: ctx.secret });
  const clients = await Clients.start(workers);
  const wsUrl = `ws://127.0.0.1:${chat.port}/graphql`;
  try {
    const empty = await chat.memory();
    const send = await socketSender(wsUrl, ctx.secret, users[0]!);
    let started = now();
    await clients.connect({ url: wsUrl, mode: 'graphql', users, secret: ctx.secret, query: MESSAGE_ADDED, variables: { c: conversation }, batch });
    // Until one message reaches every socket: all subscriptions are live.
    for (let tries = 0; ; tries++) {
      const seq = await send(conversation, 'scale bench message');
      try {
        await clients.waitFor([seq], count, 1000);
        break;
      } catch (error) {
        if (tries > 120) throw error;
      }
    }
    const connectMs = now() - started;
    const memory = await chat.memory();
    const cpuBefore = await chat.cpu();
    await sleep(idleS * 1000);
    const idleCpuPercent = ((await chat.cpu()) - cpuBefore) / 10 / (idleS * 1000);
    started = now();
    const seq = await send(conversation, 'scale bench message');
    const broadcastMs = (await clients.waitFor([seq], count, 120_000)) - started;
    await clients.verify('scale', seq);
    send.close();
    const result = {
      clients: count,
      connectMs: Math.round(connectMs),
      heapMB: round((memory.heapUsed + memory.external) / 1024 ** 2),
      rssMB: round(memory.rss / 1024 ** 2),
      heapKBPerConnection: round((memory.heapUsed + memory.external - empty.heapUsed - empty.external) / count / 1024, 2),
      idleCpuPercent: round(idleCpuPercent, 2),
      broadcastMs: Math.round(broadcastMs),
    };
    log(
      `${count} connected and subscribed in ${result.connectMs} ms; heap ${result.heapMB} MB (${result.heapKBPerConnection} KB each), RSS ${result.rssMB} MB; idle CPU ${result.idleCpuPercent}% over ${idleS} s; one message to all in ${result.broadcastMs} ms`,
    );
    const rows: Row[] = [
      {
        goal: `scale: ${count} subscribed connections on one instance`,
        measured: `heap ${result.heapMB} MB, RSS ${result.rssMB} MB, idle CPU ${result.idleCpuPercent}%, to all ${result.broadcastMs} ms`,
        baseline: '(reported)',
        ratio: null,
        met: true,
      },
    ];
    return { result, rows };
  } finally {
    await clients.close();
    await chat.stop();
  }
}
