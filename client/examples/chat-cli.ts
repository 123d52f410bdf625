/**
 * A terminal chat: run it in two terminals, one per user, and type.
 *
 *   npx tsx client/examples/chat-cli.ts "$(npm run -s token -- alice Alice)" bob
 *   npx tsx client/examples/chat-cli.ts "$(npm run -s token -- bob Bob)" alice
 *
 * Kill the server and start it again, or pull the network: the session
 * reconnects, catches up, and sends what you typed meanwhile, each line once.
 * Cursors are kept in a file under the OS temp directory, so a restarted
 * CLI resumes where it was (and shows what was said while it was away).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { createChatClient } from '@chat-api/client';

const [token, peer] = process.argv.slice(2);
if (!token || !peer) {
  console.error('usage: chat-cli.ts <token> <peer user id>');
  process.exit(1);
}
const url = process.env.CHAT_URL ?? 'http://localhost:4000/graphql';
const sub = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()).sub as string;
const file = path.join(tmpdir(), `chat-cli-cursors-${sub}.json`);

const chat = createChatClient({
  url,
  token,
  webSocketImpl: WebSocket,
  cursors: existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : undefined,
  onCursorsChange: (cursors) => writeFileSync(file, JSON.stringify(cursors)),
});
chat.onStatus((status) => console.log(`[${status}]`));
chat.onError((error) => console.log(`[${error.code}] ${error.message}`));

const dm = await chat.startDirectConversation(peer);
chat.onMessage((message) => console.log(`${message.sender.name}: ${message.body}`), { conversationId: dm.id });

const input = createInterface({ input: process.stdin });
input.on('line', (line) => {
  if (line.trim()) chat.send(dm.id, line).catch((error) => console.log(`not sent: ${error.code}`));
});
input.on('close', () => void chat.close());
