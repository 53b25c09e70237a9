import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';

/**
 * PostgreSQL's text holds no NUL character (nor an unpaired surrogate): an argument with one that
 * reaches a query, or the operator log, fails in the database. Every argument the Coordinator's own
 * API stores or searches by is refused first, with BAD_USER_INPUT naming it, never an internal error.
 */

let cc: CommerceCoordinator;
beforeAll(async () => {
  cc = await startCommerceCoordinator('trust-unstorable-arguments');
});
afterAll(async () => {
  await cc?.stop();
});

const NUL = 'a\u0000b';

describe('an argument with a NUL character', () => {
  it.each([
    ['flows(orderId)', 'query ($v: String) { flows(orderId: $v) { id } }', 'orderId'],
    ['flows(learner)', 'query ($v: String) { flows(learner: $v) { id } }', 'learner'],
    ['flows(name)', 'query ($v: String) { flows(name: $v) { id } }', 'name'],
    ['deadLetters(receiver)', 'query ($v: String) { deadLetters(receiver: $v) { id } }', 'receiver'],
    ['deadLetters(signal)', 'query ($v: String) { deadLetters(signal: $v) { id } }', 'signal'],
    [
      'replayDeadLetters(signal)',
      'mutation ($v: String) { replayDeadLetters(signal: $v, reason: "probe") }',
      'signal',
    ],
    [
      'replayDeadLetters(receiver)',
      'mutation ($v: String) { replayDeadLetters(receiver: $v, reason: "probe") }',
      'receiver',
    ],
    [
      'replayDeadLetters(ids)',
      'mutation ($v: ID!) { replayDeadLetters(receiver: "revoke-returned-line-items", ids: [$v], reason: "probe") }',
      'ids',
    ],
    [
      'redeliverSignal(receiver)',
      'mutation ($v: String!) { redeliverSignal(signalId: "00000000-0000-4000-8000-000000000000", receiver: $v, reason: "probe") }',
      'receiver',
    ],
  ])('%s is BAD_USER_INPUT, naming it', async (_, query, argument) => {
    const res = await cc.graphql(query, { v: NUL }, cc.tokens.staff);
    expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(res.errors?.[0]?.message).toBe(`${argument} holds a NUL character or an unpaired surrogate`);
  });
});
