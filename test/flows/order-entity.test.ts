import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';

// The federated Order entity: owned by the order-management Plugin, extended by the LMS Plugin
// (enrollments) and by the Coordinator (the Purchase Flows about the order). One query for a page of
// 50 orders costs one call per Service, not one per order. Its payment at the PSPs: order-payments.test.ts.

let c: CommerceCoordinator;

beforeAll(async () => {
  c = await startCommerceCoordinator('flow-order-entity');
});
afterAll(async () => {
  await c?.stop();
});

const PAGE = 50;
const ORDER_ENROLLMENTS = '/api/coordinator/v1/order-enrollments/';

/**
 * A learner with 50 orders of one course line each (50 course runs), seeded in the LMS and the order
 * management Service, then fulfilled through the gateway, so that each order has its enrollment in the
 * LMS and its fulfillment flow in the Coordinator.
 */
async function seedFulfilledOrders() {
  const learner = { lmsUserId: 7501, username: 'pagelearner', email: 'pagelearner@example.com' };
  const courses = Array.from({ length: PAGE }, (_, i) => `course-v1:edX+Page${i}+2026`);
  c.services.lms.seed({
    users: [{ id: learner.lmsUserId, username: learner.username, email: learner.email }],
    courses: courses.map((courseId) => ({ courseId, modes: ['audit', 'verified'] })),
  });
  const { orders } = c.services.orderManagement.seed({
    orders: courses.map((courseRunKey, i) => ({
      orderNumber: `2U-2029${String(i + 1).padStart(6, '0')}`,
      // One day apart, so the page's order (newest first) is known.
      createdAt: new Date(Date.UTC(2026, 0, 1 + i)).toISOString(),
      customer: learner,
      lineItems: [{ title: `Page course ${i}`, priceCents: 1_000, courseRunKey }],
    })),
  });
  for (let i = 0; i < orders.length; i += 10) {
    await Promise.all(
      orders.slice(i, i + 10).map(async (order) => {
        const res = await c.request('/order-management/fulfill', {
          method: 'POST',
          token: c.tokens.orderManagement,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ id: randomUUID(), detail: { id: order.id } }),
        });
        expect(await res.json()).toMatchObject({ status: 'COMPLETED' });
      }),
    );
  }
  return { learner, orders: orders.map((o, i) => ({ ...o, courseRunKey: courses[i]! })) };
}

const FLOWS = /* GraphQL */ `
  flows {
    name
    status
    steps {
      action
      status
    }
  }
`;

/** A learner's orders with fields of all three subgraphs (the Coordinator's flows when asked). */
const pageQuery = (withFlows: boolean) => /* GraphQL */ `
  query ($lmsUserId: Int!) {
    ordersForLearner(lmsUserId: $lmsUserId) {
      id
      orderNumber
      state
      lineItems {
        id
        courseRunKey
        state
      }
      enrollments {
        courseRunKey
        mode
        isActive
        lineItemId
      }
      ${withFlows ? FLOWS : ''}
    }
  }
`;

interface PageOrder {
  id: string;
  orderNumber: string;
  state: string;
  lineItems: Array<{ id: string; courseRunKey: string; state: string }>;
  enrollments: Array<{ courseRunKey: string; mode: string; isActive: boolean; lineItemId: string }>;
  flows: Array<{ name: string; status: string; steps: Array<{ action: string; status: string }> }>;
}

describe('the federated Order entity', () => {
  it('reads a page of 50 orders with their enrollments and flows in one call per Service', async () => {
    const { learner, orders } = await seedFulfilledOrders();
    const om = c.services.orderManagement;
    const ordersPath = `/${om.projectKey}/orders`;
    const before = {
      orderQueries: om.calls('GET', ordersPath),
      orderReads: orders.reduce((sum, o) => sum + om.calls('GET', `${ordersPath}/${o.id}`), 0),
      lms: c.services.lms.calls(),
      enrollmentReads: c.services.lms.calls(ORDER_ENROLLMENTS),
    };

    const res = await c.graphql<{ ordersForLearner: PageOrder[] }>(
      pageQuery(true),
      { lmsUserId: learner.lmsUserId },
      c.tokens.staff,
    );

    expect(res.errors).toBeUndefined();
    const page = res.data!.ordersForLearner;
    expect(page).toHaveLength(PAGE);
    // Newest first.
    expect(page.map((o) => o.id)).toEqual(orders.map((o) => o.id).reverse());
    for (const entry of page) {
      const seeded = orders.find((o) => o.id === entry.id)!;
      const lineId = seeded.lineItems[0]!.id;
      // The fulfillment's flow; the receivers of its signals (the learner's emails) run on their own time.
      const flows = entry.flows?.filter((f) => f.name === 'order.fulfillment.requested.v1');
      expect({ ...entry, flows }).toEqual({
        id: seeded.id,
        orderNumber: seeded.orderNumber,
        state: 'COMPLETE',
        lineItems: [{ id: lineId, courseRunKey: seeded.courseRunKey, state: 'SUCCESS' }],
        enrollments: [
          { courseRunKey: seeded.courseRunKey, mode: 'verified', isActive: true, lineItemId: lineId },
        ],
        flows: [
          {
            name: 'order.fulfillment.requested.v1',
            status: 'COMPLETED',
            steps: [
              { action: 'startFulfillment', status: 'COMPLETED' },
              { action: 'fulfillOrder', status: 'COMPLETED' },
              { action: 'completeFulfillment', status: 'COMPLETED' },
            ],
          },
        ],
      });
    }

    // The order management Service: the one query of the page, and no read of any order by id.
    expect(om.calls('GET', ordersPath) - before.orderQueries).toBe(1);
    expect(orders.reduce((sum, o) => sum + om.calls('GET', `${ordersPath}/${o.id}`), 0)).toBe(
      before.orderReads,
    );
    // The LMS: one read of the 50 orders' enrollments, and nothing else.
    expect(c.services.lms.calls(ORDER_ENROLLMENTS) - before.enrollmentReads).toBe(1);
    expect(c.services.lms.calls() - before.lms).toBe(1);
  });

  it('keeps the flows of an order to staff and Services: a learner reads their orders without them', async () => {
    const { ada } = DEMO.learners;
    const withFlows = await c.graphql<{ ordersForLearner: PageOrder[] | null }>(
      pageQuery(true),
      { lmsUserId: ada.lmsUserId },
      c.tokens.ada,
    );
    expect(withFlows.errors?.map((e) => e.extensions?.code)).toContain('FORBIDDEN');
    expect(withFlows.data?.ordersForLearner ?? null).toBeNull();

    const withoutFlows = await c.graphql<{ ordersForLearner: PageOrder[] }>(
      pageQuery(false),
      { lmsUserId: ada.lmsUserId },
      c.tokens.ada,
    );
    expect(withoutFlows.errors).toBeUndefined();
    // Ada's three demo orders, newest first.
    expect(withoutFlows.data!.ordersForLearner.map((o) => o.orderNumber)).toEqual([
      DEMO.orders.adaUnpaid.orderNumber,
      DEMO.orders.adaPayPal.orderNumber,
      DEMO.orders.adaStripe.orderNumber,
    ]);
  });
});
