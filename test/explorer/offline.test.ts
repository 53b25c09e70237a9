import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REQUEST_REFUND, startTestCoordinator, token, type TestCoordinator } from '../support/coordinator.js';
import { launchChromium, openPage, screenshot, type WatchedPage } from '../support/browser.js';

/**
 * The explorer a developer gets when Apollo Sandbox cannot load from its CDN: the landing page falls
 * back to GraphiQL bundled and served by the gateway itself, which queries and subscribes with the
 * developer's token, in Debian's Chromium with every other origin refused (as offline).
 */

let t: TestCoordinator;
let browser: Browser;
let staff: string;
const opened: WatchedPage[] = [];
const SANDBOX_CDN = 'https://embeddable-sandbox.cdn.apollographql.com/';

beforeAll(async () => {
  [t, browser] = await Promise.all([
    startTestCoordinator('explorer', { authenticated: true }),
    launchChromium(),
  ]);
  staff = await token({ kind: 'staff', username: 'grace' });
});

afterAll(async () => {
  await Promise.all(opened.map((page) => page.close()));
  await browser?.close();
  await t?.stop();
});

async function open(): Promise<WatchedPage> {
  const watched = await openPage(browser, [t.url]);
  opened.push(watched);
  return watched;
}

/** Sets the visible one of GraphiQL's editors (CodeMirror) under `selector`, as typing into it would. */
async function setEditor(page: Page, selector: string, value: string) {
  const editor = page.locator(`${selector} .CodeMirror`).filter({ visible: true }).first();
  await editor.waitFor();
  await editor.evaluate((element, value) => {
    (element as unknown as { CodeMirror: { setValue(value: string): void } }).CodeMirror.setValue(value);
  }, value);
}

/** Sets the query, once GraphiQL has taken it in (it saves the query, debounced, after each edit). */
async function setQuery(page: Page, query: string) {
  await setEditor(page, '.graphiql-query-editor', query);
  await page.waitForFunction((query) => localStorage.getItem('graphiql:query') === query, query);
}

async function explorer(): Promise<WatchedPage> {
  const watched = await open();
  await watched.page.goto(`${t.url}/explorer/`);
  await watched.page.locator('.graphiql-container').waitFor();
  await watched.page.getByRole('button', { name: 'Headers' }).click();
  await setEditor(
    watched.page,
    '.graphiql-editor-tool',
    JSON.stringify({ Authorization: `Bearer ${staff}` }),
  );
  return watched;
}

const result = (page: Page) => page.locator('.result-window').textContent();

describe('the landing page without Apollo Sandbox', () => {
  it('opens the bundled explorer, on the same origin, when the CDN cannot be reached', async () => {
    const { page, foreignRequests } = await open();
    await page.goto(`${t.url}/graphql`, { waitUntil: 'commit' });
    await page.waitForURL(`${t.url}/explorer/`);
    await page.locator('.graphiql-container').waitFor();
    // Sandbox was asked for and refused; the explorer itself asked no other origin for anything.
    expect(foreignRequests.some((url) => url.startsWith(SANDBOX_CDN))).toBe(true);
    expect(
      foreignRequests.every((url) => /^https:\/\/[a-z.-]*(apollographql|googleapis)\.com\//.test(url)),
    ).toBe(true);
    await screenshot(page, 'explorer', 'fallback');
  });

  it('stays on Sandbox when its CDN answers', async () => {
    const { context, page } = await open();
    // Sandbox's script, as the CDN would serve it, reduced to the constructor the page calls.
    await context.route(`${SANDBOX_CDN}**`, (route) =>
      route.fulfill({
        contentType: 'text/javascript',
        body: 'window.EmbeddedSandbox = function () { document.body.dataset.sandbox = "loaded"; };',
      }),
    );
    await page.goto(`${t.url}/graphql`);
    await page.waitForFunction(() => document.body.dataset.sandbox === 'loaded');
    expect(new URL(page.url()).pathname).toBe('/graphql');
  });
});

describe('the bundled explorer', () => {
  it('runs a query with the headers the developer set, and loads nothing from elsewhere', async () => {
    const { page, foreignRequests, errors } = await explorer();
    await setQuery(page, '{ flows(limit: 1) { id } }');
    await page.locator('.graphiql-execute-button').click();
    await expect.poll(() => result(page)).toContain('"flows"');
    expect(await result(page)).not.toContain('UNAUTHENTICATED');
    expect(foreignRequests).toEqual([]);
    expect(errors).toEqual([]);
    await screenshot(page, 'explorer', 'query');
  });

  it("gets a subscription's events over the gateway's websocket, authenticated by the same header", async () => {
    const { page, foreignRequests, errors } = await explorer();
    const orderId = `explorer-${Date.now().toString(36)}`;
    await setQuery(
      page,
      'subscription { flowEvents(name: "order.refund.requested.v1") { type flowId status } }',
    );
    await page.locator('.graphiql-execute-button').click();
    // Refunds until one is seen: the subscription starts once its socket is open and authorised.
    await expect
      .poll(
        async () => {
          await t.graphql(REQUEST_REFUND, { input: { orderId, amount: 5 } }, { token: staff });
          return result(page);
        },
        { timeout: 10_000, interval: 500 },
      )
      .toMatch(/"flowEvents": \{\s*"type": "(FLOW|STEP)_/);
    expect(foreignRequests).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('is not served in production, where the schema cannot be introspected', async () => {
    const production = await startTestCoordinator('explorer-prod', {
      authenticated: true,
      overrides: { production: true },
    });
    try {
      expect((await fetch(`${production.url}/explorer/`)).status).toBe(404);
    } finally {
      await production.stop();
    }
  });
});
