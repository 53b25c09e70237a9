import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { executeOrderManagement, useOrderManagementStandIn } from '../support/order-management.js';
import { silentLogger } from '../../gateway/log.js';
import type { FilterResult, PluginRuntime, Principal, RouteRequest } from '@commerce-coordinator/plugin-sdk';
import { createOrderManagementClient } from '../../subgraphs/order-management/client.js';
import { readOrderManagementConfig } from '../../subgraphs/order-management/config.js';
import plugin from '../../subgraphs/order-management/index.js';

// The bound on the order ids and order numbers the order-management Plugin takes from its callers:
// every entry point (webhook routes, queries, Actions, the Order entity) refuses one over 255 characters
// as BAD_USER_INPUT before it calls the Service, and the client reports the Service's refusal of an
// over-long request (414, 431) as what it is rather than as a Service that did not answer.
// The plugin's schema and routes run as the gateway runs them, against the stand-in over real HTTP.

const standIn = useOrderManagementStandIn();

const service: Principal = { kind: 'service', subject: 'om-client', service: 'order-management' };
const staff: Principal = { kind: 'staff', subject: 'staff-1', username: 'grace' };

const ID_MESSAGE = 'The order id is longer than 255 characters';
const NUMBER_MESSAGE = 'The order number is longer than 255 characters';
/** Just over the bound (a request the Service would take: it would count it) and the tester's 20 000. */
const overLong = ['b'.repeat(256), 'b'.repeat(20_000)];

let keys = 0;
const run = (document: string, variables: Record<string, unknown>, principal: Principal = staff) =>
  executeOrderManagement(document, variables, { principal, idempotencyKey: `order-keys-${++keys}` });

/** The first error's code and message, and whether the Service was called meanwhile. */
async function refusal(document: string, variables: Record<string, unknown>) {
  const before = standIn.om.calls();
  const result = await run(document, variables);
  return {
    code: result.errors?.[0]?.extensions?.code,
    message: result.errors?.[0]?.message,
    serviceCalls: standIn.om.calls() - before,
  };
}
const refusedId = { code: 'BAD_USER_INPUT', message: ID_MESSAGE, serviceCalls: 0 };
const refusedNumber = { code: 'BAD_USER_INPUT', message: NUMBER_MESSAGE, serviceCalls: 0 };

describe('order-management plugin: order ids and numbers over 255 characters', () => {
  it('order(id) and orderByNumber: BAD_USER_INPUT without a Service call; 255 characters are looked up', async () => {
    const ORDER = 'query ($x: ID!) { order(id: $x) { id } }';
    const BY_NUMBER = 'query ($x: String!) { orderByNumber(orderNumber: $x) { id } }';
    for (const x of overLong) {
      expect(await refusal(ORDER, { x })).toEqual(refusedId);
      expect(await refusal(BY_NUMBER, { x })).toEqual(refusedNumber);
    }
    // At the bound the Service is asked, and knows no such order.
    expect((await run(ORDER, { x: 'b'.repeat(255) })).data).toEqual({ order: null });
    const byNumber = await run(BY_NUMBER, { x: 'b'.repeat(255) });
    expect(byNumber.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  it('the Order entity: a representation with an over-long id is refused, the others in its batch resolve', async () => {
    const [order] = standIn.om.seed({
      orders: [
        {
          orderNumber: '2U-2099000001',
          customer: { lmsUserId: 99_001, username: 'keys1', email: 'keys1@example.com' },
          lineItems: [{ title: 'Python 101', priceCents: 4900, courseRunKey: 'course-v1:edX+PY101+2026' }],
        },
      ],
    }).orders;
    const result = await run(
      'query ($r: [_Any!]!) { _entities(representations: $r) { ... on Order { id } } }',
      {
        r: [
          { __typename: 'Order', id: order!.id },
          { __typename: 'Order', id: 'b'.repeat(20_000) },
        ],
      },
      service,
    );
    expect(result.data).toEqual({ _entities: [{ id: order!.id }, null] });
    expect(result.errors?.map((e) => [e.path, e.extensions?.code, e.message])).toEqual([
      [['_entities', 1], 'BAD_USER_INPUT', ID_MESSAGE],
    ]);
  });

  it('refundLines, by order id or by order number: BAD_USER_INPUT without a Service call', async () => {
    const REFUND_LINES =
      'query ($input: RefundLinesInput!) { refundLines(input: $input) { orderId lineItemIds } }';
    for (const x of overLong) {
      expect(await refusal(REFUND_LINES, { input: { orderId: x, lineItemIds: ['li-1'] } })).toEqual(
        refusedId,
      );
      expect(await refusal(REFUND_LINES, { input: { orderId: x, entitlementUuid: 'ent-1' } })).toEqual(
        refusedId,
      );
      expect(await refusal(REFUND_LINES, { input: { orderNumber: x, entitlementUuid: 'ent-1' } })).toEqual(
        refusedNumber,
      );
    }
  });

  it('every Action on an order: BAD_USER_INPUT without a Service call', async () => {
    const actions: Array<[string, string, (orderId: string) => Record<string, unknown>]> = [
      ['createReturn', 'CreateReturnInput', (orderId) => ({ orderId, lineItemIds: ['li-1'] })],
      ['settleReturn', 'SettleReturnInput', (orderId) => ({ orderId, settlement: 'NO_PAYMENT' })],
      ['markReturnNotRefunded', 'MarkReturnNotRefundedInput', (orderId) => ({ orderId, returnId: 'r-1' })],
      ['startFulfillment', 'StartFulfillmentInput', (orderId) => ({ orderId })],
      ['failFulfillment', 'FailFulfillmentInput', (orderId) => ({ orderId })],
      [
        'completeFulfillment',
        'CompleteFulfillmentInput',
        (orderId) => ({ orderId, fulfillments: [{ lineItemId: 'li-1', fulfilled: true }] }),
      ],
    ];
    for (const [action, inputType, input] of actions)
      for (const x of overLong)
        expect(
          await refusal(`mutation ($input: ${inputType}!) { ${action}(input: $input) { __typename } }`, {
            input: input(x),
          }),
          action,
        ).toEqual(refusedId);
  });

  it('createMobileCart: an over-long order number is BAD_USER_INPUT without a Service call', async () => {
    for (const x of overLong)
      expect(
        await refusal(
          'mutation ($input: CreateMobileCartInput!) { createMobileCart(input: $input) { cartId } }',
          {
            input: {
              customerId: 'customer-1',
              lmsUserId: 1,
              username: 'learner1',
              email: 'learner1@example.com',
              orderNumber: x,
              courseRunKey: 'course-v1:edX+PY101+2026',
              currencyCode: 'USD',
              price: '49.99',
              paymentProcessor: 'ios_iap',
            },
          },
        ),
      ).toEqual(refusedNumber);
  });
});

describe('order-management plugin: routes refuse an over-long order id', () => {
  const filters: string[] = [];
  const published: string[] = [];
  const runtime: PluginRuntime = {
    logger: silentLogger,
    async publish(signal) {
      published.push(signal);
      return { duplicate: false };
    },
    async runFilter(name): Promise<FilterResult> {
      filters.push(name);
      return { flowId: 'flow-1', status: 'COMPLETED', output: {} };
    },
    variation: async (_flag, _principal, defaultValue) => defaultValue,
  };
  const request = (path: string, body: unknown): RouteRequest => ({
    method: 'POST',
    path,
    headers: { 'content-type': 'application/json' },
    query: new URLSearchParams(),
    rawQuery: '',
    rawBody: Buffer.from(JSON.stringify(body)),
    principal: service,
  });
  const returnInfo = { items: [{ id: 'r1', lineItemId: 'li' }] };

  it('fulfill, sanctioned and returned: 400 BAD_USER_INPUT { code, message }, no Service call, no flow, no signal', async () => {
    for (const route of plugin.routes!)
      for (const x of overLong)
        for (const detail of [
          { id: x, returnInfo },
          { id: 'message-1', resource: { typeId: 'order', id: x }, returnInfo },
        ]) {
          const before = standIn.om.calls();
          const response = await route.handle(request(route.path, { id: 'e1', detail }), runtime);
          expect({ path: route.path, response, serviceCalls: standIn.om.calls() - before }).toEqual({
            path: route.path,
            response: { status: 400, body: { code: 'BAD_USER_INPUT', message: ID_MESSAGE } },
            serviceCalls: 0,
          });
        }
    expect(filters).toEqual([]);
    expect(published).toEqual([]);
  });

  it('at 255 characters the Service is asked: an unknown order is 404 NOT_FOUND', async () => {
    for (const path of ['/order-management/sanctioned', '/order-management/returned']) {
      const route = plugin.routes!.find((r) => r.path === path)!;
      const response = await route.handle(
        request(path, { id: 'e1', detail: { id: 'b'.repeat(255), returnInfo } }),
        runtime,
      );
      expect(response).toMatchObject({ status: 404, body: { code: 'NOT_FOUND' } });
    }
  });
});

describe('order-management client: the Service refuses a request as too long', () => {
  const orderManagementClientFor = () => createOrderManagementClient(readOrderManagementConfig());
  let raw: Server | undefined;
  afterAll(async () => {
    await new Promise((resolve) => (raw ? raw.close(resolve) : resolve(undefined)));
  });

  it('431 (Node refuses the request line): BAD_USER_INPUT naming the answer, not "did not answer"', async () => {
    const failure = await orderManagementClientFor()
      .getOrder('b'.repeat(20_000))
      .then(
        () => undefined,
        (error: unknown) => error as Error & { extensions?: Record<string, unknown> },
      );
    expect(failure?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', serviceStatus: 431 });
    expect(failure?.message).toMatch(
      /^The order management Service refused GET \/orders\/b+… as too long \(431\)/,
    );
    expect(failure!.message.length).toBeLessThan(300);
  });

  it('414 with a body that is not JSON (a proxy’s page): the same BAD_USER_INPUT', async () => {
    raw = createServer((_req, res) =>
      res
        .writeHead(414, { 'content-type': 'text/html' })
        .end('<html><h1>414 Request-URI Too Large</h1></html>'),
    );
    await new Promise<void>((resolve) => raw!.listen(0, '127.0.0.1', resolve));
    const client = createOrderManagementClient({
      ...readOrderManagementConfig(),
      // The token from the stand-in, the API call to a server that refuses every URL as too long.
      apiUrl: `http://127.0.0.1:${(raw.address() as AddressInfo).port}`,
    });
    const failure = await client.getOrders(['order-1']).then(
      () => undefined,
      (error: unknown) => error as Error & { extensions?: Record<string, unknown> },
    );
    expect(failure?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', serviceStatus: 414 });
    expect(failure?.message).toMatch(
      /^The order management Service refused GET \/orders as too long \(414\)/,
    );
  });

  it('414 with commercetools’ JSON body: the same BAD_USER_INPUT', async () => {
    standIn.om.failNext(1, 414, `/${standIn.om.projectKey}/orders`);
    const failure = await orderManagementClientFor()
      .getOrder('order-1')
      .then(
        () => undefined,
        (error: unknown) => error as Error & { extensions?: Record<string, unknown> },
      );
    expect(failure?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', serviceStatus: 414 });
    expect(failure?.message).toMatch(
      /^The order management Service refused GET \/orders\/order-1 as too long \(414\)/,
    );
  });
});
