import { randomBytes, randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import pg from 'pg';
import WebSocket from 'ws';
import { applyMigrations } from '../src/db/migrate.js';
import { heapByConstructor, printDiff } from './heap-diff.js';
import { startChatServer } from './processes.js';

/**
 * `npm run bench:memory`: where the memory of an idle connection and of its
 * subscription goes, by constructor (heap snapshots diffed through the
 * inspector, after forced GCs). The tool behind the memory work in the README.
 * Needs DATABASE_URL (a database is created and dropped).
 */
const N = Number(process.env.CONNECTIONS ?? 2000);
const SECRET = randomBytes(32).toString('hex');
const base = process.env.DATABASE_URL;
if (!base) throw new Error('set DATABASE_URL');
const name = `chat_memory_${randomBytes(3).toString('hex')}`;
const admin = new pg.Client({ connectionString: base });
await admin.connect();
await admin.query(`CREATE DATABASE ${name}`);
await admin.end();
const url = new URL(base);
url.pathname = `/${name}`;
await applyMigrations(url.toString());
const db = new pg.Client({ connectionString: url.toString() });
await db.connect();
const users = Array.from({ length: N }, (_, i) => `mem-${i}`);
const conversation = randomUUID();
await db.query(`INSERT INTO users (id, name) SELECT u, u FROM unnest($1::text[]) u`, [users]);
await db.query(`INSERT INTO conversations (id, kind, title, member_count) VALUES ($1, 'GROUP', 'memory', $2)`, [conversation, N]);
await db.query(`INSERT INTO conversation_members (conversation_id, user_id) SELECT $1, u FROM unnest($2::text[]) u`, [conversation, users]);
await db.end();

const chat = await startChatServer({ DATABASE_URL: url.toString(), JWT_SECRET: SECRET });
const key = new TextEncoder().encode(SECRET);
const h0 = await heapByConstructor(chat.inspectPort);
const m0 = await chat.memory();
const sockets: WebSocket[] = [];
for (let i = 0; i < N; i++) {
  const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(users[i]!).setExpirationTime('1h').sign(key);
  const socket = new WebSocket(`ws://127.0.0.1:${chat.port}/graphql`, 'graphql-transport-ws', { localAddress: `127.0.1.${1 + (i % 250)}` });
  await new Promise((resolve) => socket.once('open', resolve));
  await new Promise<void>((resolve) => {
    socket.once('message', () => resolve());
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
  });
  sockets.push(socket);
}
const settle = () => new Promise((resolve) => setTimeout(resolve, 11_000)); // past connection-init timers
await settle();
const m1 = await chat.memory();
const h1 = await heapByConstructor(chat.inspectPort);
const query = 'subscription($c: ID!) { messageAdded(conversationId: $c) { id seq body } }';
for (const socket of sockets) socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query, variables: { c: conversation } } }));
await settle();
const m2 = await chat.memory();
const h2 = await heapByConstructor(chat.inspectPort);
const kb = (bytes: number) => (bytes / N / 1024).toFixed(2);
console.log(`\nper connection (${N}): ${kb(m1.heapUsed + m1.external - m0.heapUsed - m0.external)} KB heap+external`);
printDiff(h0, h1, N, 25);
console.log(`\nper subscription: ${kb(m2.heapUsed + m2.external - m1.heapUsed - m1.external)} KB heap+external`);
printDiff(h1, h2, N, 25);
for (const socket of sockets) socket.terminate();
await chat.stop();
const drop = new pg.Client({ connectionString: base });
await drop.connect();
await drop.query(`DROP DATABASE ${name} WITH (FORCE)`);
await drop.end();
process.exit(0);
