import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { seedPaidOrder, standInState } from '../support/orders.js';

/** Refund requests that arrive together: money moves once, whatever is sent at the same moment. */

let cc: CommerceCoordinator;
beforeAll(async () => {
  cc = await startCommerceCoordinator('trust-refund-races');
});
afterAll(async () => {
  await cc?.stop();
});

const REFUND = /* GraphQL */ `
  mutation ($input: RefundRequestInput!, $key: String) {
    requestRefund(input: $input, idempotencyKey: $key) {
      flow {
        id
      }
    }
  }
`;
const refund = (orderId: string, lineItemIds: string[], key: string) =>
  cc.graphql<{ requestRefund: { flow: { id: string } } }>(
    REFUND,
    { input: { orderId, lineItemIds }, key },
    cc.tokens.staff,
  );

describe('one idempotency key sent at the same moment', () => {
  it('with the same input runs one flow; with another input is refused; one PSP refund in all', async () => {
    const order = seedPaidOrder(cc, 'STRIPE', { prices: [14_900, 9_900] });
    const key = `race-${randomUUID()}`;
    // The PSP's first answer is slow (a 500 after 800 ms, which the SDK retries with the same key), so
    // all three requests meet the first flow while it runs.
    cc.services.stripe.failNext({ method: 'POST', path: '/v1/refunds', delayMs: 800 });
    const answers = await Promise.all([
      refund(order.orderId, [order.lineItemIds[0]!], key),
      refund(order.orderId, [order.lineItemIds[0]!], key),
      refund(order.orderId, [order.lineItemIds[1]!], key),
    ]);
    const flows = answers.map((a) => a.data?.requestRefund?.flow.id).filter(Boolean);
    expect(new Set(flows).size).toBe(1);
    expect(flows).toHaveLength(2);
    expect(answers[2]!.errors?.[0]?.extensions?.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(standInState(cc, order).pspRefunds).toEqual([14_900]);
  }, 30_000);
});
