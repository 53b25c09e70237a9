// @ts-check
// The operations the page sends: the Coordinator's operator API (flows, dead letters, signals, actions).

/** The search fields of `flows`, with their GraphQL types. */
const FLOW_SEARCH = /** @type {const} */ ({
  orderId: 'String',
  learner: 'String',
  name: 'String',
  status: 'FlowStatus',
  from: 'String',
  to: 'String',
  before: 'String',
});

/** @typedef {Partial<Record<keyof typeof FLOW_SEARCH, string>>} FlowSearch */

/**
 * `flows` with the arguments of the fields searched by, and only those (a document names what it asks).
 * @param {FlowSearch} search
 * @param {number} limit
 */
export function flowsQuery(search, limit) {
  const used = Object.entries(FLOW_SEARCH).filter(([name]) => search[/** @type {keyof FlowSearch} */ (name)]);
  const params = used.map(([name, type]) => `$${name}: ${type}`);
  const args = used.map(([name]) => `${name}: $${name}`);
  return {
    query: /* GraphQL */ `
      query InspectorFlows(${[...params, '$limit: Int'].join(', ')}) {
        flows(${[...args, 'limit: $limit'].join(', ')}) {
          id kind name receiver status orderId startedBy attempt startedAt finishedAt
          error { code message }
        }
      }`,
    variables: {
      ...Object.fromEntries(used.map(([name]) => [name, search[/** @type {keyof FlowSearch} */ (name)]])),
      limit,
    },
  };
}

const ERROR = 'error { code message details }';

const SIGNAL_FIELDS = /* GraphQL */ `
  id name payload source flowId createdAt publishedAt
  receivers {
    receiver
    run { id status attempt startedAt finishedAt error { code message } }
    deadLetter { id attempts deadAt error { code message } }
  }
`;

export const SIGNAL = /* GraphQL */ `
  query InspectorSignal($id: ID!) {
    signal(id: $id) { ${SIGNAL_FIELDS} }
  }
`;

export const FLOW = /* GraphQL */ `
  query InspectorFlow($id: ID!) {
    flow(id: $id) {
      id kind name receiver status idempotencyKey startedBy orderId input output haltedAt attempt
      startedAt finishedAt
      ${ERROR}
      steps {
        index action status input output implementation idempotencyKey attempt startedAt finishedAt
        compensates
        flagDecisions { flag value reason }
        ${ERROR}
      }
      signals { ${SIGNAL_FIELDS} }
      operatorActions { id action target actor reason at status outcome }
    }
  }
`;

export const DEAD_LETTERS = /* GraphQL */ `
  query InspectorDeadLetters($receiver: String, $signal: String) {
    deadLetters(receiver: $receiver, signal: $signal, limit: 100) {
      id
      receiver
      signalId
      signal
      payload
      attempts
      deadAt
      replayable
      error {
        code
        message
      }
    }
  }
`;

/** Whether the caller may read flow records at all: the page's sign-in check. */
export const PROBE = /* GraphQL */ `
  query InspectorProbe {
    flows(limit: 1) {
      id
    }
  }
`;

export const RETRY_FLOW = /* GraphQL */ `
  mutation InspectorRetryFlow($id: ID!, $reason: String!) {
    retryFlow(id: $id, reason: $reason) {
      id
      status
    }
  }
`;

export const CANCEL_FLOW = /* GraphQL */ `
  mutation InspectorCancelFlow($id: ID!, $reason: String!) {
    cancelFlow(id: $id, reason: $reason) {
      id
      status
    }
  }
`;

export const REPLAY_DEAD_LETTERS = /* GraphQL */ `
  mutation InspectorReplay($receiver: String, $signal: String, $ids: [ID!], $reason: String!) {
    replayDeadLetters(receiver: $receiver, signal: $signal, ids: $ids, reason: $reason)
  }
`;

export const REDELIVER_SIGNAL = /* GraphQL */ `
  mutation InspectorRedeliver($signalId: ID!, $receiver: String!, $reason: String!) {
    redeliverSignal(signalId: $signalId, receiver: $receiver, reason: $reason)
  }
`;

/** Every flow event, from a cursor on: what the page refreshes its view on. */
export const FLOW_EVENTS = /* GraphQL */ `
  subscription InspectorFlowEvents($after: String) {
    flowEvents(after: $after) {
      cursor
      type
      flowId
      name
      status
      stepIndex
    }
  }
`;
