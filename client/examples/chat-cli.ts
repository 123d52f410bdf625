/**
 * A terminal chat: run it in two terminals, one per user, and type.
 *
 *   npx tsx client/examples/chat-cli.ts "$(npm run -s token -- alice Alice)" bob
 *   npx tsx client/examples/chat-cli.ts "$(npm run -s token -- bob Bob)" alice
 *
 * A line is a message; commands act on a message by its number (#seq):
 *
 *   /edit 3 new text     /delete 3     /react 3 👍     /unreact 3 👍
 *   /reply 3 text        (quotes #3)   /thread 3 text  (replies in #3's thread)
 *
 * Edits, deletions, reactions, thread replies and read receipts from the
 * other side are printed as they happen. Kill the server and start it again,
 * or pull the network: the session reconnects, catches up (a message edited
 * ten times meanwhile is printed once, as it is now), and sends what you
 * typed meanwhile, each line once. Cursors are kept in a file under the OS
 * temp directory, so a restarted CLI resumes where it was.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { createChatClient, type Message, type MessageChangedEvent } from '@chat-api/client';

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
const filter = { conversationId: dm.id };

const text = (m: Pick<Message, 'body' | 'deleted'>) => (m.deleted ? '(deleted)' : m.body);
const reactions = (m: Message) => m.reactions.map((r) => `${r.reaction} ${r.count}${r.reactedByViewer ? ' (you)' : ''}`).join(', ');

chat.onMessage((m) => {
  const where = m.threadRootSeq === null ? '' : ` (in #${m.threadRootSeq}'s thread)`;
  const quote = m.replyTo ? `  > #${m.replyTo.seq} ${m.replyTo.sender.name}: ${text(m.replyTo)}\n` : '';
  console.log(`${quote}#${m.seq} ${m.sender.name}${where}: ${text(m)}${m.editedAt ? ' (edited)' : ''}`);
}, filter);

chat.onMessageChanged((event: MessageChangedEvent) => {
  const m = event.message;
  // No actor on a compacted event (a catch-up, or one the server read back from storage).
  const who = event.actor?.name ?? 'someone';
  switch (event.action) {
    case 'EDITED':
      return console.log(`#${m.seq} edited${event.actor ? ` by ${who}` : ''}: ${m.body}`);
    case 'DELETED':
      return console.log(`#${m.seq} deleted`);
    case 'REACTION_ADDED':
      return console.log(`#${m.seq} ${who} reacted ${event.reaction} (${reactions(m)})`);
    case 'REACTION_REMOVED':
      return console.log(`#${m.seq} ${who} took back ${event.reaction} (${reactions(m)})`);
    case 'THREAD_REPLIED':
      return console.log(`#${m.seq} has ${m.threadReplyCount} ${m.threadReplyCount === 1 ? 'reply' : 'replies'}`);
    default:
      // A catch-up after a disconnect: the message as it is now.
      return console.log(`#${m.seq} now: ${text(m)}${m.editedAt ? ' (edited)' : ''}${m.reactions.length ? ` (${reactions(m)})` : ''}`);
  }
}, filter);

chat.onEvent((event) => {
  if (event.type === 'receipt' && event.conversationId === dm.id && event.user.id !== sub) console.log(`${event.user.name} has read up to #${event.lastReadSeq}`);
});

/** Runs a write, printing why it was refused (the SDK retries anything retrying can fix). */
const attempt = (write: Promise<unknown>) => void write.catch((error) => console.log(`not done: ${error.code} ${error.message}`));

const commands: Record<string, (seq: number, rest: string) => void> = {
  edit: (seq, body) => attempt(chat.edit(dm.id, seq, body)),
  delete: (seq) => attempt(chat.delete(dm.id, seq)),
  react: (seq, reaction) => attempt(chat.react(dm.id, seq, reaction)),
  unreact: (seq, reaction) => attempt(chat.unreact(dm.id, seq, reaction)),
  reply: (seq, body) => attempt(chat.reply(dm.id, seq, body)),
  thread: (seq, body) => attempt(chat.sendInThread(dm.id, seq, body)),
};

const input = createInterface({ input: process.stdin });
input.on('line', (line) => {
  const command = /^\/(\w+)\s+(\d+)\s*(.*)$/.exec(line.trim());
  if (command) {
    const run = commands[command[1]!];
    if (run) run(Number(command[2]), command[3]!.trim());
    else console.log(`commands: ${Object.keys(commands).map((name) => `/${name} <seq> …`).join('  ')}`);
  } else if (line.startsWith('/')) {
    console.log(`commands: ${Object.keys(commands).map((name) => `/${name} <seq> …`).join('  ')}`);
  } else if (line.trim()) {
    attempt(chat.send(dm.id, line));
  }
});
input.on('close', () => void chat.close());
