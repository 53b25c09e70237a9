import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { REQUEST_REFUND, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { waitFor } from '../support/wait.js';

/**
 * Dead letter ids are an operator's input, handed to Redis as stream ids. One Redis refuses (a part
 * past 64 bits) failed the whole replay with INTERNAL_SERVER_ERROR; it names no dead letter, as any
 * other id that is not a stream id does.
 */

let t: TestCoordinator;
beforeAll(async () => {
  t = await startTestCoordinator('trust-dead-letter-ids');
}, 120_000);
afterAll(async () => {
  await t?.stop();
});

const REPLAY = 'mutation ($ids: [ID!]!) { replayDeadLetters(ids: $ids, reason: "operator test") }';

describe('a replay naming dead letters by ids Redis cannot read', () => {
  it('replays none of them, and answers without an error', async () => {
    for (const entry of [
      '18446744073709551616-0',
      '0-18446744073709551616',
      '99999999999999999999999-0',
      `${'9'.repeat(200)}-1`,
      '18446744073709551615-18446744073709551615',
    ]) {
      const answer = await t.graphql(REPLAY, { ids: [`revoke-enrollment/${entry}`] });
      expect(answer, entry).toEqual({ data: { replayDeadLetters: 0 } });
    }
  });

  it('still replays the readable ids beside them', async () => {
    // A refund whose order.refunded.v1 its receiver (revoke-enrollment: 3 attempts) fails for good.
    const orderId = `dead-letter-ids-${randomUUID()}`;
    t.ledger.fault({ kind: 'revoke', orderId, status: 503, times: 3 });
    const refund = await t.graphql(REQUEST_REFUND, { input: { amount: 10, learnerId: 'l-1', orderId } });
    expect(refund.errors).toBeUndefined();
    const letter = await waitFor(
      async () => {
        const { data } = await t.graphql<{
          deadLetters: Array<{ id: string; payload: { orderId: string } }>;
        }>('query { deadLetters(receiver: "revoke-enrollment") { id payload } }');
        return data?.deadLetters.find((d) => d.payload.orderId === orderId) ?? false;
      },
      { what: 'the signal to be dead-lettered' },
    );
    const answer = await t.graphql(REPLAY, { ids: [letter.id, 'revoke-enrollment/18446744073709551616-0'] });
    expect(answer).toEqual({ data: { replayDeadLetters: 1 } });
    await waitFor(() => t.ledger.operations().some((o) => o.kind === 'revoke' && o.orderId === orderId), {
      what: 'the replayed signal to reach its receiver',
    });
  });
});
