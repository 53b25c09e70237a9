import { copyFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { REQUEST_REFUND, startTestCoordinator, token, type TestCoordinator } from '../support/coordinator.js';
import {
  launchChromium,
  openPage,
  repositoryPath,
  screenshot,
  type WatchedPage,
} from '../support/browser.js';
import { waitFor } from '../support/wait.js';

/**
 * The flow inspector in Debian's Chromium, against a Coordinator on the core's fixture supergraph (its
 * ledger stand-in fails and delays what a test asks): sign-in, search, a flow's timeline, live
 * updates, the operator actions and their effect, a learner refused, hostile records shown as text.
 * `UPDATE_DOCS_SCREENSHOT=1` also writes docs/inspector.png.
 */

let t: TestCoordinator;
let browser: Browser;
let staff: string;
let learner: string;
let opened: WatchedPage[] = [];
const run = Date.now().toString(36);
const order = (name: string) => `inspect-${name}-${run}`;
const HOSTILE_ORDER = `<img src=x onerror="window.__pwned=1">${run}`;
const HOSTILE_LEARNER = '<script>window.__pwned=2</script>"><b>bold</b>';

type Flow = { id: string; status: string; startedAt: string };
const refund = async (input: Record<string, unknown>) => {
  const { data } = await t.graphql<{ requestRefund: { flow: Flow } }>(
    REQUEST_REFUND,
    { input },
    { token: staff },
  );
  return data?.requestRefund.flow;
};
/** The refund flow of an order (not its receivers' runs). */
const flowOf = async (orderId: string) => {
  const { data } = await t.graphql<{ flows: Array<Flow & { steps: Array<{ status: string }> }> }>(
    `query ($orderId: String) {
      flows(orderId: $orderId, name: "order.refund.requested.v1") { id status startedAt steps { status } }
    }`,
    { orderId },
    { token: staff },
  );
  return data?.flows[0];
};

beforeAll(async () => {
  [t, browser] = await Promise.all([
    startTestCoordinator('inspector', { authenticated: true }),
    launchChromium(),
  ]);
  staff = await token({ kind: 'staff', username: 'grace' });
  learner = await token({ kind: 'learner', lmsUserId: 3, username: 'ada' });
  // One flow that completed, one compensated (the PSP refused the refund), one with a hostile input.
  await refund({ orderId: order('done'), amount: 30, learnerId: 'learner-7' });
  t.ledger.fault({ kind: 'refund', orderId: order('refused'), status: 409, times: 1 });
  await refund({ orderId: order('refused'), amount: 40 });
  await refund({ orderId: HOSTILE_ORDER, amount: 1, learnerId: HOSTILE_LEARNER });
});

afterAll(async () => {
  await browser?.close();
  await t?.stop();
});

afterEach(async () => {
  // No page may have asked another host for anything (fonts, scripts: the page works offline), nor thrown.
  for (const page of opened) {
    expect(page.foreignRequests).toEqual([]);
    expect(page.errors).toEqual([]);
  }
  await Promise.all(opened.map((page) => page.close()));
  opened = [];
});

async function open(): Promise<Page> {
  const watched = await openPage(browser, [t.url]);
  opened.push(watched);
  return watched.page;
}

/** Opens the inspector and signs in by pasting the token, as an operator does. */
async function signedIn(jwt = staff): Promise<Page> {
  const page = await open();
  await page.goto(`${t.url}/inspector/`);
  await page.locator('#token').fill(jwt);
  await page.getByRole('button', { name: 'Sign in' }).click();
  return page;
}

/** Waits until the page shows the view of `hash` (`#/…`): the one it was at may still be on screen. */
const shown = (page: Page, hash: string) =>
  page.waitForFunction((view) => document.getElementById('view')?.dataset.shown === view, hash);

/** Goes to one of the page's views (`#/…`) and waits until it shows it. */
async function show(page: Page, hash: string) {
  await page.goto(`${t.url}/inspector/${hash}`);
  await shown(page, hash);
}

const text = async (page: Page, selector: string) =>
  (await page.locator(selector).first().textContent()) ?? '';
/** The row of the filter flow of an order (its receivers' runs have rows of their own). */
const flowRow = (page: Page, orderId: string) =>
  page.locator('table.flows tbody tr[data-kind="FILTER"]', { hasText: orderId });

describe('the flow inspector page', () => {
  it('is served with a policy that lets it load its own files and talk to the gateway only', async () => {
    const redirect = await fetch(`${t.url}/inspector`, { redirect: 'manual' });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.get('location')).toBe('/inspector/');
    const page = await fetch(`${t.url}/inspector/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect((await fetch(`${t.url}/inspector/main.js`)).headers.get('content-type')).toBe(
      'text/javascript; charset=utf-8',
    );
    const post = await fetch(`${t.url}/inspector/`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(((await post.json()) as { code: string }).code).toBe('METHOD_NOT_ALLOWED');
    // Only the page's own files are served, not what lies beside them.
    for (const path of ['/inspector/route.ts', '/inspector/tsconfig.json', '/inspector/static/main.js']) {
      const missing = await fetch(`${t.url}${path}`);
      expect(missing.status).toBe(404);
      expect(((await missing.json()) as { code: string }).code).toBe('NOT_FOUND');
    }
  });

  it("signs in with a pasted token, kept in the tab's session only", async () => {
    const page = await signedIn();
    await page.locator('#nav').waitFor();
    expect(await text(page, '#caller')).toBe('staff grace');
    expect(await page.evaluate(() => sessionStorage.getItem('coordinator.inspector.token'))).toBe(staff);
    await page.reload();
    await page.locator('table.flows').waitFor();
    expect(await text(page, '#caller')).toBe('staff grace');
    // Another tab (another session) is not signed in.
    const other = await open();
    await other.goto(`${t.url}/inspector/`);
    await other.locator('#sign-in').waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('#sign-in').waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
  });

  it('refuses a token that does not verify, saying why', async () => {
    const page = await signedIn(`${staff.slice(0, -4)}AAAA`);
    await page.locator('#sign-in .error').waitFor();
    expect(await text(page, '#sign-in .error')).toMatch(/^The sign-in was refused: .*signature/);
    expect(await page.locator('#nav').isHidden()).toBe(true);
  });

  it('refuses a learner: nothing of the records is shown', async () => {
    const page = await signedIn(learner);
    await page.locator('#refused').waitFor();
    expect(await text(page, '#refused')).toContain('Signed in as learner ada');
    expect(await text(page, '#refused')).toContain('FORBIDDEN');
    expect(await page.locator('#nav').isHidden()).toBe(true);
    expect(await page.locator('table').count()).toBe(0);
    await screenshot(page, 'inspector', 'learner-refused');
  });

  it('lists flows newest first and searches them by order, status and name', async () => {
    const page = await signedIn();
    await flowRow(page, order('refused')).waitFor();
    const orders = await page.locator('table.flows tbody td.order').allTextContents();
    // Newest first: the hostile one was started last.
    expect(orders.indexOf(HOSTILE_ORDER)).toBeLessThan(orders.indexOf(order('done')));
    await screenshot(page, 'inspector', 'flows');

    await page.locator('#flow-search input[name=orderId]').fill(order('done'));
    await page.locator('#flow-search button[type=submit]').click();
    await waitFor(async () =>
      expect(await page.locator('table.flows tbody tr[data-kind="FILTER"]').count()).toBe(1),
    );
    expect(await flowRow(page, order('done')).textContent()).toContain('COMPLETED');
    expect(page.url()).toContain(`#/flows?orderId=${order('done')}`);

    await show(page, `#/flows?status=COMPENSATED`);
    await flowRow(page, order('refused')).waitFor();
    expect(await page.locator('table.flows tbody tr', { hasText: order('done') }).count()).toBe(0);

    await page.locator('#flow-search input[name=name]').fill('order.refunded.v1');
    await page.locator('#flow-search select[name=status]').selectOption('');
    await page.locator('#flow-search button[type=submit]').click();
    await page.locator('table.flows tbody tr', { hasText: 'revoke-enrollment' }).first().waitFor();
    expect(await page.locator('table.flows tbody tr', { hasText: 'order.refund.requested.v1' }).count()).toBe(
      0,
    );
  });

  it('searches by learner (the caller, by username or LMS user id) and by a time window', async () => {
    const echo = await t.graphql<{ echoCaller: { flow: Flow } }>(
      'query { echoCaller(input: { channel: WEB }) { flow { id status } } }',
      {},
      { token: learner },
    );
    const echoId = echo.data!.echoCaller.flow.id;
    const page = await signedIn();
    for (const who of ['ada', '3']) {
      await show(page, `#/flows?learner=${who}`);
      await page.locator(`tr[data-flow-id="${echoId}"]`).waitFor();
      expect(await page.locator('table.flows tbody tr', { hasText: 'order.refund' }).count()).toBe(0);
    }
    const started = new Date(Date.parse((await flowOf(order('done')))!.startedAt) - 1).toISOString();
    await show(page, `#/flows?to=${encodeURIComponent(started)}`);
    await page.locator('#flow-results .empty').waitFor();
    const now = new Date().toISOString();
    await show(page, `#/flows?from=${encodeURIComponent(started)}&to=${encodeURIComponent(now)}`);
    await flowRow(page, order('done')).waitFor();
    // The form shows the window searched, in UTC (a datetime-local input leaves out seconds of 00).
    expect(await page.locator('#flow-search input[name=from]').inputValue()).toBe(
      started.slice(0, 19).replace(/:00$/, ''),
    );
  });

  it("shows a flow as a timeline of its steps, with each step's record and the compensation", async () => {
    const page = await signedIn();
    await flowRow(page, order('refused')).locator('a').first().click();
    await page.locator('ol.timeline').waitFor();
    expect(await text(page, '#flow-status')).toBe('COMPENSATED');
    const steps = page.locator('ol.timeline > li');
    expect(await steps.count()).toBe(4);
    expect(await steps.locator('.step-action').allTextContents()).toEqual([
      'haltIfLegacy',
      'createReturn',
      'refundPayment',
      'cancelReturn',
    ]);
    // The compensation is recorded after the filter's own steps (recordRefund, #3, never ran).
    expect(await text(page, 'li[data-step="1"] > details > summary')).toContain('COMPENSATED');
    expect(await text(page, 'li[data-step="1"] > details > summary')).toContain('undone by step #4');
    expect(await text(page, 'li[data-step="4"] > details > summary')).toContain('undoes step #1');
    expect(await text(page, '.error-box')).toContain("CONFLICT refund conflicts with the order's state");

    const refundStep = page.locator('li[data-step="2"]');
    await refundStep.locator('> details > summary').click();
    const body = refundStep.locator('.step-body');
    await body.waitFor();
    expect(await text(page, 'li[data-step="2"] > details > summary')).toContain('FAILED');
    expect(await body.textContent()).toContain('CONFLICT');
    expect(await body.textContent()).toContain('Implementationpayments');
    expect(await body.textContent()).toContain('transition.refunds.payments-v2 = false');
    expect(await body.textContent()).toContain(`"orderId": "${order('refused')}"`);
    expect(await body.textContent()).toMatch(/Attempts1/);
    await screenshot(page, 'inspector', 'flow-timeline');
  });

  it("shows a flow's signals and the runs of their receivers", async () => {
    const page = await signedIn();
    await show(page, `#/flows?orderId=${order('done')}`);
    await flowRow(page, order('done')).locator('a').first().click();
    const signal = page.locator('.signal', { hasText: 'order.refunded.v1' });
    const receiver = signal.locator('tr[data-receiver="revoke-enrollment"]');
    await receiver.waitFor();
    expect(await signal.locator('h3').textContent()).toMatch(/^order\.refunded\.v1 [0-9a-f-]{36}$/);
    await waitFor(async () => expect(await receiver.textContent()).toContain('COMPLETED'));
    const run = (await receiver.locator('a').getAttribute('href'))!;
    await receiver.locator('a').click();
    // The flow's own timeline is on screen until the receiver run's replaces it.
    await shown(page, run);
    expect(await text(page, 'h1')).toContain('order.refunded.v1 → revoke-enrollment');
  });

  it('renders a hostile input as text, running none of it', async () => {
    const page = await signedIn();
    await show(page, `#/flows?orderId=${encodeURIComponent(HOSTILE_ORDER)}`);
    const row = flowRow(page, HOSTILE_ORDER);
    await row.waitFor();
    expect(await row.locator('td.order').textContent()).toBe(HOSTILE_ORDER);
    await row.locator('a').first().click();
    await page.locator('ol.timeline').waitFor();
    await page.locator('details.flow-input summary').click();
    expect(await text(page, 'details.flow-input pre')).toContain(HOSTILE_LEARNER.replace(/"/g, '\\"'));
    await page.locator('li[data-step="0"] > details > summary').click();
    expect(await text(page, 'li[data-step="0"] pre')).toContain(HOSTILE_ORDER.replace(/"/g, '\\"'));
    expect(await page.evaluate(() => (window as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(await page.locator('main img, main script, main b').count()).toBe(0);
    await screenshot(page, 'inspector', 'hostile-input');
  });

  it('updates the list live as flows start and end', async () => {
    const page = await signedIn();
    await page.locator('#live[data-status="live"]').waitFor();
    await page.locator('table.flows').waitFor();
    await page.evaluate(() => ((window as { __sameDocument?: boolean }).__sameDocument = true));
    await refund({ orderId: order('live'), amount: 5 });
    await flowRow(page, order('live')).waitFor();
    await waitFor(async () =>
      expect(await flowRow(page, order('live')).textContent()).toContain('COMPLETED'),
    );
    // The page was updated in place, not reloaded.
    expect(await page.evaluate(() => (window as { __sameDocument?: boolean }).__sameDocument)).toBe(true);
  });

  it("updates an open flow's timeline live as its steps end", async () => {
    t.ledger.fault({ kind: 'refund', orderId: order('slow'), delayMs: 5_000 });
    const running = refund({ orderId: order('slow'), amount: 5 });
    const flow = await waitFor(async () => (await flowOf(order('slow'))) ?? false);
    const page = await signedIn();
    await page.locator('#live[data-status="live"]').waitFor();
    await show(page, `#/flow/${flow.id}`);
    await page.locator('ol.timeline').waitFor();
    expect(await text(page, '#flow-status')).toBe('RUNNING');
    await waitFor(async () => expect(await text(page, '#flow-status')).toBe('COMPLETED'), {
      timeoutMs: 15_000,
    });
    expect(await page.locator('ol.timeline > li').count()).toBe(4);
    expect((await running)?.status).toBe('COMPLETED');
  });
});

describe('signed in by the LMS', () => {
  it("reads the edX JWT cookies: no token to paste, and live updates over the page's own origin", async () => {
    const page = await open();
    const [header, payload, signature] = staff.split('.');
    await page.context().addCookies([
      { name: 'edx-jwt-cookie-header-payload', value: `${header}.${payload}`, url: t.url },
      { name: 'edx-jwt-cookie-signature', value: signature!, url: t.url, httpOnly: true },
    ]);
    await page.goto(`${t.url}/inspector/`);
    await page.locator('table.flows').waitFor();
    expect(await text(page, '#caller')).toBe('staff grace (LMS cookies)');
    await page.locator('#live[data-status="live"]').waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
  });
});

/** Confirms the open dialog with a reason and waits for what the action says it did. */
async function confirmWith(page: Page, reason: string): Promise<string> {
  await page.locator('#confirm[open]').waitFor();
  await page.locator('#confirm-reason').fill(reason);
  await page.locator('#confirm-ok').click();
  await page.locator('#notice').waitFor();
  return text(page, '#notice');
}

const operatorActionsOf = async (flowId: string) => {
  const { data } = await t.graphql<{
    operatorActions: Array<{ action: string; reason: string; actor: unknown }>;
  }>(
    'query ($flowId: ID) { operatorActions(flowId: $flowId) { action reason actor } }',
    { flowId },
    { token: staff },
  );
  return data?.operatorActions;
};

describe('operator actions, each confirmed with a reason', () => {
  it('retries a compensated flow; without a reason nothing is done', async () => {
    const flow = (await flowOf(order('refused')))!;
    expect(flow.status).toBe('COMPENSATED');
    const page = await signedIn();
    await show(page, `#/flow/${flow.id}`);
    await page.locator('#retry-flow').click();
    await page.locator('#confirm-ok').click();
    await page.locator('#confirm-error').waitFor();
    expect(await text(page, '#confirm-error')).toContain('Say why');
    expect(await operatorActionsOf(flow.id)).toEqual([]);

    expect(await confirmWith(page, 'The PSP lifted its refusal')).toBe('Retried: the flow ended COMPLETED.');
    await waitFor(async () => expect(await text(page, '#flow-status')).toBe('COMPLETED'));
    const recorded = page.locator('table.operator-actions tbody tr');
    await recorded.first().waitFor();
    expect(await recorded.first().textContent()).toContain('RETRY_FLOW');
    expect(await recorded.first().textContent()).toContain('staff grace');
    expect(await recorded.first().textContent()).toContain('The PSP lifted its refusal');
    expect(await recorded.first().textContent()).toContain('DONE');
    // The effect: the refund was made this time, and the flow's signal went out.
    expect((await flowOf(order('refused')))?.status).toBe('COMPLETED');
    expect(t.ledger.operations().some((o) => o.kind === 'refund' && o.orderId === order('refused'))).toBe(
      true,
    );
    await page.locator('.signal', { hasText: 'order.refunded.v1' }).waitFor();
    await page.locator('li[data-step="2"] > details > summary').click();
    await screenshot(page, 'inspector', 'flow-retried');
    if (process.env.UPDATE_DOCS_SCREENSHOT)
      await copyFile(
        await screenshot(page, 'inspector', 'docs-inspector'),
        repositoryPath('docs/inspector.png'),
      );
  });

  it('cancels a stuck flow: what ran is compensated', async () => {
    t.ledger.fault({ kind: 'refund', orderId: order('stuck'), delayMs: 6_000 });
    const running = refund({ orderId: order('stuck'), amount: 9 }).catch(() => undefined);
    // Stuck in its refund (step #2): the return it created (#1) is what a cancel undoes.
    const flow = await waitFor(async () => {
      const found = await flowOf(order('stuck'));
      return found?.steps.length === 3 ? found : false;
    });
    const page = await signedIn();
    await show(page, `#/flow/${flow.id}`);
    await page.locator('#cancel-flow').click();
    expect(await confirmWith(page, 'The PSP call hangs')).toBe('Cancelled: the flow ended COMPENSATED.');
    await waitFor(async () => expect(await text(page, '#flow-status')).toBe('COMPENSATED'));
    expect(await text(page, '.error-box')).toContain('FLOW_CANCELLED');
    expect(
      t.ledger.operations().some((o) => o.kind === 'cancel-return' && o.orderId === order('stuck')),
    ).toBe(true);
    expect((await operatorActionsOf(flow.id))?.map((a) => a.action)).toEqual(['CANCEL_FLOW']);
    await running;
  });

  it('shows why the gateway refused an action, keeping the dialog open; the refusal is recorded', async () => {
    t.ledger.fault({ kind: 'refund', orderId: order('ends'), delayMs: 4_000 });
    const running = refund({ orderId: order('ends'), amount: 2 });
    const flow = await waitFor(async () => (await flowOf(order('ends'))) ?? false);
    const page = await signedIn();
    await show(page, `#/flow/${flow.id}`);
    await page.locator('#cancel-flow').click();
    await page.locator('#confirm-reason').fill('Looks stuck');
    // The flow ends before the operator confirms: it is no longer RUNNING.
    expect((await running)?.status).toBe('COMPLETED');
    await page.locator('#confirm-ok').click();
    await page.locator('#confirm-error').waitFor();
    expect(await text(page, '#confirm-error')).toMatch(/^CONFLICT: /);
    expect(await page.locator('#confirm[open]').count()).toBe(1);
    await page.locator('#confirm-cancel').click();
    const recorded = page.locator('table.operator-actions tbody tr');
    await waitFor(async () => expect(await recorded.first().textContent()).toContain('REFUSED'));
    expect(await recorded.first().textContent()).toContain('CANCEL_FLOW');
    expect(await text(page, '#flow-status')).toBe('COMPLETED');
  });

  /** A completed refund whose receiver failed every attempt: its signal is dead-lettered. */
  async function deadLettered(orderId: string) {
    t.ledger.fault({ kind: 'revoke', orderId, status: 503, times: 3 });
    await refund({ orderId, amount: 3 });
    await waitFor(
      async () => {
        const { data } = await t.graphql<{ deadLetters: Array<{ payload: { orderId: string } }> }>(
          '{ deadLetters(receiver: "revoke-enrollment") { payload } }',
          {},
          { token: staff },
        );
        return data?.deadLetters.some((d) => d.payload.orderId === orderId) ?? false;
      },
      { timeoutMs: 10_000, what: `the dead letter of ${orderId}` },
    );
  }

  it('shows dead letters across receivers and replays those selected', async () => {
    await deadLettered(order('dead'));
    const page = await signedIn();
    await page.locator('#nav a[data-section="dead-letters"]').click();
    const row = page.locator('table.dead-letters tbody tr', { hasText: order('dead') });
    await row.waitFor();
    expect(await row.textContent()).toContain('revoke-enrollment');
    expect(await row.textContent()).toContain('order.refunded.v1');
    await screenshot(page, 'inspector', 'dead-letters');
    // Its signal: which flow emitted it, and how each receiver fared.
    await row.locator('a[href^="#/signal/"]').click();
    const receiver = page.locator('.signal tr[data-receiver="revoke-enrollment"]');
    await receiver.waitFor();
    expect(await receiver.textContent()).toContain('after 3 attempts');
    const emitter = (await flowOf(order('dead')))!;
    expect(await page.locator(`a[href="#/flow/${emitter.id}"]`).count()).toBe(1);
    await page.goBack();
    await row.locator('input.select-dead-letter').check();
    await page.locator('#replay-selected').click();
    expect(await confirmWith(page, 'The LMS is back')).toBe('Replayed 1 dead letter.');
    await row.waitFor({ state: 'detached' });
    await waitFor(() =>
      t.ledger.operations().some((o) => o.kind === 'revoke' && o.orderId === order('dead')),
    );
  });

  it('redelivers a signal to a receiver whose run failed for good', async () => {
    await deadLettered(order('lost'));
    const page = await signedIn();
    await show(page, `#/flows?orderId=${order('lost')}`);
    await flowRow(page, order('lost')).locator('a').first().click();
    const receiver = page.locator('.signal tr[data-receiver="revoke-enrollment"]');
    await waitFor(async () => expect(await receiver.textContent()).toContain('FAILED'));
    await receiver.locator('button.redeliver').click();
    expect(await confirmWith(page, 'Enrol revocation retried by hand')).toBe(
      'Redelivered order.refunded.v1 to revoke-enrollment.',
    );
    await waitFor(async () => expect(await receiver.textContent()).toContain('COMPLETED'), {
      timeoutMs: 10_000,
    });
    expect(t.ledger.operations().some((o) => o.kind === 'revoke' && o.orderId === order('lost'))).toBe(true);
  });
});

describe('another site, with the LMS cookies in the browser', () => {
  it('can neither act nor subscribe: its forged requests are refused and run nothing', async () => {
    const target = order('forged');
    /** What reached the gateway: requests (content type, answer) and websocket handshakes (origin). */
    const seen: Array<{ method?: string; type?: string; origin?: string; cookie: boolean; status?: number }> =
      [];
    const gateway = t.coordinator.components.server;
    const listen = (req: IncomingMessage, res: ServerResponse) =>
      res.once('finish', () =>
        seen.push({
          method: req.method,
          type: req.headers['content-type'],
          cookie: Boolean(req.headers.cookie?.includes('edx-jwt-cookie-signature')),
          status: res.statusCode,
        }),
      );
    const upgrade = (req: IncomingMessage) =>
      seen.push({
        method: 'UPGRADE',
        origin: req.headers.origin,
        cookie: Boolean(req.headers.cookie?.includes('edx-jwt-cookie-signature')),
      });
    gateway.on('request', listen);
    gateway.on('upgrade', upgrade);
    const hostile = await serveHostilePage(t.url, target);
    // A context of its own: the hostile page's refused requests are its console errors, on purpose.
    const context = await browser.newContext();
    try {
      const [header, payload, signature] = staff.split('.');
      await context.addCookies([
        { name: 'edx-jwt-cookie-header-payload', value: `${header}.${payload}`, url: t.url },
        { name: 'edx-jwt-cookie-signature', value: signature!, url: t.url, httpOnly: true },
      ]);
      const page = await context.newPage();
      page.setDefaultTimeout(10_000);
      await page.goto(hostile.url);
      const outcome = await waitFor(
        async () => {
          const o = await page.evaluate(
            () => (window as { outcome?: Record<string, unknown> }).outcome ?? {},
          );
          return o.fetch && o.socket ? o : false;
        },
        { what: 'the hostile page to try its fetch and websocket' },
      );
      // The JSON request needs a preflight the gateway does not grant; the websocket is closed 4403.
      expect(outcome).toEqual({ fetch: 'blocked', socket: 4403 });
      // The browser asked first (and was not answered with CORS headers); the socket had the cookies.
      expect(seen.some((r) => r.method === 'OPTIONS')).toBe(true);
      expect(seen).toContainEqual({ method: 'UPGRADE', origin: new URL(hostile.url).origin, cookie: true });
      await Promise.all([
        page.waitForURL(`${t.url}/graphql`),
        page.evaluate(() => (document.forms[0] as HTMLFormElement).submit()),
      ]);
      expect(await page.textContent('body')).toContain('BAD_REQUEST');
      // The form's POST reached the gateway with the cookies, and was refused.
      expect(seen).toContainEqual({ method: 'POST', type: 'text/plain', cookie: true, status: 400 });
      expect(seen.filter((r) => r.method === 'POST' && r.type === 'application/json')).toEqual([]);
      expect((await flowOf(target)) ?? null).toBeNull();
      expect(t.ledger.operations().filter((o) => o.orderId === target)).toEqual([]);
    } finally {
      gateway.off('request', listen);
      gateway.off('upgrade', upgrade);
      await context.close();
      await hostile.close();
    }
  });
});

/**
 * A page of another origin (another port) that tries, with the visitor's cookies, what a forged
 * request can: a JSON fetch (preflighted), a websocket, and an HTML form posting a mutation as text.
 */
async function serveHostilePage(gatewayUrl: string, orderId: string) {
  const mutation = `mutation { requestRefund(input: { orderId: "${orderId}", amount: 99 }) { flow { id } } }`;
  // The classic text/plain form: the field's name and value together are a JSON body.
  const [name, value] = [`{"query":${JSON.stringify(mutation)},"x":"`, '"}'];
  const attr = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;');
  const html = `<!doctype html>
<form method="POST" action="${gatewayUrl}/graphql" enctype="text/plain"><input name="${attr(name)}" value="${attr(value)}"></form>
<script>
  window.outcome = {};
  fetch(${JSON.stringify(`${gatewayUrl}/graphql`)}, {
    method: 'POST', credentials: 'include', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: ${JSON.stringify(mutation)} }),
  }).then((r) => (outcome.fetch = 'answered ' + r.status), () => (outcome.fetch = 'blocked'));
  const socket = new WebSocket(${JSON.stringify(`${gatewayUrl.replace(/^http/, 'ws')}/graphql`)}, 'graphql-transport-ws');
  socket.onopen = () => socket.send(JSON.stringify({ type: 'connection_init', payload: {} }));
  socket.onmessage = (e) => (outcome.socket = JSON.parse(e.data).type);
  socket.onclose = (e) => (outcome.socket ??= e.code);
</script>`;
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(html));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
