import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildWeb } from '../../ops/build-web.js';
import { buildApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { createTestDatabase, type TestDatabase } from '../../test/support/database.js';
import { uid } from '../../test/support/server.js';
import { chromiumInstalled, launch, type Browser } from './browser.js';

const hasChromium = chromiumInstalled();

// The web app in Debian's Chromium against the real server (buildApp on a
// real port, real PostgreSQL), as people use it: sign in, chat, lose the
// network, outlive a server restart. One file, run in order: one browser
// and one server at a time on a shared machine.

const WAIT = { timeout: 20_000, interval: 100 };

let db: TestDatabase;
let dataDir: string;
let app: App | undefined;
let port = 0;
let browser: Browser;

/**
 * The server as `npm start` runs it on the embedded default: no JWT_SECRET,
 * so development sign-in is on. A fixed DATA_DIR keeps the development
 * secret (and so the browsers' tokens) across a restart.
 */
async function startServer(): Promise<string> {
  const config = loadConfig({
    DATABASE_URL: db.url,
    DATA_DIR: dataDir,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    SEND_RATE_PER_SECOND: '0',
    WS_KEEPALIVE_MS: '1000',
  });
  app = await buildApp(config, createLogger(config.logLevel, {}));
  port = (await app.start(port, '127.0.0.1')).port; // the same port again after a restart
  return `http://127.0.0.1:${port}`;
}

let base: string;

beforeAll(async () => {
  if (!hasChromium) return;
  await buildWeb({ log: () => {} });
  db = await createTestDatabase();
  dataDir = await mkdtemp(path.join(tmpdir(), 'chat-e2e-'));
  base = await startServer();
  browser = await launch();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await app?.stop();
  await db?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

// Screenshots of every page when a test fails (under .data/, git-ignored).
afterEach(async ({ task }) => {
  if (task.result?.state !== 'fail' || !browser) return;
  const saved = await browser.screenshots(task.name);
  console.log(`screenshots of the failed test:\n  ${saved.join('\n  ')}`);
});

/** Every request any page made to another host: the app must need nothing but this server. */
const outside: string[] = [];

async function signIn(context: BrowserContext, userId: string, name: string): Promise<Page> {
  const page = await context.newPage();
  page.on('request', (request) => {
    const { protocol, hostname } = new URL(request.url());
    if (protocol !== 'data:' && protocol !== 'blob:' && hostname !== '127.0.0.1') outside.push(request.url());
  });
  await page.goto(`${base}/app/`);
  await page.getByLabel('User id').fill(userId);
  await page.getByLabel('Display name').fill(name);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  return page;
}

async function startDirect(page: Page, otherId: string, otherName: string) {
  await page.getByRole('button', { name: 'New message' }).click();
  await page.getByRole('form', { name: 'New direct message' }).getByLabel('User id').fill(otherId);
  await page.getByRole('button', { name: 'Start' }).click();
  // Opened (another conversation's composer may still be on screen until then).
  await expect.poll(() => page.locator('.pane h2').textContent(), WAIT).toBe(otherName);
}

async function send(page: Page, text: string) {
  const input = page.getByLabel('Message', { exact: true });
  await input.fill(text);
  await input.press('Enter');
}

/** Stored messages on screen, in screen order: [seq, body]. */
async function shown(page: Page): Promise<[number, string][]> {
  return page.locator('.messages li[data-seq]').evaluateAll((items) =>
    items.map((li) => [Number(li.getAttribute('data-seq')), li.querySelector('.body')?.textContent ?? ''] as [number, string]),
  );
}

const bodies = async (page: Page) => (await shown(page)).map(([, body]) => body);
const item = (page: Page, seq: number) => page.locator(`.messages li[data-seq="${seq}"]`);

/** Opens a message's "⋯" menu and picks one of its actions. */
async function messageAction(page: Page, seq: number, action: string) {
  await item(page, seq).getByRole('button', { name: 'Message actions' }).click();
  await item(page, seq).getByRole('button', { name: action, exact: true }).click();
}

/** A message's reactions as shown: "👍 2" each, with "*" for the viewer's own. */
const reactions = (page: Page, seq: number) =>
  item(page, seq)
    .locator('.reaction')
    .evaluateAll((buttons) => buttons.map((b) => `${b.textContent}${b.getAttribute('aria-pressed') === 'true' ? '*' : ''}`));
const conversationButton = (page: Page, title: string | RegExp) => page.getByRole('list', { name: 'Conversations' }).getByRole('button', { name: title });

describe.runIf(hasChromium)('two people chatting', () => {
  it('see each other’s messages, unread counts, typing, presence and read receipts', async () => {
    const [aliceId, bobId] = [uid('alice'), uid('bob')];
    const alice = await signIn(await browser.context(), aliceId, 'Alice');
    const bob = await signIn(await browser.context({ phone: true }), bobId, 'Bob');

    await startDirect(alice, bobId, 'Bob');
    await send(alice, 'Hi Bob');
    await expect.poll(() => bodies(alice), WAIT).toEqual(['Hi Bob']);

    // Bob's list: the new conversation, its unread count and last message.
    const row = conversationButton(bob, /Alice/);
    await expect.poll(() => row.textContent(), WAIT).toContain('Alice: Hi Bob');
    await expect.poll(() => row.getByLabel('1 unread').count(), WAIT).toBe(1);
    await row.click();
    await expect.poll(() => bodies(bob), WAIT).toEqual(['Hi Bob']);
    await expect.poll(() => row.getByLabel('1 unread').count(), WAIT).toBe(0);
    // Read receipts are live: Bob opening the conversation is enough for Alice to see it read.
    await expect.poll(() => alice.locator('li[data-seq="1"] .meta').textContent(), WAIT).toContain('Seen');
    // Presence: in the open conversation, and on the contact in the list
    // (a contact since just now: the app watches contacts anew).
    await expect.poll(() => alice.locator('.pane .heading small').textContent(), WAIT).toBe('online');
    await expect.poll(() => conversationButton(alice, /Bob/).getByLabel('online', { exact: true }).count(), WAIT).toBe(1);

    // Typing shows on the other side, and goes when the message is sent.
    await bob.getByLabel('Message', { exact: true }).pressSequentially('Hel');
    await expect.poll(() => alice.locator('.typing').textContent(), WAIT).toBe('Bob is typing…');
    await bob.getByLabel('Message', { exact: true }).pressSequentially('lo Alice');
    await bob.getByLabel('Message', { exact: true }).press('Enter');
    await expect.poll(() => shown(alice), WAIT).toEqual([
      [1, 'Hi Bob'],
      [2, 'Hello Alice'],
    ]);
    await expect.poll(() => alice.locator('.typing').textContent(), WAIT).toBe('');
    // Bob has read Alice's message (he replied after it).
    await expect.poll(() => alice.locator('li[data-seq="1"] .meta').textContent(), WAIT).toContain('Seen');
    expect(await shown(bob)).toEqual([
      [1, 'Hi Bob'],
      [2, 'Hello Alice'],
    ]);
    expect(outside).toEqual([]);
  });

  it('one goes offline while the other sends; back online, everything shows once and in order', async () => {
    const [aliceId, bobId] = [uid('alice'), uid('bob')];
    const aliceContext = await browser.context();
    const bobContext = await browser.context();
    const alice = await signIn(aliceContext, aliceId, 'Alice');
    const bob = await signIn(bobContext, bobId, 'Bob');
    await startDirect(alice, bobId, 'Bob');
    await send(alice, 'before');
    await conversationButton(bob, /Alice/).click();
    await expect.poll(() => bodies(bob), WAIT).toEqual(['before']);

    await bobContext.setOffline(true);
    // The browser says so at once (the socket itself would only notice when its pings go unanswered).
    await expect.poll(() => bob.locator('.banner').textContent(), WAIT).toMatch(/^Offline/);
    // Bob writes too while offline: it waits, shown as sending.
    await send(bob, 'written offline');
    await expect.poll(() => bob.locator('[data-status="pending"] .body').allTextContents(), WAIT).toEqual(['written offline']);
    for (let i = 1; i <= 5; i++) await send(alice, `while away ${i}`);
    await expect.poll(async () => (await bodies(alice)).length, WAIT).toBe(6);

    await bobContext.setOffline(false);
    const expected = ['before', 'while away 1', 'while away 2', 'while away 3', 'while away 4', 'while away 5', 'written offline'];
    await expect.poll(() => bodies(bob), WAIT).toEqual(expected);
    await expect.poll(() => bodies(alice), WAIT).toEqual(expected);
    await expect.poll(() => bob.locator('[data-status]').count(), WAIT).toBe(0);
    // Exactly once and in seq order, 1…7 without gaps.
    expect((await shown(bob)).map(([seq]) => seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    await expect.poll(() => bob.locator('.banner').count(), WAIT).toBe(0);
  });

  it('the server restarts mid-chat: both see it reconnect, and the chat goes on', async () => {
    const [aliceId, bobId] = [uid('alice'), uid('bob')];
    const alice = await signIn(await browser.context(), aliceId, 'Alice');
    const bob = await signIn(await browser.context(), bobId, 'Bob');
    await startDirect(alice, bobId, 'Bob');
    await send(alice, 'one');
    await conversationButton(bob, /Alice/).click();
    await expect.poll(() => bodies(bob), WAIT).toEqual(['one']);

    await app!.stop();
    await expect.poll(() => alice.locator('.banner').textContent(), WAIT).toMatch(/Reconnecting|Connecting/);
    // Sent while the server is down: pending until it is back.
    await send(alice, 'two');
    await expect.poll(() => alice.locator('[data-status="pending"]').count(), WAIT).toBe(1);
    await startServer();

    await expect.poll(() => bodies(bob), { ...WAIT, timeout: 60_000 }).toEqual(['one', 'two']);
    await send(bob, 'three');
    await expect.poll(() => shown(alice), WAIT).toEqual([
      [1, 'one'],
      [2, 'two'],
      [3, 'three'],
    ]);
    await expect.poll(() => alice.locator('.banner').count(), WAIT).toBe(0);
    expect(await shown(bob)).toEqual([
      [1, 'one'],
      [2, 'two'],
      [3, 'three'],
    ]);
  }, 120_000);
});

describe.runIf(hasChromium)('edits, reactions, replies and threads', () => {
  it('one edits and reacts, the other sees it live; a quote shows its message; a deletion leaves a tombstone', async () => {
    const [aliceId, bobId] = [uid('alice'), uid('bob')];
    const alice = await signIn(await browser.context(), aliceId, 'Alice');
    const bob = await signIn(await browser.context(), bobId, 'Bob');
    await startDirect(alice, bobId, 'Bob');
    await send(alice, 'Hi Bob');
    await conversationButton(bob, /Alice/).click();
    await send(bob, 'Hello Alice');
    await expect.poll(() => bodies(alice), WAIT).toEqual(['Hi Bob', 'Hello Alice']);

    // Alice edits her message: Bob sees the new text, marked edited.
    await messageAction(alice, 1, 'Edit');
    await alice.getByLabel('Edit message').fill('Hi Bob, edited');
    await alice.getByLabel('Edit message').press('Enter');
    await expect.poll(() => bodies(bob), WAIT).toEqual(['Hi Bob, edited', 'Hello Alice']);
    await expect.poll(() => item(bob, 1).locator('.meta').textContent(), WAIT).toContain('edited');

    // Alice reacts to Bob's message; Bob adds his own to it, then takes it back.
    await messageAction(alice, 2, 'React 👍');
    await expect.poll(() => reactions(bob, 2), WAIT).toEqual(['👍 1']);
    await expect.poll(() => reactions(alice, 2), WAIT).toEqual(['👍 1*']);
    await item(bob, 2).getByRole('button', { name: '👍 1' }).click();
    await expect.poll(() => reactions(alice, 2), WAIT).toEqual(['👍 2*']);
    await expect.poll(() => reactions(bob, 2), WAIT).toEqual(['👍 2*']);
    await item(bob, 2).getByRole('button', { name: '👍 2' }).click();
    await expect.poll(() => reactions(alice, 2), WAIT).toEqual(['👍 1*']);

    // Bob quotes Alice's message.
    await messageAction(bob, 1, 'Reply');
    await expect.poll(() => bob.locator('.quoting').textContent(), WAIT).toContain('Hi Bob, edited');
    await send(bob, 'quoting you');
    await expect.poll(() => item(alice, 3).locator('.quote').textContent(), WAIT).toBe('Alice Hi Bob, edited');

    // Alice deletes hers: a tombstone in its place, and the quote says so.
    await messageAction(alice, 1, 'Delete message');
    await expect.poll(() => item(bob, 1).locator('.body').textContent(), WAIT).toBe('Message deleted');
    await expect.poll(() => item(bob, 3).locator('.quote').textContent(), WAIT).toBe('Alice Message deleted');
    expect((await shown(bob)).map(([seq]) => seq)).toEqual([1, 2, 3]);
    expect(outside).toEqual([]);
  });

  it('a thread reply appears under its root and in the open thread, on both sides', async () => {
    const [aliceId, bobId] = [uid('alice'), uid('bob')];
    const alice = await signIn(await browser.context(), aliceId, 'Alice');
    const bob = await signIn(await browser.context(), bobId, 'Bob');
    await startDirect(alice, bobId, 'Bob');
    await send(alice, 'Lunch?');
    await send(alice, 'Or coffee later');
    await conversationButton(bob, /Alice/).click();
    await expect.poll(() => bodies(bob), WAIT).toEqual(['Lunch?', 'Or coffee later']);

    // Bob answers in the thread of the first message.
    await messageAction(bob, 1, 'Thread');
    const bobThread = bob.getByRole('complementary', { name: 'Thread' });
    await bobThread.getByLabel('Reply in thread').fill('Yes, 12:30');
    await bobThread.getByLabel('Reply in thread').press('Enter');
    await expect.poll(() => bobThread.locator('.replies li[data-seq] .body').allTextContents(), WAIT).toEqual(['Lunch?', 'Yes, 12:30']);

    // Alice sees it under its root, not in the conversation's timeline.
    const link = item(alice, 1).getByRole('button', { name: '1 reply' });
    await expect.poll(() => link.count(), WAIT).toBe(1);
    expect(await bodies(alice)).toEqual(['Lunch?', 'Or coffee later']);
    await link.click();
    const aliceThread = alice.getByRole('complementary', { name: 'Thread' });
    await expect.poll(() => aliceThread.locator('.replies li[data-seq] .body').allTextContents(), WAIT).toEqual(['Lunch?', 'Yes, 12:30']);
    await aliceThread.getByLabel('Reply in thread').fill('See you there');
    await aliceThread.getByLabel('Reply in thread').press('Enter');

    // Live in Bob's open thread, and counted under the root.
    await expect.poll(() => bobThread.locator('.replies li[data-seq] .body').allTextContents(), WAIT).toEqual(['Lunch?', 'Yes, 12:30', 'See you there']);
    await expect.poll(() => item(bob, 1).getByRole('button', { name: '2 replies' }).count(), WAIT).toBe(1);
    expect(await bodies(bob)).toEqual(['Lunch?', 'Or coffee later']);
  });
});

describe.runIf(hasChromium)('history, groups and members', () => {
  it('pages in older messages while scrolling up, without gaps or repeats', async () => {
    const [aliceId, bobId] = [uid('alice'), uid('bob')];
    const bob = await signIn(await browser.context(), bobId, 'Bob');
    const alice = await signIn(await browser.context(), aliceId, 'Alice');
    await startDirect(alice, bobId, 'Bob');
    for (let i = 1; i <= 75; i++) await send(alice, `m${i}`);
    await expect.poll(async () => (await bodies(alice)).length, WAIT).toBe(75);

    // Bob opens it fresh: the newest page first, then older ones as he scrolls up.
    await conversationButton(bob, /Alice/).click();
    await expect.poll(async () => (await shown(bob)).at(-1)?.[0], WAIT).toBe(75);
    expect((await shown(bob)).length).toBeLessThan(75);
    for (let i = 0; i < 10 && (await bob.locator('.history').textContent()) !== 'Beginning of the conversation'; i++) {
      await bob.locator('.messages').evaluate((list) => list.scrollTo(0, 0));
      await bob.waitForTimeout(300);
    }
    await expect.poll(() => bob.locator('.history').textContent(), WAIT).toBe('Beginning of the conversation');
    expect((await shown(bob)).map(([seq]) => seq)).toEqual(Array.from({ length: 75 }, (_, i) => i + 1));
  });

  it('creates a group, adds and removes members, and a sending failure can be retried', async () => {
    const [aliceId, bobId, carolId] = [uid('alice'), uid('bob'), uid('carol')];
    const bob = await signIn(await browser.context(), bobId, 'Bob');
    const carol = await signIn(await browser.context(), carolId, 'Carol');
    const alice = await signIn(await browser.context(), aliceId, 'Alice');

    await alice.getByRole('button', { name: 'New group' }).click();
    await alice.getByLabel('Group name').fill('Team');
    await alice.getByLabel('Members (user ids)').fill(bobId);
    await alice.getByRole('button', { name: 'Create' }).click();
    await expect.poll(() => alice.locator('.pane h2').textContent(), WAIT).toBe('Team');
    await send(alice, 'welcome');
    await expect.poll(() => conversationButton(bob, /Team/).textContent(), WAIT).toContain('Alice: welcome');

    await alice.getByRole('button', { name: 'Members' }).click();
    // Renamed: the other member's list follows.
    await alice.getByLabel('New group name').fill('Dream Team');
    await alice.getByRole('button', { name: 'Rename' }).click();
    await expect.poll(() => conversationButton(bob, /Dream Team/).count(), WAIT).toBe(1);
    await alice.getByLabel('User ids to add').fill(carolId);
    await alice.getByRole('button', { name: 'Add', exact: true }).click();
    await expect.poll(() => alice.getByRole('list', { name: 'Members' }).locator('li').count(), WAIT).toBe(3);
    await expect.poll(() => conversationButton(carol, /Team/).count(), WAIT).toBe(1);
    await conversationButton(carol, /Team/).click();
    await send(carol, 'hi all');
    await expect.poll(() => bodies(alice), WAIT).toEqual(['welcome', 'hi all']);

    await alice.getByRole('list', { name: 'Members' }).locator('li', { hasText: 'Carol' }).getByRole('button', { name: 'Remove' }).click();
    await expect.poll(() => alice.getByRole('list', { name: 'Members' }).locator('li').count(), WAIT).toBe(2);
    // Carol's app drops the group as soon as the server says she was removed.
    await expect.poll(() => conversationButton(carol, /Team/).count(), WAIT).toBe(0);

    // A message the server refuses (too long) fails; it can be deleted.
    await send(alice, 'x'.repeat(4001));
    await expect.poll(() => alice.locator('[data-status="failed"]').count(), WAIT).toBe(1);
    await alice.getByRole('button', { name: 'Delete' }).click();
    await expect.poll(() => alice.locator('[data-status]').count(), WAIT).toBe(0);
    // Cancel stops a pending send (here: while offline); Retry sends it.
    const aliceContext = alice.context();
    await aliceContext.setOffline(true);
    await send(alice, 'second try');
    await alice.getByRole('button', { name: 'Cancel' }).click();
    await expect.poll(() => alice.locator('[data-status="failed"] .meta').textContent(), WAIT).toContain('Not sent');
    await aliceContext.setOffline(false);
    await alice.getByRole('button', { name: 'Retry' }).click();
    await expect.poll(() => bodies(alice), WAIT).toEqual(['welcome', 'hi all', 'second try']);
  });

  it('fits a phone-sized screen: the list, then the conversation with a way back', async () => {
    const [aliceId, bobId] = [uid('alice'), uid('bob')];
    await signIn(await browser.context(), bobId, 'Bob');
    const alice = await signIn(await browser.context({ phone: true }), aliceId, 'Alice');
    await startDirect(alice, bobId, 'Bob');
    await send(alice, 'from my phone');
    await expect.poll(() => bodies(alice), WAIT).toEqual(['from my phone']);
    expect(await alice.locator('.sidebar').isVisible()).toBe(false);
    await alice.getByRole('button', { name: 'Back to conversations' }).click();
    expect(await alice.locator('.sidebar').isVisible()).toBe(true);
    expect(await alice.locator('.pane').count()).toBe(0);
    // Nothing wider than the screen.
    expect(await alice.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    expect(outside).toEqual([]);
  });
});
