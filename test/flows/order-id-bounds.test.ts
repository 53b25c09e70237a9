import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';

// The tester's report, end to end through the gateway: an order id (or number) of 20 000 characters
// was a 500 "order management did not answer GET /orders/bbbb…" on the order management Service's
// webhooks and on the order queries; it is BAD_USER_INPUT, as /order-management/fulfill always was.

let c: CommerceCoordinator;

beforeAll(async () => {
  c = await startCommerceCoordinator('flow-order-id-bounds');
});
afterAll(async () => {
  await c?.stop();
});

const long = 'b'.repeat(20_000);

describe('an order id or order number over 255 characters', () => {
  it('the webhooks answer 400 BAD_USER_INPUT { code, message }', async () => {
    for (const path of [
      '/order-management/fulfill',
      '/order-management/sanctioned',
      '/order-management/returned',
    ]) {
      const res = await c.request(path, {
        method: 'POST',
        token: c.tokens.orderManagement,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          id: 'e1',
          detail: { id: long, returnInfo: { items: [{ id: 'r1', lineItemId: 'li' }] } },
        }),
      });
      expect({ path, status: res.status, body: await res.json() }).toEqual({
        path,
        status: 400,
        body: { code: 'BAD_USER_INPUT', message: 'The order id is longer than 255 characters' },
      });
    }
  });

  it('order(id) and orderByNumber answer BAD_USER_INPUT to staff', async () => {
    const byId = await c.graphql('query ($x: ID!) { order(id: $x) { id } }', { x: long }, c.tokens.staff);
    expect(byId.errors?.map((e) => [e.extensions?.code, e.message])).toEqual([
      ['BAD_USER_INPUT', 'The order id is longer than 255 characters'],
    ]);
    const byNumber = await c.graphql(
      'query ($x: String!) { orderByNumber(orderNumber: $x) { id } }',
      { x: long },
      c.tokens.staff,
    );
    expect(byNumber.errors?.map((e) => [e.extensions?.code, e.message])).toEqual([
      ['BAD_USER_INPUT', 'The order number is longer than 255 characters'],
    ]);
  });
});
