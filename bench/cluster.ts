import path from 'node:path';
import { Cluster } from '../ops/cluster.js';
import { log, round, type Context, type Row } from './common.js';
import { seedGroups } from './database.js';
import { measureFanout } from './fanout.js';
import { measureLatency, type LatencyOptions } from './latency.js';
import { startTarget } from './targets.js';

/**
 * cluster: three instances behind nginx sharing PostgreSQL and Redis (the
 * same ops/cluster.ts that `npm run cluster` and test/cluster.test.ts use,
 * with deploy/nginx's template), vs one instance as `npm start` runs it:
 * send→receive latency (one run at `rate`) and fan-out to a group of
 * `members` whose sockets nginx spreads over the instances. The nginx config
 * ops/nginx.ts writes has one worker with 16,384 connections, two per
 * proxied socket: keep `members` under about 8,000.
 */
export async function clusterScenario(ctx: Context, options: { members: number; rounds: number; burst: number; latency: LatencyOptions }) {
  const { members, rounds, burst } = options;
  const latencyOptions = { ...options.latency, runs: 1 };
  console.log(`\ncluster: 3 instances behind nginx with Redis vs one instance (latency at ${latencyOptions.rate} msg/s; fan-out to ${members})`);
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const { ids, members: groups } = await seedGroups(ctx.databaseUrl, `cl${Date.now() % 100000}`, 1, members);
  const users = groups[0]!;

  // --- one instance
  const [singleLatency] = await measureLatency(ctx, latencyOptions);
  const single = await startTarget('ours', ctx, ids[0]!, users[0]!);
  const singleFanout = await measureFanout(single, users, rounds, burst).finally(() => single.stop());
  log(`one instance: latency p50 ${singleLatency!.p50} ms, p99 ${singleLatency!.p99} ms; fan-out p50 ${singleFanout.p50} ms, ${singleFanout.deliveriesPerSecond} deliveries/s`);

  // --- three behind nginx
  const cluster = await Cluster.start({
    instances: 3,
    dir: path.resolve('.data/bench/cluster'),
    env: {
      DATABASE_URL: ctx.databaseUrl,
      REDIS_URL: redisUrl,
      JWT_SECRET: ctx.secret,
      LOG_LEVEL: 'warn',
      SEND_RATE_PER_SECOND: '0',
      CONNECT_RATE_PER_MINUTE: '0',
      CONNECT_RATE_PER_MINUTE_PER_ADDRESS: '0',
      MAX_CONNECTIONS_PER_USER: '0',
    },
  });
  let clusterLatency: Awaited<ReturnType<typeof measureLatency>>[number];
  let clusterFanout: Awaited<ReturnType<typeof measureFanout>>;
  try {
    [clusterLatency] = (await measureLatency(ctx, latencyOptions, cluster.url)) as [typeof clusterLatency];
    const target = await startTarget('ours', ctx, ids[0]!, users[0]!, { httpUrl: cluster.url });
    clusterFanout = await measureFanout(target, users, rounds, burst).finally(() => target.stop());
  } finally {
    await cluster.stop();
  }
  log(`3 behind nginx: latency p50 ${clusterLatency.p50} ms, p99 ${clusterLatency.p99} ms; fan-out p50 ${clusterFanout.p50} ms, ${clusterFanout.deliveriesPerSecond} deliveries/s`);
  const rows: Row[] = [
    {
      goal: 'cluster: p99 latency within 1.5x one instance',
      measured: `${clusterLatency.p99} ms`,
      baseline: `${singleLatency!.p99} ms`,
      ratio: round(clusterLatency.p99 / singleLatency!.p99, 2),
      met: clusterLatency.p99 <= 1.5 * singleLatency!.p99,
    },
    {
      goal: `cluster: fan-out ${members} p50 to last within 1.5x one instance`,
      measured: `${clusterFanout.p50} ms`,
      baseline: `${singleFanout.p50} ms`,
      ratio: round(clusterFanout.p50 / singleFanout.p50, 2),
      met: clusterFanout.p50 <= 1.5 * singleFanout.p50,
    },
    {
      goal: `cluster: fan-out ${members} deliveries/s within 1.5x one instance`,
      measured: `${clusterFanout.deliveriesPerSecond}/s`,
      baseline: `${singleFanout.deliveriesPerSecond}/s`,
      ratio: round(clusterFanout.deliveriesPerSecond / singleFanout.deliveriesPerSecond, 2),
      met: clusterFanout.deliveriesPerSecond * 1.5 >= singleFanout.deliveriesPerSecond,
    },
  ];
  return { result: { members, single: { latency: singleLatency, fanout: singleFanout }, cluster: { latency: clusterLatency, fanout: clusterFanout } }, rows };
}
