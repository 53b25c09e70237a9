import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../services/demo.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { token } from '../support/coordinator.js';
import { waitFor } from '../support/wait.js';

// Two flows about learners rather than orders, end to end through the gateway:
// - sanctions: the order management Service's event (POST /order-management/sanctioned) publishes the
//   signal order.sanctioned.v1 for a sanctioned order; its receiver deactivates the learner in the LMS;
// - retirement: staff run retireLearner (filter user.retirement.requested.v1), which replaces the
//   learner's personal data in the order management Service with salted hashes.

let c: CommerceCoordinator;

beforeAll(async () => {
  c = await startCommerceCoordinator('flow-sanctions-retirement');
});
afterAll(async () => {
  await c?.stop();
});

let learners = 0;
let orderNumbers = 0;

/** A learner in the LMS with one order (sanctioned or not) in the order management Service. */
function seedLearnerWithOrder(options: { sanctioned: boolean }) {
  const lmsUserId = 7300 + ++learners;
  const learner = { lmsUserId, username: `sanct${lmsUserId}`, email: `sanct${lmsUserId}@example.com` };
  c.services.lms.seed({ users: [{ id: lmsUserId, username: learner.username, email: learner.email }] });
  const [order] = c.services.orderManagement.seed({
    orders: [
      {
        orderNumber: `2U-2028${String(++orderNumbers).padStart(6, '0')}`,
        customer: learner,
        sanctioned: options.sanctioned,
        lineItems: [{ title: 'Course', priceCents: 14_900, courseRunKey: DEMO.courses.cs50.courseId }],
      },
    ],
  }).orders;
  return { learner, order: order! };
}

// ---- sanctions -------------------------------------------------------------------------------------

const deactivatePath = (username: string) => `/api/user/v1/accounts/${username}/deactivate/`;
const deactivations = (username: string) => c.services.lms.calls(deactivatePath(username), 'POST');
const lmsUser = (username: string) => c.services.lms.state().users.find((u) => u.username === username)!;

interface SanctionedAnswer {
  status: number;
  body: { published?: boolean; duplicate?: boolean; state?: string; code?: string; message?: string };
}

/** The order management Service's OrderStateChanged event for an order. */
async function orderStateChanged(
  orderId: string,
  messageId: string = randomUUID(),
  bearer: string | null = c.tokens.orderManagement,
): Promise<SanctionedAnswer> {
  const res = await c.request('/order-management/sanctioned', {
    method: 'POST',
    ...(bearer ? { token: bearer } : {}),
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      id: messageId,
      'detail-type': 'OrderStateChanged',
      source: 'commercetools',
      detail: { id: randomUUID(), type: 'OrderStateChanged', resource: { typeId: 'order', id: orderId } },
    }),
  });
  return { status: res.status, body: (await res.json()) as SanctionedAnswer['body'] };
}

interface ReceiverRun {
  id: string;
  kind: string;
  name: string;
  receiver: string | null;
  status: string;
  input: Record<string, unknown>;
  steps: Array<{ action: string; status: string; implementation: string | null; output: unknown }>;
}
async function flowsOf(orderId: string): Promise<ReceiverRun[]> {
  const res = await c.graphql<{ flows: ReceiverRun[] }>(
    /* GraphQL */ `
      query ($orderId: String!) {
        flows(orderId: $orderId, limit: 200) {
          id
          kind
          name
          receiver
          status
          input
          steps {
            action
            status
            implementation
            output
          }
        }
      }
    `,
    { orderId },
    c.tokens.staff,
  );
  expect(res.errors).toBeUndefined();
  return res.data!.flows;
}

/** Waits until the order's receiver run completed, and answers every run about the order. */
async function completedRuns(orderId: string): Promise<ReceiverRun[]> {
  return waitFor(
    async () => {
      const runs = await flowsOf(orderId);
      expect(runs.map((r) => r.status)).toContain('COMPLETED');
      return runs;
    },
    { what: `the receiver run of order ${orderId}` },
  );
}

/**
 * Signals are delivered in the background: to show that something was NOT published, publish a
 * sanctioned order after it and wait until that one is handled.
 */
async function settleSignals() {
  const { learner, order } = seedLearnerWithOrder({ sanctioned: true });
  expect((await orderStateChanged(order.id)).body.published).toBe(true);
  await completedRuns(order.id);
  expect(lmsUser(learner.username).deactivated).toBe(true);
}

describe('sanctions: a sanctioned order deactivates its learner in the LMS', () => {
  it('deactivates the learner of the demo sanctioned order, once, as the receiver run records', async () => {
    const orderId = DEMO.orders.bobSanctioned.id;
    const { username } = DEMO.learners.bob;
    expect(lmsUser(username).deactivated).toBe(false);

    const answer = await orderStateChanged(orderId);

    expect(answer).toEqual({ status: 200, body: { published: true, duplicate: false } });
    const runs = await completedRuns(orderId);
    expect(lmsUser(username).deactivated).toBe(true);
    expect(deactivations(username)).toBe(1);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({
      kind: 'RECEIVER',
      name: 'order.sanctioned.v1',
      receiver: 'deactivate-sanctioned-learner',
      status: 'COMPLETED',
      input: { orderId, lmsUserId: DEMO.learners.bob.lmsUserId, username },
      steps: [
        {
          action: 'deactivateLearner',
          status: 'COMPLETED',
          implementation: 'lms',
          output: { deactivated: true },
        },
      ],
    });
  });

  it('the same message twice publishes once: one receiver run, one deactivation', async () => {
    const { learner, order } = seedLearnerWithOrder({ sanctioned: true });
    const messageId = randomUUID();

    const first = await orderStateChanged(order.id, messageId);
    const again = await Promise.all([
      orderStateChanged(order.id, messageId),
      orderStateChanged(order.id, messageId),
    ]);

    expect(first).toEqual({ status: 200, body: { published: true, duplicate: false } });
    for (const answer of again)
      expect(answer).toEqual({ status: 200, body: { published: true, duplicate: true } });
    await completedRuns(order.id);
    await settleSignals();
    expect(await flowsOf(order.id)).toHaveLength(1);
    expect(deactivations(learner.username)).toBe(1);
    expect(lmsUser(learner.username).deactivated).toBe(true);
  });

  it('publishes nothing for an order that is not sanctioned', async () => {
    const { learner, order } = seedLearnerWithOrder({ sanctioned: false });

    const answer = await orderStateChanged(order.id);

    expect(answer).toEqual({ status: 200, body: { published: false, state: 'COMPLETE' } });
    await settleSignals();
    expect(await flowsOf(order.id)).toEqual([]);
    expect(deactivations(learner.username)).toBe(0);
    expect(lmsUser(learner.username).deactivated).toBe(false);
  });

  it('answers 404 NOT_FOUND for an unknown order, and refuses callers that are not the Service', async () => {
    const unknown = randomUUID();
    expect(await orderStateChanged(unknown)).toMatchObject({ status: 404, body: { code: 'NOT_FOUND' } });

    const { learner, order } = seedLearnerWithOrder({ sanctioned: true });
    expect(await orderStateChanged(order.id, randomUUID(), null)).toMatchObject({
      status: 401,
      body: { code: 'UNAUTHENTICATED' },
    });
    expect(await orderStateChanged(order.id, randomUUID(), c.tokens.bob)).toMatchObject({
      status: 403,
      body: { code: 'FORBIDDEN' },
    });
    await settleSignals();
    expect(await flowsOf(unknown)).toEqual([]);
    expect(await flowsOf(order.id)).toEqual([]);
    expect(deactivations(learner.username)).toBe(0);
  });
});

// ---- retirement ------------------------------------------------------------------------------------

/** The reference's retired value: 'retired_user_' + sha256(salt + lower(value)). */
const retired = (value: string) =>
  `retired_user_${createHash('sha256')
    .update(c.services.env.RETIREMENT_SALT! + value.toLowerCase())
    .digest('hex')}`;

/** A customer with a name, and two orders holding copies of their email and username. */
function seedCustomer() {
  const lmsUserId = 7400 + ++learners;
  const person = {
    lmsUserId,
    username: `Retiree${lmsUserId}`,
    email: `Retiree.${lmsUserId}@Example.com`,
    firstName: 'Grace',
    lastName: 'Hopper',
  };
  const { orders, customers } = c.services.orderManagement.seed({
    customers: [person],
    orders: [1, 2].map(() => ({
      orderNumber: `2U-2028${String(++orderNumbers).padStart(6, '0')}`,
      customer: person,
      lineItems: [{ title: 'Course', priceCents: 4_900, courseRunKey: DEMO.courses.demo.courseId }],
    })),
  });
  return { person, customerId: customers[0]!.id, orderIds: orders.map((o) => o.id) };
}

const customerOf = (id: string) => c.services.orderManagement.store.customers.get(id)!;
const orderOf = (id: string) => c.services.orderManagement.store.orders.get(id)!;
/** What the order management stand-in holds about a person: customer and order copies. */
function personalData(seeded: ReturnType<typeof seedCustomer>) {
  const customer = customerOf(seeded.customerId);
  return {
    customer: {
      firstName: customer.firstName,
      lastName: customer.lastName,
      email: customer.email,
      username: customer.custom?.fields.lmsUsername,
      version: customer.version,
    },
    orders: seeded.orderIds.map((id) => ({
      email: orderOf(id).customerEmail,
      username: orderOf(id).custom?.fields.lmsUsername,
      version: orderOf(id).version,
    })),
  };
}

const RETIRE = /* GraphQL */ `
  mutation ($lmsUserId: Int!, $key: String) {
    retireLearner(input: { lmsUserId: $lmsUserId }, idempotencyKey: $key) {
      customersRetired
      flow {
        id
        status
        output
        error {
          code
          message
        }
        steps {
          action
          status
          implementation
          output
        }
      }
    }
  }
`;
interface RetireResult {
  retireLearner: {
    customersRetired: number | null;
    flow: {
      id: string;
      status: string;
      output: Record<string, unknown>;
      steps: Array<{ action: string; status: string; implementation: string; output: unknown }>;
    };
  };
}
const retire = (lmsUserId: number, bearer: string, key?: string) =>
  c.graphql<RetireResult>(RETIRE, { lmsUserId, key }, bearer);

describe('retirement: staff retire a learner', () => {
  it('replaces the name, email and username on the customer and every order with salted hashes', async () => {
    const seeded = seedCustomer();
    const bystander = seedCustomer();
    const bystanderBefore = personalData(bystander);
    const { person } = seeded;

    const res = await retire(person.lmsUserId, c.tokens.staff);

    expect(res.errors).toBeUndefined();
    expect(res.data!.retireLearner).toMatchObject({
      customersRetired: 1,
      flow: {
        status: 'COMPLETED',
        steps: [
          {
            action: 'anonymizeCustomer',
            status: 'COMPLETED',
            implementation: 'order-management',
            output: { customersRetired: 1 },
          },
        ],
      },
    });
    expect(personalData(seeded)).toEqual({
      customer: {
        firstName: retired('Grace'),
        lastName: retired('Hopper'),
        email: retired(person.email),
        username: retired(person.username),
        version: 2,
      },
      orders: [
        { email: retired(person.email), username: retired(person.username), version: 2 },
        { email: retired(person.email), username: retired(person.username), version: 2 },
      ],
    });
    // The salt is applied: the same value without it hashes differently.
    const unsalted = `retired_user_${createHash('sha256').update(person.email.toLowerCase()).digest('hex')}`;
    expect(customerOf(seeded.customerId).email).not.toBe(unsalted);
    // Nobody else's data changed.
    expect(personalData(bystander)).toEqual(bystanderBefore);
  });

  it('is idempotent: retiring again (a new request, or the same key) hashes nothing twice', async () => {
    const seeded = seedCustomer();
    const first = await retire(seeded.person.lmsUserId, c.tokens.staff, `retire-${seeded.person.lmsUserId}`);
    expect(first.data?.retireLearner.flow.status).toBe('COMPLETED');
    const after = personalData(seeded);
    expect(after.customer.email).toBe(retired(seeded.person.email));

    const again = await retire(seeded.person.lmsUserId, c.tokens.staff);
    const replay = await retire(seeded.person.lmsUserId, c.tokens.staff, `retire-${seeded.person.lmsUserId}`);

    expect(again.errors).toBeUndefined();
    expect(again.data!.retireLearner).toMatchObject({ flow: { status: 'COMPLETED' } });
    expect(again.data!.retireLearner.flow.id).not.toBe(first.data!.retireLearner.flow.id);
    expect(replay.data!.retireLearner.flow.id).toBe(first.data!.retireLearner.flow.id);
    // Same hashes, and not one more update of the customer or its orders.
    expect(personalData(seeded)).toEqual(after);
  });

  it('refuses a learner (FORBIDDEN), even for themselves, and changes nothing', async () => {
    const seeded = seedCustomer();
    const before = personalData(seeded);
    const self = await token({
      kind: 'learner',
      lmsUserId: seeded.person.lmsUserId,
      username: seeded.person.username,
    });

    for (const res of [
      await retire(seeded.person.lmsUserId, self),
      await retire(seeded.person.lmsUserId, c.tokens.ada),
    ]) {
      expect(res.data?.retireLearner ?? null).toBeNull();
      expect(res.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    }
    expect(personalData(seeded)).toEqual(before);
    expect(customerOf(seeded.customerId).email).toBe(seeded.person.email);
  });
});
