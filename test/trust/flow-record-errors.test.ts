import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';

/**
 * A learner reads the record of a flow they ran (a filter's `flow` field): its status and steps, and
 * why a step failed. What a Service or a Plugin said when it broke (its URL, its body, the Plugin that
 * called it) is internal, as it is in the response's own errors: a learner reads the failure's code,
 * never its text or details, unless it is a public domain error raised for them.
 */

let cc: CommerceCoordinator;
beforeAll(async () => {
  cc = await startCommerceCoordinator('trust-flow-record-errors');
});
afterAll(async () => {
  await cc?.stop();
});

const HISTORY = /* GraphQL */ `
  query ($input: OrderHistoryInput!) {
    orderHistory(input: $input) {
      count
      flow {
        id
        steps {
          action
          status
          error {
            code
            message
            details
          }
        }
      }
    }
  }
`;

interface StepRead {
  action: string;
  status: string;
  error: { code: string; message: string; details: unknown } | null;
}
interface HistoryAnswer {
  orderHistory: { count: number; flow: { id: string; steps: StepRead[] } } | null;
}

describe('a failed step on the record of a learner’s own flow', () => {
  it('shows the learner its code only; staff read the Service’s answer', async () => {
    // The legacy service breaks on both of the step's attempts: the step is skipped, the flow completes.
    cc.services.legacyEcommerce.failNext(2, 500, '/api/v2/orders/');

    const mine = await cc.graphql<HistoryAnswer>(HISTORY, { input: {} }, cc.tokens.ada);
    const legacy = mine.data!.orderHistory!.flow.steps.find((s) => s.action === 'legacyOrders')!;
    expect(legacy.status).toBe('SKIPPED');
    expect(legacy.error).toEqual({
      code: 'INTERNAL_SERVER_ERROR',
      message: 'A Service this flow called failed; the cause is on the record for staff',
      details: null,
    });

    const staff = await cc.graphql<{ flow: { steps: StepRead[] } }>(
      'query ($id: ID!) { flow(id: $id) { steps { action error { code message details } } } }',
      { id: mine.data!.orderHistory!.flow.id },
      cc.tokens.staff,
    );
    const recorded = staff.data!.flow.steps.find((s) => s.action === 'legacyOrders')!.error!;
    expect(recorded.message).toMatch(/legacy ecommerce answered 500/);
    expect(recorded.details).toMatchObject({ serviceName: 'legacy-ecommerce' });
  });
});
