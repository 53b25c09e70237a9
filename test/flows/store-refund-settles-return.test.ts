import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { paidByStore } from '../support/orders.js';
import { waitFor } from '../support/wait.js';

/**
 * A staff refund of a mobile-paid order is answered `awaiting_store_refund` and leaves its return
 * Initial: the store refunds the purchase, not the Coordinator. The store's refund notification (an
 * Apple REFUND at POST /iap/ios/refund/, a Google Play voided purchase at POST /iap/android/refund/ →
 * mobile.payment.refunded.v1 → recordMobileRefund) then settles that return: Refunded, against the
 * Refund transaction it recorded. Whichever comes first, and however often the notification is
 * delivered, the return ends Refunded against the one Refund transaction of the payment.
 */

let cc: CommerceCoordinator;

beforeAll(async () => {
  cc = await startCommerceCoordinator('store-refund-settles-return');
});
afterAll(async () => {
  await cc?.stop();
});

const REFUND = /* GraphQL */ `
  mutation ($input: RefundRequestInput!, $key: String) {
    requestRefund(input: $input, idempotencyKey: $key) {
      refundStatus
      transactionId
      flow {
        status
      }
    }
  }
`;
type RefundAnswer = {
  requestRefund: { refundStatus: string; transactionId: string | null; flow: { status: string } };
};
const refund = (orderId: string, lineItemIds: string[]) =>
  cc.graphql<RefundAnswer>(REFUND, { input: { orderId, lineItemIds }, key: randomUUID() }, cc.tokens.staff);

type Store = 'ios' | 'android';
interface MobileOrder {
  orderId: string;
  paymentId: string;
  lineItemIds: string[];
  /** Apple's transactionId, Google's orderId: the refund's id too. */
  transactionId: string;
  purchaseToken: string;
}

let seq = 0;
/** A mobile-paid (App Store or Google Play) fulfilled order of Ada's, as the create-order flow writes it. */
function mobileOrder(store: Store, lines = 1): MobileOrder {
  const n = ++seq;
  const ada = DEMO.learners.ada;
  const transactionId =
    store === 'ios' ? `${2_000_000_800_000 + process.pid * 10 + n}` : `GPA.3391-${process.pid}-5621-${n}0123`;
  const courseRunKeys = Array.from(
    { length: lines },
    (_, i) => `course-v1:SettleX+M${process.pid}N${n}L${i}+2026`,
  );
  cc.services.lms.seed({
    courses: courseRunKeys.map((courseId) => ({ courseId })),
    enrollments: courseRunKeys.map((courseId) => ({
      username: ada.username,
      courseId,
      mode: 'verified',
      isActive: true,
    })),
  });
  const { orders, payments } = cc.services.orderManagement.seed({
    orders: [
      {
        orderNumber: `2U-2026${String(700_000 + n)}`,
        customer: { lmsUserId: ada.lmsUserId, username: ada.username, email: ada.email },
        lineItems: courseRunKeys.map((courseRunKey, i) => ({
          title: `Mobile course ${n}.${i}`,
          priceCents: 4_999,
          courseRunKey,
          state: 'SUCCESS' as const,
        })),
        payment: { psp: 'STRIPE', pspPaymentId: transactionId },
      },
    ],
  });
  const { order, payment } = paidByStore(
    cc,
    { order: orders[0]!, payment: payments[0]! },
    store,
    transactionId,
  );
  const purchaseToken = `token-${randomUUID()}`;
  if (store === 'ios')
    cc.services.appStore.seed({
      transactions: [{ transactionId, productId: 'mobile.ios.usd49', price: 49_990 * lines }],
    });
  else
    cc.services.googlePlay.seed({
      purchases: [{ purchaseToken, orderId: transactionId, productId: 'mobile.android.usd49' }],
    });
  return {
    orderId: order.id,
    paymentId: payment.id,
    lineItemIds: order.lineItems.map((l) => l.id),
    transactionId,
    purchaseToken,
  };
}

const returnItems = (o: MobileOrder) =>
  cc.services.orderManagement.store.orders.get(o.orderId)!.returnInfo.flatMap((r) => r.items);
const settled = (o: MobileOrder) =>
  returnItems(o).map((i) => [i.lineItemId, i.paymentState, i.custom?.fields.transactionId ?? null]);
const refunds = (o: MobileOrder) =>
  cc.services.orderManagement.store.payments
    .get(o.paymentId)!
    .transactions.filter((t) => t.type === 'Refund');

/** The store refunds the purchase and notifies the Coordinator (Apple's REFUND, Google's voided purchase). */
async function storeRefunds(store: Store, o: MobileOrder) {
  if (store === 'ios') return (await cc.services.appStore.refund(o.transactionId)).signedPayload;
  return (
    await cc.services.googlePlay.voidPurchase({ purchaseToken: o.purchaseToken, orderId: o.transactionId })
  ).body;
}
/** The store delivers its notification once more (Apple's retry, Pub/Sub's redelivery). */
async function redeliver(store: Store, notification: string) {
  const delivery =
    store === 'ios'
      ? await cc.services.appStore.deliver(notification)
      : await cc.services.googlePlay.push(notification);
  expect(delivery.status).toBe(200);
}

interface Run {
  status: string;
  input: Record<string, unknown>;
  output: Record<string, unknown> | null;
}
/** Waits for `count` runs of recordMobileRefund for the refund `refundId`, all completed. */
const recordedRuns = (refundId: string, count = 1) =>
  waitFor(
    async () => {
      const result = await cc.graphql<{ flows: Run[] }>(
        `query { flows(name: "mobile.payment.refunded.v1", limit: 200) { status input output } }`,
        {},
        cc.tokens.staff,
      );
      expect(result.errors).toBeUndefined();
      const runs = result.data!.flows.filter((f) => f.input.refundId === refundId);
      expect(runs.map((r) => r.status)).toEqual(Array(count).fill('COMPLETED'));
      return runs;
    },
    { what: `${count} run(s) of record-mobile-refund for ${refundId} completed`, timeoutMs: 15_000 },
  );

describe.each<[Store, string]>([
  ['ios', "Apple's REFUND notification"],
  ['android', "Google Play's voided purchase"],
])('a staff refund of a %s order, then the store refund', (store, notification) => {
  it(`the return awaiting the store refund is settled by ${notification} (Refunded, with its transaction), once`, async () => {
    const o = mobileOrder(store);
    const asked = await refund(o.orderId, o.lineItemIds);
    expect(asked.errors).toBeUndefined();
    expect(asked.data!.requestRefund).toMatchObject({
      refundStatus: 'awaiting_store_refund',
      transactionId: null,
      flow: { status: 'HALTED' },
    });
    expect(settled(o)).toEqual([[o.lineItemIds[0], 'Initial', null]]);

    const sent = await storeRefunds(store, o);
    const [run] = await recordedRuns(o.transactionId);
    expect(refunds(o)).toHaveLength(1);
    const transactionId = refunds(o)[0]!.id;
    expect(run!.output).toMatchObject({ recorded: true, transactionId, linkedReturnItems: 1 });
    expect(settled(o)).toEqual([[o.lineItemIds[0], 'Refunded', transactionId]]);

    // Delivered again: nothing recorded or settled twice.
    await redeliver(store, sent);
    await expect.poll(() => refunds(o).length).toBe(1);
    expect(settled(o)).toEqual([[o.lineItemIds[0], 'Refunded', transactionId]]);
  }, 30_000);
});

describe('the store refund and the staff refund in either order', () => {
  it('the notification first: the staff refund that follows is refunded by the store at once', async () => {
    const o = mobileOrder('ios');
    await storeRefunds('ios', o);
    await recordedRuns(o.transactionId);
    const transactionId = refunds(o)[0]!.id;

    const asked = await refund(o.orderId, o.lineItemIds);
    expect(asked.errors).toBeUndefined();
    expect(asked.data!.requestRefund).toMatchObject({ refundStatus: 'refunded_by_store', transactionId });
    expect(settled(o)).toEqual([[o.lineItemIds[0], 'Refunded', transactionId]]);
  }, 30_000);

  it('at the same moment: the return ends Refunded against the one store refund', async () => {
    const o = mobileOrder('ios');
    const [asked] = await Promise.all([refund(o.orderId, o.lineItemIds), storeRefunds('ios', o)]);
    expect(asked.errors).toBeUndefined();
    await recordedRuns(o.transactionId);
    expect(refunds(o)).toHaveLength(1);
    expect(settled(o)).toEqual([[o.lineItemIds[0], 'Refunded', refunds(o)[0]!.id]]);
  }, 30_000);

  it('two staff refunds of two lines awaiting it: the store refund settles both', async () => {
    const o = mobileOrder('ios', 2);
    for (const line of o.lineItemIds) {
      const asked = await refund(o.orderId, [line]);
      expect(asked.data!.requestRefund.refundStatus).toBe('awaiting_store_refund');
    }
    await storeRefunds('ios', o);
    await recordedRuns(o.transactionId);
    const transactionId = refunds(o)[0]!.id;
    expect(settled(o)).toEqual(o.lineItemIds.map((id) => [id, 'Refunded', transactionId]));
  }, 30_000);
});
