import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { TestServer, uid } from '../../test/support/server.js';
import { token } from './helpers.js';

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

afterAll(async () => {
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
