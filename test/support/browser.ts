/**
 * A real headless Chromium (Debian's package) driven through playwright-core, for tests of the pages the
 * Coordinator serves: pages that record what they asked of other hosts and what they threw, and
 * screenshots under test-results/.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/** Debian's Chromium; `CHROMIUM_PATH` names another build. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Starts Chromium with a fresh profile (Playwright gives every launch a new temporary user-data
 * directory and removes it on close). Without Chromium it fails saying how to install it: a browser
 * test must never pass by not running.
 */
export async function launchChromium(executablePath = CHROMIUM_PATH): Promise<Browser> {
  if (!existsSync(executablePath))
    throw new Error(
      `Chromium is not installed at ${executablePath}: install Debian's package with \`apt-get install chromium\` (bash .ci/run does it when it is missing), or set CHROMIUM_PATH to a Chromium`,
    );
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS });
}

export interface WatchedPage {
  context: BrowserContext;
  page: Page;
  /** Requests the page made to any other origin than the allowed ones (refused before they left). */
  foreignRequests: string[];
  /** Uncaught errors and console errors of the page. */
  errors: string[];
  close(): Promise<void>;
}

/**
 * A page in a context of its own (its own cookies and sessionStorage) that may reach only `origins`:
 * anything else — a CDN's font or script — is refused and recorded, as it would fail offline.
 */
export async function openPage(browser: Browser, origins: readonly string[]): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // What a test waits for shows within seconds or not at all: fail with the locator, well before
  // the test's own timeout.
  context.setDefaultTimeout(10_000);
  const foreignRequests: string[] = [];
  const errors: string[] = [];
  await context.route(
    () => true,
    (route) => {
      const url = route.request().url();
      if (origins.some((origin) => url.startsWith(`${origin}/`)) || url.startsWith('data:'))
        return route.continue();
      foreignRequests.push(url);
      return route.abort('blockedbyclient');
    },
  );
  const page = await context.newPage();
  page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    // A 4xx answer is the page's to show (a refused token), not an error of the page.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource'))
      errors.push(`console: ${message.text()}`);
  });
  return { context, page, foreignRequests, errors, close: () => context.close() };
}

/** Writes a screenshot to test-results/<dir>/<name>.png (git-ignored). */
export async function screenshot(page: Page, dir: string, name: string): Promise<string> {
  const file = resolve(root, 'test-results', dir, `${name}.png`);
  await mkdir(dirname(file), { recursive: true });
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** A path inside the repository (e.g. `docs/inspector.png`). */
export const repositoryPath = (path: string) => resolve(root, path);
