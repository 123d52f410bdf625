import { log, now, round, type Context, type Row } from './common.js';
import { seedGroups } from './database.js';
import { KINDS, LABEL, startTarget, type Kind } from './targets.js';

/**
 * connect: `clients` sockets connect, authenticate and subscribe, `batch`
 * handshakes in flight per client process. Measured from the first
 * handshake until a message sent afterwards has reached every socket (the
 * one way to know that a graphql-ws subscription is live; the others do the
 * same so that the job is the same), as wall time and as the server
 * process's CPU time per client (getrusage through the inspector: on a
 * shared machine CPU time holds still where wall time does not).
 *   ours       graphql-ws connection_init with a JWT, subscribe messageAdded(conversationId)
 *   Socket.IO  handshake with auth: { token }, 'join' with an ack
 *   raw ws     a frame with the JWT and room, verified with jose, answered
 */
export async function connectScenario(ctx: Context, options: { clients: number; batch: number }) {
  const { clients: count, batch } = options;
  console.log(`\nconnect: ${count} clients connect, authenticate and subscribe (${batch} handshakes in flight per client process)`);
  const { ids, members } = await seedGroups(ctx.databaseUrl, `con${Date.now() % 100000}`, 1, count);
  const users = members[0]!;
  const results = {} as Record<Kind, { wallMs: number; cpuMsPerClient: number; retries: number }>;
  for (const kind of KINDS) {
    const target = await startTarget(kind, ctx, ids[0]!, users[0]!, { auth: true });
    try {
      const cpuBefore = await target.server!.cpu();
      const started = now();
      await target.connect(users, batch);
      const { seq, at } = await target.settle(count);
      const cpu = (await target.server!.cpu()) - cpuBefore;
      const { retries } = await target.clients.verify(`connect ${LABEL[kind]}`, seq);
      results[kind] = { wallMs: Math.round(at - started), cpuMsPerClient: round(cpu / 1000 / count, 3), retries };
      log(`${LABEL[kind].padEnd(10)} all ${count} subscribed in ${results[kind].wallMs} ms; server CPU ${results[kind].cpuMsPerClient} ms per client (${retries} handshakes retried)`);
    } finally {
      await target.stop();
    }
  }
  const { ours, raw, socketio } = results;
  const rows: Row[] = [
    {
      goal: `connect ${count}: server CPU per client <= Socket.IO`,
      measured: `${ours.cpuMsPerClient} ms`,
      baseline: `Socket.IO ${socketio.cpuMsPerClient} ms, raw ${raw.cpuMsPerClient} ms`,
      ratio: round(ours.cpuMsPerClient / socketio.cpuMsPerClient, 2),
      met: ours.cpuMsPerClient <= socketio.cpuMsPerClient,
    },
    {
      goal: `connect ${count}: wall time to all subscribed <= Socket.IO`,
      measured: `${ours.wallMs} ms`,
      baseline: `Socket.IO ${socketio.wallMs} ms, raw ${raw.wallMs} ms`,
      ratio: round(ours.wallMs / socketio.wallMs, 2),
      met: ours.wallMs <= socketio.wallMs,
    },
  ];
  return { result: { clients: count, batch, ...results }, rows };
}
