// @ts-check
// Dead letters across every receiver (or of one receiver, or one signal), newest first, and replaying
// them: those selected, or all of the receiver or signal searched for.
import { replayDeadLetters } from '../actions.js';
import { graphql } from '../api.js';
import { h, json, replace } from '../dom.js';
import { time } from '../format.js';
import { DEAD_LETTERS } from '../queries.js';

/**
 * @param {import('./view.js').ViewContext} context
 * @returns {import('./view.js').View}
 */
export function createDeadLettersView(context) {
  /** @type {HTMLElement} */
  let results = h('section');
  /** @type {{ receiver?: string, signal?: string }} */
  let search = {};

  /** Only the latest load renders (a live update can race a search or an action's reload). */
  let generation = 0;

  const refresh = async () => {
    const mine = ++generation;
    try {
      const { deadLetters } = await graphql(DEAD_LETTERS, search);
      if (mine !== generation) return;
      replace(results, replayBar(deadLetters), deadLettersTable(deadLetters));
    } catch (error) {
      if (mine !== generation) return;
      const e = /** @type {{ code?: string, message?: string }} */ (error);
      replace(results, h('p', { class: 'error', role: 'alert' }, `${e.code}: ${e.message}`));
    }
  };

  /** @param {{ receiver?: string, signal?: string, ids?: string[] }} which */
  const replay = async (which) => {
    const outcome = await replayDeadLetters(which);
    if (outcome) {
      context.notify(outcome);
      await refresh();
    }
  };

  /** @param {any[]} deadLetters */
  const replayBar = (deadLetters) => {
    if (!deadLetters.length) return null;
    const selected = () =>
      [...results.querySelectorAll('input.select-dead-letter:checked')].map(
        (box) => /** @type {HTMLInputElement} */ (box).value,
      );
    const all = search.receiver || search.signal;
    return h(
      'div',
      { class: 'actions' },
      h(
        'button',
        {
          type: 'button',
          id: 'replay-selected',
          onclick: () => {
            const ids = selected();
            if (ids.length) void replay({ ids });
            else context.notify('Select the dead letters to replay first.', 'error');
          },
        },
        'Replay selected…',
      ),
      all
        ? h(
            'button',
            { type: 'button', id: 'replay-all', onclick: () => void replay({ ...search }) },
            `Replay all of ${[search.receiver && `receiver ${search.receiver}`, search.signal && `signal ${search.signal}`].filter(Boolean).join(' and ')}…`,
          )
        : null,
    );
  };

  return {
    async show(root, params) {
      search = Object.fromEntries(
        ['receiver', 'signal'].map((k) => [k, params.get(k) ?? '']).filter(([, v]) => v),
      );
      results = h('section', { id: 'dead-letter-results', 'aria-live': 'polite' });
      replace(root, h('h1', {}, 'Dead letters'), searchForm(search, context), results);
      await refresh();
    },
    refresh,
    // A receiver's last failed attempt dead-letters its signal; a replay starts a run.
    wants: (event) => event.type === 'FLOW_FINISHED' || event.type === 'FLOW_STARTED',
  };
}

/**
 * @param {{ receiver?: string, signal?: string }} search
 * @param {import('./view.js').ViewContext} context
 */
function searchForm(search, context) {
  const form = h(
    'form',
    { id: 'dead-letter-search', class: 'search' },
    h(
      'label',
      {},
      'Receiver',
      h('input', { name: 'receiver', type: 'search', value: search.receiver ?? '' }),
    ),
    h('label', {}, 'Signal', h('input', { name: 'signal', type: 'search', value: search.signal ?? '' })),
    h('button', { type: 'submit' }, 'Search'),
    h('a', { href: '#/dead-letters', class: 'clear' }, 'Clear'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    for (const [key, value] of new FormData(form))
      if (String(value).trim()) params.set(key, String(value).trim());
    context.navigate(`#/dead-letters?${params}`);
  });
  return form;
}

/** @param {any[]} deadLetters */
function deadLettersTable(deadLetters) {
  if (!deadLetters.length) return h('p', { class: 'empty' }, 'No dead letters.');
  return h(
    'table',
    { class: 'dead-letters' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['', 'Dead since (UTC)', 'Receiver', 'Signal', 'Attempts', 'Error', 'Payload'].map((c) =>
          h('th', {}, c),
        ),
      ),
    ),
    h(
      'tbody',
      {},
      deadLetters.map((d) =>
        h(
          'tr',
          { 'data-dead-letter': d.id },
          h(
            'td',
            {},
            h('input', {
              type: 'checkbox',
              class: 'select-dead-letter',
              value: d.id,
              'aria-label': `select ${d.id}`,
              // An entry that was not a valid signal holds nothing to deliver.
              disabled: !d.replayable,
              title: d.replayable ? null : 'Not a valid signal: there is nothing to deliver again',
            }),
          ),
          h('td', { class: 'time' }, time(d.deadAt)),
          h('td', {}, d.receiver),
          h(
            'td',
            {},
            d.signal,
            h('br'),
            h('a', { href: `#/signal/${encodeURIComponent(d.signalId)}` }, h('code', {}, d.signalId)),
          ),
          h('td', { class: 'number' }, String(d.attempts)),
          h('td', {}, h('strong', {}, d.error.code), ' ', d.error.message),
          h('td', {}, h('details', {}, h('summary', {}, 'Payload'), json(d.payload))),
        ),
      ),
    ),
  );
}
