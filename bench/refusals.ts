import { performance } from 'node:perf_hooks';
import { execute, getIntrospectionQuery, parse } from 'graphql';
import pg from 'pg';
import WebSocket from 'ws';
import { buildApp } from '../src/app.js';
import { signToken } from '../src/auth.js';
import { loadConfig } from '../src/config.js';
import { createContext } from '../src/context.js';
import { createLogger } from '../src/logger.js';
import { schema } from '../src/schema/index.js';
import { OperationGuard } from '../src/security/guard.js';
import { createBenchDatabase, seedGroups } from './database.js';

/**
 * `npm run bench:refusals`: what a refused abusive operation costs the
 * server (issue 10's table in the README, "Operation limits"), next to what
 * the worst of them would cost if it ran. Timings are printed, never
 * asserted (the machines are shared and noisy).
 *
 * 1. The gate alone (src/security/guard.ts), in process: median time to
 *    refuse each abusive operation, its text new each time (nothing cached,
 *    the attacker's best case) and repeated (cached).
 * 2. A real server on a real port: median round trip of each refusal over
 *    HTTP, SSE and WebSocket, against `{ __typename }` as the floor.
 * 3. The issue's query (aliased conversations → members → user, for a user
 *    in 100 groups) executed with the limits lifted: what the gate saves.
 *
 * Uses DATABASE_URL (else an embedded PostgreSQL) and REDIS_URL when set.
 */

const ROUNDS = Number(process.env.ROUNDS ?? 200);
const SECRET = 'bench-secret-that-is-at-least-32-characters-long';

const nested = (levels: number, inner: string) => {
  let query = inner;
  for (let i = 0; i < levels; i++) query = `fields { type { ${query} } }`;
  return query;
};
const COSTLY = `{ ${Array.from({ length: 24 }, (_, i) => `c${i}: conversations(first: 100) { edges { node { id title members(first: 500) { edges { node { role user { id name online lastSeenAt } } } } } } }`).join(' ')} }`;
const ABUSE: [string, string][] = [
  ['size: 17 KB of text', `{ viewer { id } }${' '.repeat(17 * 1024)}`],
  ['tokens: 2,500 fields', `{ viewer { ${'id '.repeat(2500)} } }`],
  ['depth: introspection 17 deep', `{ __schema { types { ${nested(8, 'name')} } } }`],
  ['aliases: 2^12 through fragments', ['{ ...F12 }', 'fragment F0 on Query { a: viewer { id } }', ...Array.from({ length: 12 }, (_, i) => `fragment F${i + 1} on Query { ...F${i} ...F${i} }`)].join('\n')],
  ['directives: 40 on one field', `{ viewer { id ${'@include(if: true) '.repeat(40)} } }`],
  ["cost: the issue's query (24 aliases, 6.5 KB)", COSTLY],
  ['repeated fields: 490 × viewer { name } (validation is quadratic)', `{ ${'viewer { name } '.repeat(490)} }`],
  ['repeated fields within the limit: 10 × viewer { name }', `{ ${'viewer { name } '.repeat(10)} }`],
];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
const ms = (value: number) => `${value.toFixed(value < 1 ? 3 : 1)} ms`;

async function main() {
  const db = await createBenchDatabase('refusals');
  const config = loadConfig({ ...process.env, DATABASE_URL: db.url, JWT_SECRET: SECRET, LOG_LEVEL: 'silent', CONNECT_RATE_PER_MINUTE: '0', CONNECT_RATE_PER_MINUTE_PER_ADDRESS: '0', MAX_CONNECTIONS_PER_USER: '0' });
  const app = await buildApp(config, createLogger('silent', {}));
  try {
    const { url } = await app.start(0, '127.0.0.1');

    console.log(`\n1. The gate alone, median of ${ROUNDS} (src/security/guard.ts prepare):`);
    const guard = new OperationGuard(schema, undefined);
    console.log('   operation'.padEnd(62), 'code'.padEnd(28), 'new text', '  cached');
    for (const [what, query] of ABUSE) {
      const cold: number[] = [];
      const warm: number[] = [];
      let code = '';
      for (let i = 0; i < ROUNDS; i++) {
        const text = `${query}\n# ${i}`;
        let started = performance.now();
        const result = guard.prepare({ query: text });
        cold.push(performance.now() - started);
        started = performance.now();
        guard.prepare({ query: text });
        warm.push(performance.now() - started);
        code = Array.isArray(result) ? String((result as { extensions: { code: string } }[])[0]!.extensions.code) : 'accepted';
      }
      console.log(`   ${what}`.padEnd(62), code.padEnd(28), ms(median(cold)).padStart(9), ms(median(warm)).padStart(9));
    }

    const token = await signToken(SECRET, 'bench-user', { name: 'Bench' });
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
    await fetch(url, { method: 'POST', headers, body: JSON.stringify({ query: '{ viewer { id } }' }) });

    console.log(`\n2. Round trips on a real server (127.0.0.1), median of ${ROUNDS}:`);
    const socket = new WebSocket(url.replace(/^http/, 'ws'), 'graphql-transport-ws');
    await new Promise<void>((resolve) => {
      socket.once('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
      socket.once('message', () => resolve());
    });
    let nextId = 0;
    const overWs = (query: string) =>
      new Promise<void>((resolve) => {
        const id = String(++nextId);
        const onMessage = (raw: WebSocket.RawData) => {
          const message = JSON.parse(String(raw)) as { id?: string; type: string };
          if (message.id === id && (message.type === 'complete' || message.type === 'error')) {
            socket.off('message', onMessage);
            resolve();
          }
        };
        socket.on('message', onMessage);
        socket.send(JSON.stringify({ id, type: 'subscribe', payload: { query } }));
      });
    const overHttp = async (query: string) => void (await (await fetch(url, { method: 'POST', headers, body: JSON.stringify({ query }) })).text());
    const overSse = async (query: string) =>
      void (await (await fetch(url, { method: 'POST', headers: { ...headers, accept: 'text/event-stream' }, body: JSON.stringify({ query }) })).text());
    console.log('   operation'.padEnd(62), '     HTTP', '      SSE', 'WebSocket');
    for (const [what, query] of [['floor: { __typename }', '{ __typename }'] as [string, string], ...ABUSE]) {
      const times: Record<string, number[]> = { http: [], sse: [], ws: [] };
      for (let i = 0; i < ROUNDS; i++) {
        for (const [name, run] of [['http', overHttp], ['sse', overSse], ['ws', overWs]] as const) {
          const started = performance.now();
          await run(query);
          times[name]!.push(performance.now() - started);
        }
      }
      console.log(`   ${what}`.padEnd(62), ms(median(times.http!)).padStart(9), ms(median(times.sse!)).padStart(9), ms(median(times.ws!)).padStart(9));
    }
    socket.close();

    console.log('\n3. What the limits save: the issue\'s query executed with them lifted, for a user in 100 groups of 5:');
    const { ids } = await seedGroups(db.url, 'r', 100, 5);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    for (const id of ids) {
      await client.query(`INSERT INTO conversation_members (conversation_id, user_id, role) VALUES ($1, 'bench-user', 'MEMBER')`, [id]);
      await client.query(`INSERT INTO user_conversations (user_id, conversation_id) VALUES ('bench-user', $1)`, [id]);
      await client.query(`UPDATE conversations SET member_count = member_count + 1 WHERE id = $1`, [id]);
    }
    await client.end();
    const context = createContext({ viewer: { id: 'bench-user', name: 'Bench' }, services: app.services, realtime: app.realtime });
    for (const aliases of [1, 24]) {
      const query = `{ ${Array.from({ length: aliases }, (_, i) => `c${i}: conversations(first: 100) { edges { node { id title members(first: 500) { edges { node { role user { id name online lastSeenAt } } } } } } }`).join(' ')} }`;
      const started = performance.now();
      const result = await execute({ schema, document: parse(query), contextValue: context });
      const took = performance.now() - started;
      console.log(`   ${aliases} alias${aliases > 1 ? 'es' : ''}: ${ms(took)} of server time if run (${result.errors?.length ?? 0} errors); refused in the gate in well under a millisecond`);
    }
    console.log(`\n4. Abuse limits on a real server${process.env.REDIS_URL ? ' (shared through Redis)' : ' (in process: no REDIS_URL)'}, median of ${ROUNDS} refusals:`);
    await abuseRefusals(db.url);

    const introspection = guard.prepare({ query: getIntrospectionQuery() });
    console.log(`\n   (GraphiQL's introspection query is admitted: ${Array.isArray(introspection) ? 'NO' : 'yes'})\n`);
  } finally {
    await app.stop();
    await db.drop();
  }
}

/** Round trips of refusals by the abuse limits: a send, a subscription over the per-socket cap, a connection_init, an upgrade. */
async function abuseRefusals(databaseUrl: string) {
  const limited = async (env: Record<string, string>) => {
    const config = loadConfig({ ...process.env, DATABASE_URL: databaseUrl, JWT_SECRET: SECRET, LOG_LEVEL: 'silent', ...env });
    const app = await buildApp(config, createLogger('silent', {}));
    return { app, url: (await app.start(0, '127.0.0.1')).url };
  };
  const perUser = await limited({ SEND_RATE_PER_SECOND: '1', SEND_BURST: '1', CONNECT_RATE_PER_MINUTE: '1', CONNECT_RATE_PER_MINUTE_PER_ADDRESS: '0', MAX_SUBSCRIPTIONS_PER_CONNECTION: '1' });
  const perAddress = await limited({ CONNECT_RATE_PER_MINUTE: '0', CONNECT_RATE_PER_MINUTE_PER_ADDRESS: '1' });
  try {
    const user = `abuse-${Date.now()}`;
    const token = await signToken(SECRET, user, { name: 'Abuse' });
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
    const post = async (query: string, variables?: Record<string, unknown>) =>
      (await (await fetch(perUser.url, { method: 'POST', headers, body: JSON.stringify({ query, variables }) })).json()) as { data?: any; errors?: { extensions: { code: string } }[] };
    const group = (await post('mutation { createGroup(title: "abuse", memberIds: []) { id } }')).data.createGroup.id as string;
    const SEND = 'mutation($c: ID!, $m: String!) { sendMessage(conversationId: $c, body: "x", clientMessageId: $m) { seq } }';
    await post(SEND, { c: group, m: 'first' });
    const sends: number[] = [];
    let code = '';
    for (let i = 0; i < ROUNDS; i++) {
      const started = performance.now();
      code = (await post(SEND, { c: group, m: `m-${i}` })).errors?.[0]?.extensions.code ?? 'accepted';
      sends.push(performance.now() - started);
    }
    console.log('   a send over the rate (HTTP)'.padEnd(62), code.padEnd(28), ms(median(sends)).padStart(9));

    // The one connection_init allowed, holding a subscription: the next subscribe is over the cap.
    const socket = new WebSocket(perUser.url.replace(/^http/, 'ws'), 'graphql-transport-ws');
    await new Promise<void>((resolve) => {
      socket.once('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
      socket.once('message', () => resolve());
    });
    socket.send(JSON.stringify({ id: 'held', type: 'subscribe', payload: { query: 'subscription { inbox { __typename } }' } }));
    const capped: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const started = performance.now();
      await new Promise<void>((resolve) => {
        const onMessage = (raw: WebSocket.RawData) => {
          const message = JSON.parse(String(raw)) as { id?: string; type: string; payload?: { extensions?: { code?: string } }[] };
          if (message.id === `x${i}`) {
            code = message.payload?.[0]?.extensions?.code ?? message.type;
            socket.off('message', onMessage);
            resolve();
          }
        };
        socket.on('message', onMessage);
        socket.send(JSON.stringify({ id: `x${i}`, type: 'subscribe', payload: { query: '{ __typename }' } }));
      });
      capped.push(performance.now() - started);
    }
    console.log('   a subscribe over the operations per socket (WebSocket)'.padEnd(62), code.padEnd(28), ms(median(capped)).padStart(9));
    socket.close();

    const closes: number[] = [];
    let closeCode = 0;
    for (let i = 0; i < Math.min(ROUNDS, 50); i++) {
      const again = new WebSocket(perUser.url.replace(/^http/, 'ws'), 'graphql-transport-ws');
      await new Promise<void>((resolve) => again.once('open', () => resolve()));
      const started = performance.now();
      closeCode = await new Promise<number>((resolve) => {
        again.once('close', (code) => resolve(code));
        again.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
      });
      closes.push(performance.now() - started);
    }
    console.log('   a connection_init over the attempts per user (WebSocket)'.padEnd(62), `close ${closeCode}`.padEnd(28), ms(median(closes)).padStart(9));

    const upgrades: number[] = [];
    let status = 0;
    for (let i = 0; i < Math.min(ROUNDS, 50) + 1; i++) {
      const started = performance.now();
      status = await new Promise<number>((resolve) => {
        const attempt = new WebSocket(perAddress.url.replace(/^http/, 'ws'), 'graphql-transport-ws', { localAddress: '127.0.0.9' });
        attempt.on('error', () => {});
        attempt.once('open', () => {
          attempt.terminate();
          resolve(101);
        });
        attempt.once('unexpected-response', (_req, res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
      });
      if (i > 0) upgrades.push(performance.now() - started);
    }
    console.log('   an upgrade over the attempts per address'.padEnd(62), `HTTP ${status}`.padEnd(28), ms(median(upgrades)).padStart(9));
  } finally {
    await perUser.app.stop();
    await perAddress.app.stop();
  }
}

await main();
