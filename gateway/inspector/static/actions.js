// @ts-check
// The operator actions, each behind its confirmation: retry or cancel a flow, replay dead letters,
// redeliver a signal to one receiver. Each resolves with what it did, or undefined if cancelled.
import { graphql } from './api.js';
import { confirmAction } from './confirm.js';
import { CANCEL_FLOW, REDELIVER_SIGNAL, REPLAY_DEAD_LETTERS, RETRY_FLOW } from './queries.js';

/** @param {{ id: string, name: string }} flow */
export function retryFlow(flow) {
  return confirmAction({
    title: 'Retry this flow',
    summary: `Runs ${flow.name} (${flow.id}) again from the step that failed; steps already done keep their records and idempotency keys.`,
    confirmLabel: 'Retry',
    perform: async (reason) => {
      const { retryFlow: run } = await graphql(RETRY_FLOW, { id: flow.id, reason });
      return `Retried: the flow ended ${run.status}.`;
    },
  });
}

/** @param {{ id: string, name: string }} flow */
export function cancelFlow(flow) {
  return confirmAction({
    title: 'Cancel this flow',
    summary: `Stops ${flow.name} (${flow.id}): the process running it is fenced off and what ran is compensated.`,
    confirmLabel: 'Cancel the flow',
    perform: async (reason) => {
      const { cancelFlow: run } = await graphql(CANCEL_FLOW, { id: flow.id, reason });
      return `Cancelled: the flow ended ${run.status}.`;
    },
  });
}

/**
 * Replays dead letters: those named, or all of a receiver's or of a signal's.
 * @param {{ receiver?: string, signal?: string, ids?: string[] }} which
 */
export function replayDeadLetters(which) {
  const what = which.ids
    ? `${which.ids.length} selected dead letter${which.ids.length === 1 ? '' : 's'}`
    : [
        'every dead letter',
        which.receiver ? `of receiver ${which.receiver}` : '',
        which.signal ? `of signal ${which.signal}` : '',
      ]
        .filter(Boolean)
        .join(' ');
  return confirmAction({
    title: 'Replay dead letters',
    summary: `Delivers ${what} to its receiver again.`,
    confirmLabel: 'Replay',
    perform: async (reason) => {
      const { replayDeadLetters: count } = await graphql(REPLAY_DEAD_LETTERS, { ...which, reason });
      return `Replayed ${count} dead letter${count === 1 ? '' : 's'}.`;
    },
  });
}

/** @param {{ signalId: string, signal: string, receiver: string }} delivery */
export function redeliverSignal(delivery) {
  return confirmAction({
    title: 'Redeliver a signal',
    summary: `Delivers ${delivery.signal} (${delivery.signalId}) to ${delivery.receiver} again.`,
    confirmLabel: 'Redeliver',
    perform: async (reason) => {
      await graphql(REDELIVER_SIGNAL, {
        signalId: delivery.signalId,
        receiver: delivery.receiver,
        reason,
      });
      return `Redelivered ${delivery.signal} to ${delivery.receiver}.`;
    },
  });
}
