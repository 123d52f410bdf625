import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/**
 * Debian's Chromium, driven by playwright-core (Playwright's own browser
 * download cannot work on the build machines). CHROMIUM_BIN overrides the
 * path. The flags keep it from calling Google's services (no network here).
 */
export const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Whether the browser tests can run. Without Chromium they are skipped with
 * a notice, except under CI=true, where a missing Chromium fails the run
 * (as a missing Redis or nginx does).
 */
export function chromiumInstalled(): boolean {
  if (existsSync(CHROMIUM_BIN)) return true;
  if (process.env.CI === 'true') throw new Error(`CI=true but Chromium is not installed at ${CHROMIUM_BIN} (apt-get install chromium)`);
  console.warn(`\n  NOTICE: Chromium is not installed (${CHROMIUM_BIN}); the browser tests are SKIPPED.\n`);
  return false;
}

/** Where screenshots of failed tests go (git-ignored). */
export const SCREENSHOT_DIR = path.resolve(import.meta.dirname, '../../.data/e2e-screenshots');

export interface Browser {
  /** A fresh context (its own storage: another user), phone-sized if asked. */
  context(options?: { phone?: boolean }): Promise<BrowserContext>;
  /** Saves a screenshot of every open page, named after the test. */
  screenshots(name: string): Promise<string[]>;
  close(): Promise<void>;
}

export async function launch(): Promise<Browser> {
  // launch() runs Chromium on a new temporary profile (--user-data-dir),
  // deleted on close: nothing carries over between runs. Each context is
  // then a separate user with its own storage.
  const browser = await chromium.launch({ executablePath: CHROMIUM_BIN, args: FLAGS, headless: true });
  const contexts: BrowserContext[] = [];
  return {
    async context(options = {}) {
      const context = await browser.newContext(
        options.phone ? { viewport: { width: 390, height: 740 }, isMobile: true, hasTouch: true } : { viewport: { width: 1100, height: 720 } },
      );
      contexts.push(context);
      return context;
    },
    async screenshots(name) {
      await mkdir(SCREENSHOT_DIR, { recursive: true });
      const pages: Page[] = contexts.flatMap((c) => c.pages());
      const saved: string[] = [];
      for (const [i, page] of pages.entries()) {
        const file = path.join(SCREENSHOT_DIR, `${name.replace(/[^\w-]+/g, '_').slice(0, 80)}-${i}.png`);
        await page.screenshot({ path: file, fullPage: true }).then(() => saved.push(file), () => {});
      }
      return saved;
    },
    async close() {
      await browser.close();
    },
  };
}
