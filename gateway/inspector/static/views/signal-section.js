// @ts-check
// A signal as the record has it: where it came from, its payload, and each receiver's run and dead
// letter, with redelivery to one receiver. Shown in a flow's view and in the signal's own.
import { redeliverSignal } from '../actions.js';
import { h, json } from '../dom.js';
import { statusClass, time } from '../format.js';

/**
 * @typedef {{ context: import('./view.js').ViewContext, reload: () => Promise<void> }} SectionOptions
 */

/**
 * @param {any} signal
 * @param {SectionOptions} options
 */
export function signalSection(signal, options) {
  return h(
    'section',
    { class: 'signal', 'data-signal-id': signal.id },
    h(
      'h3',
      {},
      signal.name,
      ' ',
      h('a', { href: `#/signal/${encodeURIComponent(signal.id)}` }, h('code', {}, signal.id)),
    ),
    h(
      'p',
      { class: 'meta' },
      `from ${signal.source}, committed ${time(signal.createdAt)}, published ${time(signal.publishedAt)}`,
    ),
    h('details', {}, h('summary', {}, 'Payload'), json(signal.payload)),
    h(
      'table',
      { class: 'receivers' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Receiver', 'Run', 'Dead letter', ''].map((c) => h('th', {}, c)),
        ),
      ),
      h(
        'tbody',
        {},
        signal.receivers.map((/** @type {any} */ r) => receiverRow(signal, r, options)),
      ),
    ),
  );
}

/** @param {{ code: string, message: string, details?: unknown }} error */
export function errorBox(error) {
  return h(
    'div',
    { class: 'error-box', role: 'alert' },
    h('strong', {}, error.code),
    ' ',
    error.message,
    error.details ? h('details', {}, h('summary', {}, 'Details'), json(error.details)) : null,
  );
}

/**
 * One receiver of a signal. Redelivery is offered where it can help: a receiver that never ran, or
 * whose run failed for good (one that completed runs once per signal, and the gateway refuses it).
 * @param {any} signal
 * @param {any} receiver
 * @param {SectionOptions} options
 */
function receiverRow(signal, receiver, options) {
  const { run, deadLetter } = receiver;
  const redeliver = async () => {
    const outcome = await redeliverSignal({
      signalId: signal.id,
      signal: signal.name,
      receiver: receiver.receiver,
    });
    if (outcome) {
      options.context.notify(outcome);
      await options.reload();
    }
  };
  return h(
    'tr',
    { 'data-receiver': receiver.receiver },
    h('td', {}, receiver.receiver),
    h(
      'td',
      {},
      run
        ? [
            h(
              'a',
              { href: `#/flow/${encodeURIComponent(run.id)}` },
              h('span', { class: statusClass(run.status) }, run.status),
            ),
            ` attempt ${run.attempt}`,
            run.error ? ` — ${run.error.code}: ${run.error.message}` : '',
          ]
        : 'not started',
    ),
    h(
      'td',
      {},
      deadLetter
        ? `after ${deadLetter.attempts} attempts, ${time(deadLetter.deadAt)}: ${deadLetter.error.code}: ${deadLetter.error.message}`
        : '—',
    ),
    h(
      'td',
      {},
      !run || run.status === 'FAILED' || deadLetter
        ? h('button', { type: 'button', class: 'redeliver', onclick: redeliver }, 'Redeliver…')
        : null,
    ),
  );
}
