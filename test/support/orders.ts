import { randomUUID } from 'node:crypto';
import { DEMO } from '../../services/demo.js';
import { LINE_ITEM_STATE_KEYS } from '../../services/order-management/server.js';
import type { CommerceCoordinator } from './commerce.js';

/**
 * Orders of a test's own, consistent across the Service stand-ins of a commerce Coordinator: the
 * payment at its PSP, the order (with its Charge) in order management, an active enrollment per line
 * in the LMS; and readers of what the stand-ins hold about them.
 */

export type Psp = 'STRIPE' | 'PAYPAL';
export type DemoLearner = keyof typeof DEMO.learners;

export interface PaidOrder {
  orderId: string;
  orderNumber: string;
  psp: Psp;
  pspPaymentId: string;
  learner: (typeof DEMO.learners)[DemoLearner];
  lineItemIds: string[];
  courseRunKeys: string[];
  paidCents: number;
}

let seq = 0;

/** An order paid at `psp`, every line fulfilled; course runs of its own, so no test sees another's. */
export function seedPaidOrder(
  cc: Pick<CommerceCoordinator, 'services'>,
  psp: Psp,
  options: { learner?: DemoLearner; prices?: number[]; paidCents?: number } = {},
): PaidOrder {
  const n = ++seq;
  const learner = DEMO.learners[options.learner ?? 'ada'];
  const prices = options.prices ?? [14_900, 9_900];
  const paidCents = options.paidCents ?? prices.reduce((sum, p) => sum + p, 0);
  const orderNumber = `2U-2026${String(700_000 + n)}`;
  const courseRunKeys = prices.map((_, i) => `course-v1:TrustX+T${process.pid}N${n}L${i}+2026`);
  const { services } = cc;
  services.lms.seed({
    courses: courseRunKeys.map((courseId) => ({ courseId, name: `Course ${courseId}` })),
    enrollments: courseRunKeys.map((courseId) => ({
      username: learner.username,
      courseId,
      mode: 'verified',
      isActive: true,
    })),
  });
  const pspPaymentId =
    psp === 'STRIPE'
      ? services.stripe.createPaymentIntent({ amount: paidCents, metadata: { order_number: orderNumber } }).id
      : services.paypal.createCapture({ amountCents: paidCents, invoiceId: orderNumber }).id;
  const [order] = services.orderManagement.seed({
    orders: [
      {
        orderNumber,
        customer: { lmsUserId: learner.lmsUserId, username: learner.username, email: learner.email },
        lineItems: prices.map((priceCents, i) => ({
          title: `Course ${i}`,
          priceCents,
          courseRunKey: courseRunKeys[i],
          state: 'SUCCESS' as const,
        })),
        payment: { psp, pspPaymentId, amountCents: paidCents },
      },
    ],
  }).orders;
  return {
    orderId: order!.id,
    orderNumber,
    psp,
    pspPaymentId,
    learner,
    lineItemIds: order!.lineItems.map((l) => l.id),
    courseRunKeys,
    paidCents,
  };
}

/** What the stand-ins hold about `order`. */
export function standInState(cc: Pick<CommerceCoordinator, 'services'>, order: PaidOrder) {
  const stored = cc.services.orderManagement.store.orders.get(order.orderId)!;
  const payment = cc.services.orderManagement.store.payments.get(stored.paymentInfo!.payments[0]!.id)!;
  return {
    returns: stored.returnInfo,
    returnItems: stored.returnInfo.flatMap((r) => r.items),
    refundTransactions: payment.transactions.filter((t) => t.type === 'Refund'),
    /** The PSP's refunds of the payment, as cents. */
    pspRefunds:
      order.psp === 'STRIPE'
        ? cc.services.stripe.refunds(order.pspPaymentId).map((r) => r.amount as number)
        : cc.services.paypal
            .refunds(order.pspPaymentId)
            .map((r) => Math.round(Number((r.amount as { value: string }).value) * 100)),
    /** Whether the learner's enrollment in each line's course run is active. */
    enrolled: order.courseRunKeys.map(
      (courseId) =>
        cc.services.lms
          .state()
          .enrollments.find((e) => e.username === order.learner.username && e.courseId === courseId)
          ?.isActive ?? false,
    ),
  };
}

/** The flow records of an order, as staff reads them. */
export async function flowsOfOrder(
  cc: CommerceCoordinator,
  orderId: string,
): Promise<Array<{ id: string; name: string; status: string; startedBy: { kind: string } | null }>> {
  const result = await cc.graphql<{
    flows: Array<{ id: string; name: string; status: string; startedBy: { kind: string } | null }>;
  }>(
    'query ($orderId: String) { flows(orderId: $orderId, limit: 50) { id name status startedBy } }',
    { orderId },
    cc.tokens.staff,
  );
  if (result.errors) throw new Error(`flows of ${orderId}: ${JSON.stringify(result.errors)}`);
  return result.data!.flows;
}

/**
 * Makes an order seeded in the order management stand-in one a mobile store paid, as the create-order
 * flow writes it: its payment the store's (method, interface), keyed by the store's transaction id.
 */
export function paidByStore(
  cc: Pick<CommerceCoordinator, 'services'>,
  seeded: { order: { id: string }; payment: { id: string } },
  store: 'ios' | 'android',
  transactionId: string,
) {
  const { store: stored } = cc.services.orderManagement;
  const order = stored.orders.get(seeded.order.id)!;
  const payment = stored.payments.get(seeded.payment.id)!;
  const method = store === 'ios' ? 'ios_iap' : 'android_iap';
  payment.paymentMethodInfo = { method, paymentInterface: `${method}_edx` };
  payment.interfaceId = transactionId;
  payment.key = transactionId.replace(/[^A-Za-z0-9_-]/g, '_');
  order.custom!.fields.mobileOrder = true;
  return { order, payment };
}

const REQUEST_REFUND_ANSWER = /* GraphQL */ `
  mutation ($input: RefundRequestInput!, $key: String) {
    requestRefund(input: $input, idempotencyKey: $key) {
      refundAmountCents
      refundStatus
      pspRefundId
      alreadyRefunded
      flow {
        id
        status
      }
    }
  }
`;

/** What `requestRefund` answers: the refund and the flow's status (the money tests' view of it). */
export interface RefundAnswer {
  requestRefund: {
    refundAmountCents: number | null;
    refundStatus: string | null;
    pspRefundId: string | null;
    alreadyRefunded: boolean | null;
    flow: { id: string; status: string };
  } | null;
}

/** A refund of `lineItemIds` asked for by staff (or `bearer`), under a new idempotency key unless `key` is given. */
export const requestRefund = (
  cc: Pick<CommerceCoordinator, 'graphql' | 'tokens'>,
  orderId: string,
  lineItemIds: string[],
  { key = randomUUID(), bearer = cc.tokens.staff }: { key?: string; bearer?: string } = {},
) => cc.graphql<RefundAnswer>(REQUEST_REFUND_ANSWER, { input: { orderId, lineItemIds }, key }, bearer);

/**
 * The order management Service's order-placed event (its lines moved to Pending), as its subscription
 * delivers it to `POST /order-management/fulfill`; the route runs the fulfillment flow before it answers.
 */
export async function announceOrderPlaced(
  cc: Pick<CommerceCoordinator, 'request' | 'tokens'>,
  orderId: string,
): Promise<{ status: number; body: { flowId: string; status: string } }> {
  const res = await cc.request('/order-management/fulfill', {
    method: 'POST',
    token: cc.tokens.orderManagement,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      id: randomUUID(),
      'detail-type': 'LineItemStateTransition',
      detail: {
        id: randomUUID(),
        resource: { typeId: 'order', id: orderId },
        toState: { typeId: 'state', key: LINE_ITEM_STATE_KEYS.PENDING },
      },
    }),
  });
  return { status: res.status, body: (await res.json()) as { flowId: string; status: string } };
}
