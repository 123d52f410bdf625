import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { TestServer, uid } from '../../test/support/server.js';
import type { ChatClient } from '../src/index.js';
import { open, token, waitFor } from './helpers.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');
const bin = (name: string) => path.join(root, 'node_modules/.bin', name);

let db: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await TestServer.start({ DATABASE_URL: db.url });
  // The example imports the package as a consumer would (@chat-api/client →
  // client/dist), so this also checks the build output runs under Node.
  await run(bin('tsc'), ['-p', 'client/tsconfig.build.json'], { cwd: root });
}, 120_000);

const sessions: ChatClient[] = [];

afterAll(async () => {
  await Promise.all(sessions.map((s) => s.close()));
  await server?.stop();
  await db?.drop();
});

it('runs the two-users example from the README against a real server', async () => {
  const [alice, bob] = [uid('alice'), uid('bob')];
  const { stdout } = await run(bin('tsx'), ['client/examples/two-users.ts'], {
    cwd: root,
    timeout: 60_000,
    env: { ...process.env, CHAT_URL: server.url, ALICE_TOKEN: await token(alice, 'Alice'), BOB_TOKEN: await token(bob, 'Bob') },
  });
  expect(stdout).toContain('alice sent  #1 Hi Bob, how are you?');
  expect(stdout).toContain('bob   sees  #1 Alice: Hi Bob, how are you?');
  expect(stdout).toContain('alice got   #2 Bob: Fine, thanks Alice!');
}, 90_000);

it("runs the README's Node snippet as written", async () => {
  const readme = await readFile(path.join(root, 'README.md'), 'utf8');
  const snippet = /<!-- snippet: node[^>]*-->\n```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(snippet).toContain("import WebSocket from 'ws'");
  expect(snippet).not.toContain('localStorage');
  // Inside the repository (git-ignored .data/), so '@chat-api/client' and 'ws' resolve as for a reader.
  const file = path.join(root, '.data', `readme-snippet-${randomBytes(4).toString('hex')}.mts`);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, snippet!);
  try {
    await server.user('bob', 'Bob'); // the snippet writes to Bob, who must exist
    const alice = uid('alice');
    const { stdout } = await run(bin('tsx'), [file], {
      cwd: root,
      timeout: 60_000,
      env: { ...process.env, CHAT_URL: server.url, CHAT_TOKEN: await token(alice, 'Alice') },
    });
    expect(stdout.trim()).toBe('Alice: Hello Bob');
  } finally {
    await rm(file, { force: true });
  }
}, 90_000);

it('runs the terminal chat: its commands edit, react and delete, and it prints what the other side changes', async () => {
  const [aliceId, bobId] = [uid('alice'), uid('bob')];
  await server.user(aliceId, 'Alice');
  const bob = open(server.url, { token: await token(bobId, 'Bob') }, sessions);
  await bob.chat.ready();
  const cli = spawn(bin('tsx'), ['client/examples/chat-cli.ts', await token(aliceId, 'Alice'), bobId], {
    cwd: root,
    env: { ...process.env, CHAT_URL: server.url },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let output = '';
  cli.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const printed = (line: string | RegExp) =>
    waitFor(() => output.split('\n').some((l) => (typeof line === 'string' ? l === line : line.test(l))), `the CLI to print ${line}`, 30_000, () => output);
  const type = (line: string) => cli.stdin.write(`${line}\n`);
  try {
    await printed('[live]');
    const { id: c } = await bob.chat.startDirectConversation(aliceId);
    await bob.chat.send(c, 'hi from bob');
    await printed('#1 Bob: hi from bob');

    type('hello');
    type('/edit 2 hello, edited');
    type('/react 1 👍');
    await waitFor(
      () => bob.chat.local.message(c, 2)?.body === 'hello, edited' && bob.chat.local.message(c, 1)?.reactions[0]?.reaction === '👍',
      'the edit and the reaction',
      30_000,
      () => output,
    );

    // (An event the server read back from storage comes without who did it: the CLI then prints the message as it is.)
    await bob.chat.edit(c, 1, 'hi from bob, fixed');
    await printed(/^#1 edited( by Bob)?: hi from bob, fixed$/);
    await bob.chat.react(c, 2, '🎉');
    await printed(/^#2 (Bob reacted 🎉|now: hello, edited \(edited\)) \(🎉 1\)$/);
    await bob.chat.sendInThread(c, 2, 'in your thread');
    await printed("#3 Bob (in #2's thread): in your thread");

    type('/delete 2');
    await waitFor(() => bob.chat.local.message(c, 2)?.deleted === true, 'the deletion', 30_000, () => output);
  } finally {
    cli.stdin.end();
    await new Promise((resolve) => cli.once('exit', resolve));
    await rm(path.join(tmpdir(), `chat-cli-cursors-${aliceId}.json`), { force: true });
  }
}, 90_000);
