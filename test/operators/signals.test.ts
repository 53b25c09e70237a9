import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { adminRedis, machineRedisUrl } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import {
  OPERATOR,
  codeOf,
  learnerToken,
  newOrder,
  operatorActions,
  operatorToken,
  refund,
} from './support.js';

/**
 * Dead letters across receivers, their replay by signal and by id, a signal with its receivers'
 * runs, the redelivery of one signal to one receiver, and the flows of a learner or a time window —
 * through the Coordinator's GraphQL API, on the Redis bus.
 */

let t: TestCoordinator;

beforeAll(async () => {
  t = await startTestCoordinator('operators-signals', { authenticated: true });
});
afterAll(async () => {
  await t?.stop();
});

const ask = async <T>(query: string, variables?: Record<string, unknown>, bearer?: string) =>
  t.graphql<T>(query, variables, { token: bearer ?? (await operatorToken()) });

interface DeadLetter {
  id: string;
  receiver: string;
  signalId: string;
  signal: string;
  attempts: number;
  replayable: boolean;
  error: { code: string };
}
const DEAD_LETTERS = `query ($receiver: String, $signal: String) {
  deadLetters(receiver: $receiver, signal: $signal) { id receiver signalId signal attempts replayable error { code } }
}`;
const deadLetters = async (args: { receiver?: string; signal?: string } = {}) => {
  const { data, errors } = await ask<{ deadLetters: DeadLetter[] }>(DEAD_LETTERS, args);
  if (errors) throw new Error(JSON.stringify(errors));
  return data!.deadLetters;
};

const REPLAY = `mutation ($receiver: String, $signal: String, $ids: [ID!], $reason: String!) {
  replayDeadLetters(receiver: $receiver, signal: $signal, ids: $ids, reason: $reason)
}`;
const REDELIVER = `mutation ($id: ID!, $receiver: String!, $reason: String!) {
  redeliverSignal(signalId: $id, receiver: $receiver, reason: $reason)
}`;

const SIGNAL = `query ($id: ID!) {
  signal(id: $id) {
    id name payload source flowId createdAt publishedAt
    receivers { receiver run { id status attempt } deadLetter { id attempts } }
  }
}`;
interface Signal {
  id: string;
  name: string;
  payload: Record<string, unknown>;
  source: string;
  flowId: string | null;
  publishedAt: string | null;
  receivers: Array<{
    receiver: string;
    run: { id: string; status: string; attempt: number } | null;
    deadLetter: { id: string; attempts: number } | null;
  }>;
}
const signalOf = async (id: string) => (await ask<{ signal: Signal }>(SIGNAL, { id })).data!.signal;

/**
 * A completed refund whose order.refunded.v1 its receiver (revoke-enrollment: 3 attempts) fails for
 * good: the ledger refuses the revocation three times.
 */
async function deadLetteredRefund() {
  const orderId = newOrder('signals');
  t.ledger.fault({ kind: 'revoke', orderId, status: 503, times: 3 });
  const { data } = await refund(t, orderId);
  const flowId = data!.requestRefund.flow.id;
  const prisma = t.coordinator.components.database.prisma;
  const signal = await prisma.outboxSignal.findFirstOrThrow({ where: { flowId, name: 'order.refunded.v1' } });
  const letter = await waitFor(
    async () =>
      (await deadLetters({ receiver: 'revoke-enrollment' })).find((d) => d.signalId === signal.id) ?? false,
    { what: 'the signal to be dead-lettered' },
  );
  return { orderId, flowId, signalId: signal.id, letter };
}

const revocationsOf = (orderId: string) =>
  t.ledger.operations().filter((op) => op.kind === 'revoke' && op.orderId === orderId);

describe('dead letters and signals for operators', () => {
  it('lists dead letters across receivers and by signal, and replays them by id and by signal', async () => {
    const first = await deadLetteredRefund();
    const second = await deadLetteredRefund();

    const all = await deadLetters();
    expect(all.filter((d) => [first.signalId, second.signalId].includes(d.signalId))).toEqual([
      // Newest first, named <receiver>/<entry>.
      expect.objectContaining({ signalId: second.signalId, receiver: 'revoke-enrollment', attempts: 3 }),
      expect.objectContaining({ signalId: first.signalId, signal: 'order.refunded.v1', replayable: true }),
    ]);
    expect(first.letter.id).toMatch(/^revoke-enrollment\/\d+-\d+$/);
    expect((await deadLetters({ signal: 'payment.refunded.v1' })).map((d) => d.signalId)).not.toContain(
      first.signalId,
    );

    const byId = await ask<{ replayDeadLetters: number }>(REPLAY, {
      ids: [first.letter.id],
      reason: 'LMS is back',
    });
    expect(byId.data?.replayDeadLetters).toBe(1);
    await waitFor(() => expect(revocationsOf(first.orderId)).toHaveLength(1), {
      what: 'the replayed revocation',
    });
    expect(revocationsOf(second.orderId)).toHaveLength(0);

    const bySignal = await ask<{ replayDeadLetters: number }>(REPLAY, {
      signal: 'order.refunded.v1',
      reason: 'LMS is back, all of them',
    });
    expect(bySignal.data?.replayDeadLetters).toBeGreaterThanOrEqual(1);
    await waitFor(() => expect(revocationsOf(second.orderId)).toHaveLength(1));
    expect((await deadLetters({ signal: 'order.refunded.v1' })).map((d) => d.signalId)).toEqual([]);
    const [latest, earlier] = await operatorActions(t);
    expect([latest, earlier]).toMatchObject([
      { action: 'REPLAY_DEAD_LETTERS', target: 'signal:order.refunded.v1', status: 'DONE', actor: OPERATOR },
      { action: 'REPLAY_DEAD_LETTERS', target: `ids:${first.letter.id}`, outcome: { replayed: 1 } },
    ]);
  });

  it('refuses a replay that names nothing or an unknown receiver, and one without a reason', async () => {
    expect(codeOf(await ask(REPLAY, { reason: 'everything' }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await ask(REPLAY, { receiver: 'no-such-receiver', reason: 'typo' }))).toBe('NOT_FOUND');
    expect(codeOf(await ask(REPLAY, { ids: ['0-1'], reason: 'bare id' }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await ask(REPLAY, { receiver: 'revoke-enrollment', reason: ' ' }))).toBe('BAD_USER_INPUT');
    // A missing reason is a required variable left out.
    expect(codeOf(await ask(REPLAY, { receiver: 'revoke-enrollment' }))).toBe('BAD_USER_INPUT');
    expect(
      codeOf(await ask(REPLAY, { receiver: 'revoke-enrollment', reason: 'mine' }, await learnerToken())),
    ).toBe('FORBIDDEN');
  });

  it("shows a signal with its receivers' runs and dead letters, also from the flow that emitted it", async () => {
    const { flowId, signalId, letter } = await deadLetteredRefund();

    const signal = await signalOf(signalId);

    expect(signal).toMatchObject({
      id: signalId,
      name: 'order.refunded.v1',
      source: `flow:${flowId}`,
      flowId,
      publishedAt: expect.any(String),
      receivers: [
        {
          receiver: 'revoke-enrollment',
          run: { status: 'FAILED', attempt: 3 },
          deadLetter: { id: letter.id },
        },
      ],
    });
    const { data } = await ask<{ flow: { signals: Signal[] } }>(
      `query ($id: ID!) { flow(id: $id) { signals { id name receivers { receiver deadLetter { id } } } } }`,
      { id: flowId },
    );
    expect(data!.flow.signals.map((s) => [s.name, s.receivers[0]?.deadLetter?.id ?? null])).toEqual([
      ['payment.refunded.v1', null],
      ['order.refunded.v1', letter.id],
    ]);
    expect(await ask(SIGNAL, { id: '00000000-0000-4000-8000-000000000003' })).toMatchObject({
      data: { signal: null },
    });
  });

  it('redelivers a signal to one receiver: its dead letter, or the signal from the outbox; not a run that completed', async () => {
    const { orderId, signalId } = await deadLetteredRefund();

    const redelivered = await ask<{ redeliverSignal: boolean }>(REDELIVER, {
      id: signalId,
      receiver: 'revoke-enrollment',
      reason: 'the LMS is back',
    });

    expect(redelivered.data?.redeliverSignal).toBe(true);
    await waitFor(async () =>
      expect((await signalOf(signalId)).receivers).toMatchObject([
        { receiver: 'revoke-enrollment', run: { status: 'COMPLETED' }, deadLetter: null },
      ]),
    );
    expect(revocationsOf(orderId)).toHaveLength(1);
    // A run that completed is not run again: a redelivery would do nothing, so it is refused.
    const again = await ask(REDELIVER, { id: signalId, receiver: 'revoke-enrollment', reason: 'once more' });
    expect(again.errors?.[0]?.extensions).toMatchObject({ code: 'CONFLICT', flowStatus: 'COMPLETED' });
    expect(codeOf(await ask(REDELIVER, { id: signalId, receiver: 'record-psp-refund', reason: 'x' }))).toBe(
      'NOT_FOUND',
    );
    expect(
      codeOf(
        await ask(REDELIVER, {
          id: '00000000-0000-4000-8000-000000000004',
          receiver: 'revoke-enrollment',
          reason: 'x',
        }),
      ),
    ).toBe('NOT_FOUND');
    const redeliveries = (await operatorActions(t)).filter((a) => a.action === 'REDELIVER_SIGNAL');
    expect(redeliveries.slice(0, 4).map((a) => [a.status, a.outcome?.delivered ?? a.outcome?.code])).toEqual([
      ['REFUSED', 'NOT_FOUND'],
      ['REFUSED', 'NOT_FOUND'],
      ['REFUSED', 'CONFLICT'],
      ['DONE', 'dead letter'],
    ]);

    // A signal whose dead letter is gone (trimmed, or deleted by hand) is delivered from the outbox.
    const lost = await deadLetteredRefund();
    const redis = await adminRedis(machineRedisUrl());
    const [deadStream] = await redis.call<string[]>(
      'KEYS',
      'test:operators-signals:*:dead:revoke-enrollment',
    );
    await redis.call('XDEL', deadStream!, lost.letter.id.split('/')[1]!);
    await redis.close();
    expect((await signalOf(lost.signalId)).receivers[0]!.deadLetter).toBeNull();
    await ask(REDELIVER, { id: lost.signalId, receiver: 'revoke-enrollment', reason: 'lost letter' });
    await waitFor(() => expect(revocationsOf(lost.orderId)).toHaveLength(1));
    expect((await operatorActions(t))[0]).toMatchObject({ status: 'DONE', outcome: { delivered: 'signal' } });
  });

  it("lists a learner's flows (by username or LMS user id) within a time window", async () => {
    const from = new Date().toISOString();
    const { data } = await refund(t, newOrder('learner'));
    const flowId = data!.requestRefund.flow.id;
    const byOperator = (await refund(t, newOrder('learner'), await operatorToken())).data!.requestRefund.flow
      .id;
    const to = new Date(Date.now() + 1_000).toISOString();
    const FLOWS = `query ($learner: String, $from: String, $to: String) {
      flows(learner: $learner, from: $from, to: $to, limit: 50) { id name startedBy }
    }`;
    const ids = async (args: Record<string, unknown>) => {
      const answer = await ask<{ flows: Array<{ id: string }> }>(FLOWS, args);
      if (answer.errors) throw new Error(JSON.stringify(answer.errors));
      return answer.data!.flows.map((f) => f.id);
    };
    // The refund's caller is the staff member refund-desk (support.ts).
    expect(await ids({ learner: 'refund-desk', from, to })).toEqual([flowId]);
    expect(await ids({ learner: 'refund-desk', to: from })).not.toContain(flowId);
    expect(await ids({ learner: 'someone-else', from })).toEqual([]);
    // The operator's LMS user id is 900.
    expect(await ids({ learner: '900', from })).toEqual([byOperator]);
    expect(await ids({ learner: 'ops-alice', from })).toEqual([byOperator]);
    expect(codeOf(await ask(FLOWS, { from: 'yesterday' }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await ask(FLOWS, { learner: ' ' }))).toBe('BAD_USER_INPUT');
  });
});
