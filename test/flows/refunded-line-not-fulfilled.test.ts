import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';

/**
 * A line whose enrollment failed (FAILURE) is refunded — the learner has the money back — and the
 * order management Service then announces the order again (a new message retries failed lines, as the
 * fulfillment flow documents). The refunded line must not be enrolled: the learner would have the
 * course and the refund.
 */

let cc: CommerceCoordinator;
beforeAll(async () => {
  cc = await startCommerceCoordinator('flows-refunded-line-not-fulfilled');
});
afterAll(async () => {
  await cc?.stop();
});

describe('a refunded line, then a new fulfillment message for its order', () => {
  it('is not enrolled again', async () => {
    const ada = DEMO.learners.ada;
    const orderNumber = `2U-2026${String(790_000 + (process.pid % 1000))}`;
    const courseIds = [
      `course-v1:RefundX+RF${process.pid}A+2026`,
      `course-v1:RefundX+RF${process.pid}B+2026`,
    ];
    cc.services.lms.seed({
      courses: courseIds.map((courseId) => ({ courseId, name: courseId })),
      enrollments: [{ username: ada.username, courseId: courseIds[0]!, mode: 'verified', isActive: true }],
    });
    const intent = cc.services.stripe.createPaymentIntent({
      amount: 29_800,
      metadata: { order_number: orderNumber },
    });
    const [order] = cc.services.orderManagement.seed({
      orders: [
        {
          orderNumber,
          customer: { lmsUserId: ada.lmsUserId, username: ada.username, email: ada.email },
          lineItems: [
            { title: 'Enrolled', priceCents: 14_900, courseRunKey: courseIds[0], state: 'SUCCESS' },
            // The LMS refused this one at fulfillment.
            { title: 'Refused', priceCents: 14_900, courseRunKey: courseIds[1], state: 'FAILURE' },
          ],
          payment: { psp: 'STRIPE', pspPaymentId: intent.id, amountCents: 29_800 },
        },
      ],
    }).orders;
    const failedLine = order!.lineItems[1]!.id;

    // Staff refunds the line the learner never got.
    const refund = await cc.graphql<{
      requestRefund: { refundAmountCents: number; flow: { status: string } };
    }>(
      `mutation ($input: RefundRequestInput!) { requestRefund(input: $input) { refundAmountCents flow { status } } }`,
      { input: { orderId: order!.id, lineItemIds: [failedLine] } },
      cc.tokens.staff,
    );
    expect(refund.data?.requestRefund).toMatchObject({
      refundAmountCents: 14_900,
      flow: { status: 'COMPLETED' },
    });
    expect(cc.services.stripe.refunds(intent.id).map((r) => r.amount)).toEqual([14_900]);

    // The order management Service announces the order again (a new message for its failed lines).
    const res = await cc.request('/order-management/fulfill', {
      method: 'POST',
      token: cc.tokens.orderManagement,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: randomUUID(), detail: { id: order!.id } }),
    });
    expect(res.status).toBe(200);

    // The route runs the fulfillment flow before it answers.
    expect(await res.json()).toMatchObject({ status: 'COMPLETED' });
    const enrolled = cc.services.lms
      .state()
      .enrollments.find((e) => e.username === ada.username && e.courseId === courseIds[1]);
    expect(enrolled?.isActive ?? false, 'refunded line enrolled after its refund').toBe(false);
  });
});
