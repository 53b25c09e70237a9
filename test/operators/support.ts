import { randomUUID } from 'node:crypto';
import { REQUEST_REFUND, token, type TestCoordinator } from '../support/coordinator.js';

/** The operator of these tests, and a learner (who may not operate). */
export const operatorToken = () => token({ kind: 'staff', username: 'ops-alice', lmsUserId: 900 });
export const learnerToken = () => token({ kind: 'learner', lmsUserId: 901, username: 'ada-ops' });
export const staffToken = () => token({ kind: 'staff', username: 'refund-desk' });

export const OPERATOR = { kind: 'staff', username: 'ops-alice', lmsUserId: 900 };

export const FLOW = /* GraphQL */ `
  id
  status
  attempt
  orderId
  output
  error {
    code
    message
    details
  }
  steps {
    index
    action
    status
    attempt
    idempotencyKey
    compensates
    startedAt
    error {
      code
      message
    }
  }
`;

export interface Step {
  index: number;
  action: string;
  status: string;
  attempt: number;
  idempotencyKey: string;
  compensates: number | null;
  startedAt: string;
  error: { code: string; message: string } | null;
}
export interface Flow {
  id: string;
  status: string;
  attempt: number;
  orderId: string | null;
  output: Record<string, unknown> | null;
  error: { code: string; message: string; details: Record<string, unknown> | null } | null;
  steps: Step[];
}

type Answer<T> = {
  data?: T | null;
  errors?: Array<{ message: string; extensions?: Record<string, unknown> }>;
};

/** A refund of a fresh order through the fixture filter, as staff; the answer, whatever it is. */
export async function refund(
  t: TestCoordinator,
  orderId: string,
  bearer?: string,
): Promise<Answer<{ requestRefund: { flow: Flow } }>> {
  return t.graphql<{ requestRefund: { flow: Flow } }>(
    REQUEST_REFUND,
    { input: { orderId, amount: 25, learnerId: `learner-${orderId}` }, key: randomUUID() },
    { token: bearer ?? (await staffToken()) },
  );
}

export const newOrder = (label: string) => `${label}-${randomUUID().slice(0, 8)}`;

export async function retryFlow(t: TestCoordinator, id: string, reason: string, bearer?: string) {
  return t.graphql<{ retryFlow: Flow }>(
    `mutation ($id: ID!, $reason: String!) { retryFlow(id: $id, reason: $reason) { ${FLOW} } }`,
    { id, reason },
    { token: bearer ?? (await operatorToken()) },
  );
}

export async function cancelFlow(t: TestCoordinator, id: string, reason: string, bearer?: string) {
  return t.graphql<{ cancelFlow: Flow }>(
    `mutation ($id: ID!, $reason: String!) { cancelFlow(id: $id, reason: $reason) { ${FLOW} } }`,
    { id, reason },
    { token: bearer ?? (await operatorToken()) },
  );
}

export async function flowOf(t: TestCoordinator, id: string): Promise<Flow> {
  const { data, errors } = await t.graphql<{ flow: Flow }>(
    `query ($id: ID!) { flow(id: $id) { ${FLOW} } }`,
    { id },
    { token: await operatorToken() },
  );
  if (errors) throw new Error(JSON.stringify(errors));
  return data!.flow;
}

export interface OperatorActionRecord {
  action: string;
  target: string;
  actor: Record<string, unknown>;
  reason: string;
  status: string;
  at: string;
  outcome: Record<string, unknown> | null;
}

export async function operatorActions(t: TestCoordinator, flowId?: string): Promise<OperatorActionRecord[]> {
  const { data, errors } = await t.graphql<{ operatorActions: OperatorActionRecord[] }>(
    `query ($flowId: ID) { operatorActions(flowId: $flowId) { action target actor reason status at outcome } }`,
    { flowId },
    { token: await operatorToken() },
  );
  if (errors) throw new Error(JSON.stringify(errors));
  return data!.operatorActions;
}

/**
 * The ledger's operations made by one flow's steps (receivers of its signals have keys of their own
 * runs), as `kind key` pairs in the order they were made.
 */
export const ledgerOps = (t: TestCoordinator, flowId: string) =>
  t.ledger
    .operations()
    .filter((op) => op.key.startsWith(`${flowId}:`))
    .map((op) => `${op.kind} ${op.key}`);

export const codeOf = (answer: Answer<unknown>) => answer.errors?.[0]?.extensions?.code;
