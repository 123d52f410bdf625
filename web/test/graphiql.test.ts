import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { signToken } from '../../src/auth.js';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { TEST_JWT_SECRET, TestServer, uid } from '../../test/support/server.js';
import { chromiumInstalled, launch, type Browser } from './browser.js';

const hasChromium = chromiumInstalled();

// GraphiQL as a person uses it, in Debian's Chromium against the real server.

const WAIT = { timeout: 20_000, interval: 100 };

let db: TestDatabase;
let server: TestServer;
let browser: Browser;

beforeAll(async () => {
  if (!hasChromium) return;
  db = await createTestDatabase();
  server = await TestServer.start({ DATABASE_URL: db.url });
  browser = await launch();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  await db?.drop();
});

afterEach(async ({ task }) => {
  if (task.result?.state !== 'fail' || !browser) return;
  const saved = await browser.screenshots(task.name);
  console.log(`screenshots of the failed test:\n  ${saved.join('\n  ')}`);
});

const isLocal = (url: string) => {
  const { protocol, hostname } = new URL(url);
  return protocol === 'data:' || protocol === 'blob:' || hostname === '127.0.0.1' || hostname === 'localhost' || hostname === '[::1]';
};

/** Opens GraphiQL and records every request the page makes that leaves the machine. */
async function openGraphiQL(context: BrowserContext): Promise<{ page: Page; outside: string[] }> {
  const page = await context.newPage();
  const outside: string[] = [];
  page.on('request', (request) => {
    if (!isLocal(request.url())) outside.push(request.url());
  });
  await page.goto(server.url);
  await page.locator('.graphiql-query-editor .monaco-editor').first().waitFor({ timeout: 30_000 });
  return { page, outside };
}

/** Monaco closes brackets and quotes as they are typed; a paste goes in as it is. */
async function replaceEditor(page: Page, editor: ReturnType<Page['locator']>, text: string) {
  await editor.click();
  await page.keyboard.press('Control+A');
  await page.evaluate(`navigator.clipboard.writeText(${JSON.stringify(text)})`);
  await page.keyboard.press('Control+V');
}

async function setHeaders(page: Page, token: string) {
  await page.getByText('Headers', { exact: true }).click();
  await replaceEditor(page, page.locator('.graphiql-editor-tool .monaco-editor').last(), JSON.stringify({ Authorization: `Bearer ${token}` }));
}

const response = async (page: Page) => (await page.locator('.graphiql-response').innerText()).replace(/\u00a0/g, ' ');

/** Puts `query` in the editor and runs it until GraphiQL has parsed the new text (it re-parses after a short debounce). */
async function run(page: Page, query: string): Promise<void> {
  await replaceEditor(page, page.locator('.graphiql-query-editor .monaco-editor').first(), query);
  await expect
    .poll(async () => {
      await page.locator('.graphiql-execute-button').click();
      await page.waitForTimeout(300);
      return response(page);
    }, WAIT)
    .not.toMatch(/Cannot infer operation|^\s*$/);
}

/** Starts a subscription: GraphiQL's execute button becomes a stop button while it runs. */
async function subscribe(page: Page, query: string): Promise<void> {
  await replaceEditor(page, page.locator('.graphiql-query-editor .monaco-editor').first(), query);
  const button = page.locator('.graphiql-execute-button');
  await expect
    .poll(async () => {
      if (!(await button.getAttribute('aria-label'))?.startsWith('Stop')) await button.click();
      await page.waitForTimeout(300);
      return (await response(page)).includes('Cannot infer operation') ? 'not parsed yet' : await button.getAttribute('aria-label');
    }, WAIT)
    .toMatch(/^Stop/);
}

async function stop(page: Page): Promise<void> {
  const button = page.locator('.graphiql-execute-button');
  if ((await button.getAttribute('aria-label'))?.startsWith('Stop')) await button.click();
}

describe.runIf(hasChromium)('GraphiQL', () => {
  it('loads from this server alone, shows the default query, and runs it with a token', async () => {
    const context = await browser.context();
    await context.grantPermissions(['clipboard-read', 'clipboard-write']);
    const { page, outside } = await openGraphiQL(context);
    // Monaco draws spaces as no-break spaces.
    const editor = (await page.locator('.graphiql-query-editor').innerText()).replace(/\u00a0/g, ' ');
    expect(editor).toContain('query Me {');
    expect(editor).toContain('Paste a token into the Headers tab first');

    const alice = await server.user(uid('alice'), 'Alice');
    await setHeaders(page, alice.token);
    await page.locator('.graphiql-execute-button').click();
    await expect.poll(() => response(page), WAIT).toContain(alice.id);
    expect(outside).toEqual([]);
  });

  // The README's tour, step by step, with the subscription in a second
  // browser window (GraphiQL's own tabs stop a running subscription when you
  // switch between them). GraphiQL subscribes over Server-Sent Events.
  it('runs the README tour, including a live subscription', async () => {
    const context = await browser.context();
    await context.grantPermissions(['clipboard-read', 'clipboard-write']);
    const [aliceId, bobId] = [uid('alice'), uid('bob')];
    const aliceToken = await signToken(TEST_JWT_SECRET, aliceId, { name: 'Alice' });
    const bobToken = await signToken(TEST_JWT_SECRET, bobId, { name: 'Bob' });

    // 2. Bob exists once he has made a request.
    const bob = await openGraphiQL(context);
    await setHeaders(bob.page, bobToken);
    await run(bob.page, '{ viewer { id name } }');
    expect(await response(bob.page)).toContain(bobId);

    // 3. Alice starts a direct conversation and a group.
    const alice = await openGraphiQL(context);
    await setHeaders(alice.page, aliceToken);
    await run(alice.page, `mutation {\n  dm: startDirectConversation(userId: "${bobId}") { id kind }\n  team: createGroup(title: "Team", memberIds: ["${bobId}"]) { id title memberCount }\n}`);
    const started = JSON.parse(await response(alice.page)) as { data: { dm: { id: string } } };
    const dm = started.data.dm.id;

    // 4. A message (a new clientMessageId each time: the same one returns the stored message).
    const send = (body: string, clientMessageId: string) =>
      run(alice.page, `mutation {\n  sendMessage(conversationId: "${dm}", body: "${body}", clientMessageId: "${clientMessageId}") { id seq body createdAt sender { name } }\n}`);
    await send('Hello Bob', 'hello-1');
    expect(await response(alice.page)).toContain('"seq": 1');

    // 5. Bob, in his window, subscribes to his inbox; Alice sends more; it arrives live.
    await subscribe(bob.page, 'subscription {\n  inbox {\n    __typename\n    ... on Message { conversationId seq body sender { name } }\n    ... on ConversationJoined { conversation { id title } }\n    ... on ConversationLeft { conversationId reason }\n  }\n}');
    await send('Are you there?', 'hello-2');
    await expect.poll(() => response(bob.page), WAIT).toContain('Are you there?');
    await stop(bob.page);

    // One conversation, replayed from seq 0, then live.
    await subscribe(bob.page, `subscription {\n  messageAdded(conversationId: "${dm}", afterSeq: 0) { seq body sender { name } }\n}`);
    await expect.poll(() => response(bob.page), WAIT).toContain('"seq": 2');
    await send('Still live', 'hello-3');
    await expect.poll(() => response(bob.page), WAIT).toContain('Still live');
    await stop(bob.page);

    // 6. Catch up, page through history; Bob marks as read (as the reader, so the count moves).
    await run(bob.page, `query {\n  messagesSince(conversationId: "${dm}", afterSeq: 0, first: 100) { messages { seq body } hasMore nextAfterSeq lastSeq }\n  conversations(first: 20) { edges { node { id unreadCount } } }\n}`);
    await expect.poll(() => response(bob.page), WAIT).toContain('"lastSeq": 3');
    await run(bob.page, `mutation { markRead(conversationId: "${dm}", seq: 2) { unreadCount } }`);
    await expect.poll(() => response(bob.page), WAIT).toContain('"unreadCount": 1');
    expect([...bob.outside, ...alice.outside]).toEqual([]);
  }, 120_000);
});
