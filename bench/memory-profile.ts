import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { createBenchDatabase, seedGroups } from './database.js';
import { heapByConstructor, printDiff } from './heap-diff.js';
import { startChatServer } from './processes.js';

/**
 * `npm run bench:memory`: where the memory of an idle connection and of its
 * subscription goes, by constructor (heap snapshots diffed through the
 * inspector, after forced GCs). The tool behind the memory work in the README.
 * Uses DATABASE_URL's server, or an embedded PostgreSQL (a database is created and dropped).
 */
const N = Number(process.env.CONNECTIONS ?? 2000);
const SECRET = randomBytes(32).toString('hex');
const database = await createBenchDatabase('chat_memory');
const { ids, members } = await seedGroups(database.url, 'mem', 1, N);
const conversation = ids[0]!;
const users = members[0]!;

const chat = await startChatServer({ DATABASE_URL: database.url, JWT_SECRET: SECRET });
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
await database.drop();
process.exit(0);
