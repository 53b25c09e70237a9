import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { seedPaidOrder, standInState } from '../support/orders.js';
import { waitFor } from '../support/wait.js';

/**
 * Idempotency keys belong to the caller who sent them (and to the filter), as Stripe's belong to an
 * account: the same key from another caller starts that caller's own flow; it can neither read the
 * first caller's record nor block a key the first caller will use.
 */

let cc: CommerceCoordinator;

beforeAll(async () => {
  cc = await startCommerceCoordinator('trust-idempotency-scope');
});
afterAll(async () => {
  await cc?.stop();
});

const HISTORY = /* GraphQL */ `
  query ($key: String) {
    orderHistory(input: {}, idempotencyKey: $key) {
      history {
        orderNumber
      }
      flow {
        id
        status
        startedBy
      }
    }
  }
`;
interface History {
  orderHistory: {
    history: Array<{ orderNumber: string }>;
    flow: { id: string; status: string; startedBy: { username: string } };
  };
}

describe('an idempotency key', () => {
  it("sent by another learner gives that learner their own history, never the first learner's", async () => {
    const key = `history-${randomUUID()}`;
    const ada = await cc.graphql<History>(HISTORY, { key }, cc.tokens.ada);
    expect(ada.errors).toBeUndefined();
    const bob = await cc.graphql<History>(HISTORY, { key }, cc.tokens.bob);
    expect(bob.errors).toBeUndefined();

    expect(bob.data!.orderHistory.flow.id).not.toBe(ada.data!.orderHistory.flow.id);
    expect(bob.data!.orderHistory.flow.startedBy.username).toBe('bob');
    // The record of bob's run (read as staff) is bob's history, not ada's.
    const record = await cc.graphql<{ flow: { output: { username: string } } }>(
      'query ($id: ID!) { flow(id: $id) { output } }',
      { id: bob.data!.orderHistory.flow.id },
      cc.tokens.staff,
    );
    expect(record.data!.flow.output.username).toBe('bob');
    expect(JSON.stringify(bob.data)).not.toContain(DEMO.orders.adaStripe.orderNumber);
    // The same caller with the same key still gets its first run back.
    const again = await cc.graphql<History>(HISTORY, { key }, cc.tokens.ada);
    expect(again.data!.orderHistory.flow.id).toBe(ada.data!.orderHistory.flow.id);
  });

  it('used first by someone else does not block the LMS: its refund with that key runs', async () => {
    const order = seedPaidOrder(cc, 'STRIPE');
    const eventId = randomUUID();
    // The key the LMS's refund event will use (subgraphs/lms/event-consumer.ts), taken first by staff
    // for a refund of another line.
    const squatted = await cc.graphql(
      `mutation ($input: RefundRequestInput!, $key: String) { requestRefund(input: $input, idempotencyKey: $key) { flow { status } } }`,
      {
        input: { orderId: order.orderId, lineItemIds: [order.lineItemIds[1]!] },
        key: `lms-refund:${eventId}`,
      },
      cc.tokens.staff,
    );
    expect(squatted.errors).toBeUndefined();

    await cc.services.lms.emitRefundRequested({
      orderId: order.orderId,
      lineItemIds: [order.lineItemIds[0]!],
      username: order.learner.username,
      eventId,
    });
    // Both lines end refunded: the LMS's request ran as its own flow.
    await waitFor(() => standInState(cc, order).pspRefunds.length === 2, {
      timeoutMs: 15_000,
      what: "the LMS's refund to run",
    });
    expect(standInState(cc, order).pspRefunds.sort((x, y) => x - y)).toEqual([9_900, 14_900]);
  });
});
