import { createHmac, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WEBHOOK_SECRET } from '../fixtures/subgraphs/payments/index.js';
import { REQUEST_REFUND, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { startTcpProxy, throughProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { waitFor } from '../support/wait.js';

/**
 * What the flow record cannot hold is refused as BAD_USER_INPUT before anything is written; and while
 * the database is unreachable every answer carries one code, SERVICE_UNAVAILABLE (HTTP 503 on REST
 * routes), never a database error or a 500.
 */

const codeOf = (result: { errors?: Array<{ extensions?: Record<string, unknown> }> }) =>
  result.errors?.[0]?.extensions?.code;

describe('input the record cannot hold', () => {
  let t: TestCoordinator;
  beforeAll(async () => {
    t = await startTestCoordinator('trust-record-input');
  });
  afterAll(async () => {
    await t?.stop();
  });

  const refund = (input: Record<string, unknown>, key?: string) =>
    t.graphql(REQUEST_REFUND, { input: { amount: 10, learnerId: 'l-1', ...input }, key });
  const flowCount = () => t.coordinator.components.database.prisma.flowRun.count();

  it('is BAD_USER_INPUT, and nothing is recorded or run', async () => {
    const flows = await flowCount();
    const returns = t.ledger.calls('/operations/return');
    const cases: Array<[Record<string, unknown>, string?]> = [
      [{ orderId: 'o'.repeat(3_000) }],
      [{ orderId: 'order-\u0000-1' }],
      [{ orderId: 'order-1', learnerId: 'learner\u0000' }],
      [{ orderId: 'order-\ud800-1' }],
      [{ orderId: 'order-1' }, 'key-\u0000'],
      [{ orderId: 'order-1' }, 'k'.repeat(3_000)],
      [{ orderId: 'order-1' }, '   '],
    ];
    for (const [input, key] of cases) {
      const answer = await refund(input, key);
      expect(codeOf(answer), JSON.stringify({ input, key }).slice(0, 80)).toBe('BAD_USER_INPUT');
    }
    expect(await flowCount()).toBe(flows);
    expect(t.ledger.calls('/operations/return')).toBe(returns);
    // The same request with storable values runs.
    expect(codeOf(await refund({ orderId: `order-${randomUUID()}` }, randomUUID()))).toBeUndefined();
  });

  it("keeps a Service's answer the database cannot store, with U+FFFD in place of what it refuses", async () => {
    const { store } = t.coordinator.components;
    const created = await store.createFlow({
      kind: 'filter',
      name: 'trust.nul.v1',
      inputHash: 'h',
      input: {},
      owner: 'trust-test',
    });
    if (created.outcome !== 'created') throw new Error(created.outcome);
    const flow = await store.finishFlow(created.flow.id, created.flow.attempt, {
      status: 'completed',
      output: { note: 'a\u0000b', half: 'x\udc00y' },
    });
    expect(flow.output).toEqual({ note: 'a\ufffdb', half: 'x\ufffdy' });
  });
});

describe('while the database is unreachable', () => {
  let proxy: TcpProxy;
  let database: TestDatabase;
  let t: TestCoordinator;
  beforeAll(async () => {
    database = await createTestDatabase('trust-database-down');
    proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(database.url).port || 5432) });
    t = await startTestCoordinator('trust-database-down', {
      database: { ...database, url: throughProxy(database.url, proxy.port) },
    });
  });
  afterAll(async () => {
    await proxy?.restore();
    await t?.stop();
    await proxy?.close();
    await database?.drop();
  });

  const webhook = (id: string) => {
    const body = JSON.stringify({ id, orderId: 'o-db', refundId: 'r-db' });
    return fetch(`${t.url}/payments/webhook`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-ledger-signature': createHmac('sha256', WEBHOOK_SECRET).update(body).digest('hex'),
      },
      body,
    });
  };

  it('answers SERVICE_UNAVAILABLE everywhere (503 on REST routes), and works again once it is back', async () => {
    await proxy.cut();

    const flows = await t.graphql('{ flows(limit: 5) { id } }');
    expect(codeOf(flows)).toBe('SERVICE_UNAVAILABLE');
    const oneFlow = await t.graphql(`{ flow(id: "${randomUUID()}") { id } }`);
    expect(codeOf(oneFlow)).toBe('SERVICE_UNAVAILABLE');
    const refund = await t.graphql(REQUEST_REFUND, {
      input: { orderId: `db-${randomUUID()}`, amount: 10, learnerId: 'l-1' },
      key: randomUUID(),
    });
    expect(codeOf(refund)).toBe('SERVICE_UNAVAILABLE');
    for (const answer of [flows, oneFlow, refund])
      expect(JSON.stringify(answer)).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|terminated|Prisma/);

    const rest = await webhook(randomUUID());
    expect(rest.status).toBe(503);
    expect(await rest.json()).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });

    await proxy.restore();
    await waitFor(async () => codeOf(await t.graphql('{ flows(limit: 5) { id } }')) === undefined, {
      timeoutMs: 15_000,
      what: 'the database to answer again',
    });
    expect((await webhook(randomUUID())).status).toBe(200);
  });
});
