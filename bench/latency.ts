import { httpSender, log, now, percentile, round, sleep, socketSender, type Context, type Row } from './common.js';
import { seedGroups } from './database.js';
import { Clients, startChatServer } from './processes.js';

export interface LatencyOptions {
  rate: number;
  durationS: number;
  runs: number;
  via: 'ws' | 'http';
}

/**
 * Send→receive latency at `rate` messages/s, open loop (each message is sent
 * on schedule whether or not earlier ones have been answered), spread over
 * 100 groups of 5, every member subscribed to its inbox; `runs` runs of
 * `durationS` s on the same server and sockets. Every member must receive
 * every message of its group once and in order, and no send may fail.
 * `graphqlUrl` runs it against a server started elsewhere (the cluster).
 */
export async function measureLatency(ctx: Context, options: LatencyOptions, graphqlUrl?: string) {
  const { rate, durationS, runs, via } = options;
  const groups = 100;
  const size = 5;
  const { ids, members } = await seedGroups(ctx.databaseUrl, `lat${Date.now() % 100000}`, groups, size);
  const chat = graphqlUrl ? undefined : await startChatServer({ DATABASE_URL: ctx.databaseUrl, JWT_SECRET: ctx.secret });
  const httpUrl = graphqlUrl ?? `http://127.0.0.1:${chat!.port}/graphql`;
  const clients = await Clients.start(Math.min(ctx.workers, 2));
  const senders: Awaited<ReturnType<typeof socketSender>>[] = [];
  const perRun: { p50: number; p95: number; p99: number; max: number; ackP50: number; ackP99: number; achievedRate: number; delivered: number }[] = [];
  try {
    const users = members.flat();
    await clients.connect({ url: httpUrl.replace(/^http/, 'ws'), mode: 'graphql', users, secret: ctx.secret, query: 'subscription { inbox { ... on Message { seq body conversationId } } }', variables: {} });
    senders.push(...(await Promise.all(members.map((group) => (via === 'http' ? httpSender(httpUrl, ctx.secret, group[0]!) : socketSender(httpUrl.replace(/^http/, 'ws'), ctx.secret, group[0]!))))));
    // Warm up every conversation's feed, until every inbox is live.
    for (let tries = 0; ; tries++) {
      const seqs = await Promise.all(ids.map((id, g) => senders[g]!(id, `t=${now()}`)));
      try {
        await clients.waitFor([Math.max(...seqs)], users.length, 1000);
        break;
      } catch (error) {
        if (tries > 60) throw error;
      }
    }
    await sleep(300);
    await clients.latencies();
    for (let run = 1; run <= runs; run++) {
      let sent = 0;
      let failed = 0;
      const inflight = new Set<Promise<unknown>>();
      // How long each send took to be acknowledged (stored): what part of send → receive is the write path.
      const acks: number[] = [];
      const started = now();
      const total = rate * durationS;
      while (sent < total) {
        const due = started + (sent * 1000) / rate;
        const wait = due - now();
        if (wait > 1) await sleep(wait);
        const g = sent % groups;
        const at = now();
        const p = senders[g]!(ids[g]!, `t=${at}`).then(
          () => void acks.push(now() - at),
          () => failed++,
        );
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
        sent++;
      }
      const sendSeconds = (now() - started) / 1000;
      await Promise.all(inflight);
      const expected = (sent - failed) * size;
      const latencies: number[] = [];
      for (const deadline = Date.now() + 30_000; latencies.length < expected && Date.now() < deadline; await sleep(100)) latencies.push(...(await clients.latencies()));
      if (failed) throw new Error(`latency run ${run}: ${failed} of ${sent} sends failed`);
      if (latencies.length !== expected) throw new Error(`latency run ${run}: ${latencies.length} of ${expected} deliveries`);
      await clients.verify(`latency run ${run}`);
      const result = {
        p50: round(percentile(latencies, 50)),
        p95: round(percentile(latencies, 95)),
        p99: round(percentile(latencies, 99)),
        max: round(Math.max(...latencies)),
        ackP50: round(percentile(acks, 50)),
        ackP99: round(percentile(acks, 99)),
        achievedRate: Math.round(sent / sendSeconds),
        delivered: latencies.length,
      };
      perRun.push(result);
      log(`run ${run}: p50 ${result.p50} ms, p95 ${result.p95} ms, p99 ${result.p99} ms, max ${result.max} ms; acknowledged p50 ${result.ackP50} ms, p99 ${result.ackP99} ms (${result.achievedRate} msg/s sent, ${result.delivered} delivered)`);
    }
  } finally {
    for (const send of senders) send.close();
    await clients.close();
    await chat?.stop();
  }
  return perRun;
}

export async function latencyScenario(ctx: Context, options: LatencyOptions) {
  console.log(`\nlatency: send→receive at ${options.rate} messages/s, ${options.runs} runs of ${options.durationS} s (100 groups of 5, inboxes; sends over ${options.via === 'http' ? 'HTTP' : 'the WebSocket'})`);
  const runs = await measureLatency(ctx, options);
  const under = runs.filter((run) => run.p99 < 25).length;
  const rows: Row[] = [
    {
      goal: `latency: p99 < 25 ms at ${options.rate} msg/s in ${runs.length} of ${runs.length} runs`,
      measured: `p99 ${runs.map((run) => run.p99).join(', ')} ms`,
      baseline: '25 ms (absolute)',
      ratio: round(Math.max(...runs.map((run) => run.p99)) / 25, 2),
      met: under === runs.length,
    },
  ];
  return { result: { ...options, runs }, rows };
}
