import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { catchUpScenario } from './catch-up.js';
import type { Context, Row } from './common.js';
import { createBenchDatabase } from './database.js';
import { clusterScenario } from './cluster.js';
import { connectScenario } from './connect.js';
import { fanoutScenario, memoryScenario } from './fanout.js';
import { latencyScenario } from './latency.js';
import { scaleScenario } from './scale.js';
import { senderScenario } from './sender.js';
import { stormScenario } from './storm.js';

/**
 * `npm run bench`: the delivery path against the bar in the README, each
 * number next to its baseline measured on the same machine in the same run
 * (ratios, not absolute timings, are what carry across machines): a raw `ws`
 * server doing the least the job needs (the floor), and a Socket.IO 4 rooms
 * server doing the same job as our API (the peer, bench/peer-socketio.ts).
 *
 *   fanout    one message to a group of --members: p50/p95 to the last socket, deliveries/s (vs raw ws, Socket.IO)
 *   memory    heap per idle connection with its subscription, --members of them (vs raw ws, Socket.IO)
 *   connect   --connect-clients connect, authenticate, subscribe: wall and server CPU per client (vs Socket.IO, raw ws)
 *   sender    sendMessage latency into --members subscribed members vs into 2
 *   latency   p99 send→receive at --rate msg/s, --runs runs of --duration s (vs 25 ms)
 *   catchup   a member catching up after 10,000 changes, vs a raw SELECT of what it ends up holding
 *   storm     --storm-clients dropped at once, reconnecting from their cursors (vs raw ws reconnecting)
 *   scale     --scale-clients subscribed connections on one instance: memory, idle CPU, one broadcast
 *   cluster   three instances behind nginx with Redis vs one: latency and fan-out to --cluster-members
 *
 * `--only a,b` runs those scenarios alone; `--clients N` sets every client
 * count (connect, storm, scale) at once, for small runs. Every scenario checks
 * that each socket got what it measures exactly once and in order; a
 * scenario that fails is reported as such in the summary and the run exits 1.
 */
const SCENARIOS = ['fanout', 'memory', 'connect', 'sender', 'latency', 'catchup', 'storm', 'scale', 'cluster'] as const;
const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    workers: { type: 'string', default: '4' },
    members: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '15' },
    burst: { type: 'string', default: '20' },
    clients: { type: 'string' },
    'connect-clients': { type: 'string', default: '2500' },
    batch: { type: 'string', default: '200' },
    sends: { type: 'string', default: '30' },
    rate: { type: 'string', default: '1000' },
    duration: { type: 'string', default: '10' },
    runs: { type: 'string', default: '5' },
    via: { type: 'string', default: 'ws' },
    'storm-clients': { type: 'string', default: '10000' },
    missed: { type: 'string', default: '20' },
    wave: { type: 'string', default: '250' },
    'scale-clients': { type: 'string', default: '19000' },
    'scale-workers': { type: 'string', default: '4' },
    idle: { type: 'string', default: '20' },
    'cluster-members': { type: 'string', default: '5000' },
  },
});
if (args.clients) args['connect-clients'] = args['storm-clients'] = args['scale-clients'] = args.clients;
if (args.via !== 'ws' && args.via !== 'http') throw new Error('--via: ws or http');
const only = args.only ? args.only.split(',') : [...SCENARIOS];
for (const name of only) if (!(SCENARIOS as readonly string[]).includes(name)) throw new Error(`--only: no scenario ${name} (${SCENARIOS.join(', ')})`);
const number = (name: keyof typeof args) => {
  const value = Number(args[name]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name}: a positive number, not ${args[name]}`);
  return value;
};

function printSummary(rows: Row[]) {
  const header = ['goal', 'measured', 'baseline', 'ratio', 'met'];
  const lines = rows.map((row) => [row.goal, row.measured, row.baseline, row.ratio === null ? '-' : `${row.ratio}x`, row.met ? 'yes' : 'NO']);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((line) => line[i]!.length)));
  const format = (cells: string[]) => '  ' + cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ');
  console.log('\n' + format(header));
  console.log(format(widths.map((w) => '-'.repeat(w))));
  for (const line of lines) console.log(format(line));
}

async function main() {
  const database = await createBenchDatabase('chat_bench');
  const ctx: Context = { databaseUrl: database.url, secret: randomBytes(32).toString('hex'), workers: number('workers') };
  const results: Record<string, unknown> = { at: new Date().toISOString(), node: process.version, args };
  const rows: Row[] = [];
  let failed = false;
  const run = async (name: (typeof SCENARIOS)[number], scenario: () => Promise<{ result: unknown; rows: Row[] }>) => {
    if (!only.includes(name)) return;
    try {
      const outcome = await scenario();
      results[name] = outcome.result;
      rows.push(...outcome.rows);
    } catch (error) {
      // Loudly, but the other scenarios still run and the table still prints.
      failed = true;
      console.error(`\n  ${name} FAILED:`, error);
      results[name] = { error: String(error) };
      rows.push({ goal: name, measured: `FAILED: ${String(error).slice(0, 160)}`, baseline: '-', ratio: null, met: false });
    }
  };
  const latency = { rate: number('rate'), durationS: number('duration'), runs: number('runs'), via: args.via as 'ws' | 'http' };
  try {
    await run('fanout', () => fanoutScenario(ctx, { members: number('members'), rounds: number('rounds'), burst: number('burst') }));
    await run('memory', () => memoryScenario(ctx, { members: number('members') }));
    await run('connect', () => connectScenario(ctx, { clients: number('connect-clients'), batch: number('batch') }));
    await run('sender', () => senderScenario(ctx, { members: number('members'), sends: number('sends') }));
    await run('latency', () => latencyScenario(ctx, latency));
    await run('catchup', async () => {
      const c = await catchUpScenario(database.url, ctx.secret, { messages: 5000, edits: 3000, reactions: 2000, rounds: 7 });
      return { result: c, rows: [{ goal: `catch-up after ${c.changes} changes <= 3x a raw SELECT`, measured: `${c.catchUpMs} ms`, baseline: `${c.rawSelectMs} ms`, ratio: c.ratio, met: c.ratio <= 3 }] };
    });
    await run('storm', () => stormScenario(ctx, { clients: number('storm-clients'), missed: number('missed'), wave: number('wave') }));
    await run('scale', () => scaleScenario(ctx, { clients: number('scale-clients'), workers: number('scale-workers'), idleS: number('idle'), batch: number('batch') }));
    await run('cluster', () => clusterScenario(ctx, { members: number('cluster-members'), rounds: number('rounds'), burst: number('burst'), latency }));
  } finally {
    await database.drop();
  }
  results.summary = rows;
  console.log('\n' + JSON.stringify(results, null, 2));
  printSummary(rows);
  await mkdir('.data/bench', { recursive: true });
  await writeFile('.data/bench/latest.json', JSON.stringify(results, null, 2));
  if (failed) throw new Error('a scenario failed (above)');
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
