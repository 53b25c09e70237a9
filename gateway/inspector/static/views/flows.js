// @ts-check
// The list of flows, newest first, searched by order, learner, filter or signal name, status and time.
import { graphql } from '../api.js';
import { h, replace } from '../dom.js';
import { duration, statusClass, time, utcFromInput, who } from '../format.js';
import { flowsQuery } from '../queries.js';

const PAGE = 50;
const STATUSES = ['RUNNING', 'COMPLETED', 'HALTED', 'FAILED', 'COMPENSATED'];
/** @type {Array<[string, string, string]>} field, label, placeholder */
const TEXT_FIELDS = [
  ['orderId', 'Order', 'order id'],
  ['learner', 'Learner', 'username or LMS user id'],
  ['name', 'Filter or signal', 'e.g. order.refund.requested.v1'],
];

/**
 * @param {import('./view.js').ViewContext} context
 * @returns {import('./view.js').View}
 */
export function createFlowsView(context) {
  /** @type {HTMLElement} */
  let results = h('section');
  /** @type {import('../queries.js').FlowSearch} */
  let search = {};

  /** Only the latest load renders (a live update can race a search or an action's reload). */
  let generation = 0;

  const refresh = async () => {
    const mine = ++generation;
    try {
      const { query, variables } = flowsQuery(search, PAGE);
      const { flows } = await graphql(query, variables);
      if (mine !== generation) return;
      replace(results, flowsTable(flows), olderLink(flows));
    } catch (error) {
      if (mine !== generation) return;
      const e = /** @type {{ code?: string, message?: string }} */ (error);
      replace(results, h('p', { class: 'error', role: 'alert' }, `${e.code}: ${e.message}`));
    }
  };

  /** @param {any[]} flows */
  const olderLink = (flows) => {
    if (flows.length < PAGE) return null;
    const params = new URLSearchParams(/** @type {Record<string, string>} */ ({ ...search }));
    params.set('before', flows[flows.length - 1].startedAt);
    return h('p', {}, h('a', { href: `#/flows?${params}`, class: 'older' }, 'Older flows'));
  };

  return {
    async show(root, params) {
      search = Object.fromEntries(
        ['orderId', 'learner', 'name', 'status', 'from', 'to', 'before']
          .map((k) => [k, params.get(k) ?? ''])
          .filter(([, v]) => v),
      );
      results = h('section', { id: 'flow-results', 'aria-live': 'polite' });
      replace(root, h('h1', {}, 'Flows'), searchForm(search, context), results);
      await refresh();
    },
    refresh,
    wants: (event) => event.type === 'FLOW_STARTED' || event.type === 'FLOW_FINISHED',
  };
}

/**
 * @param {import('../queries.js').FlowSearch} search
 * @param {import('./view.js').ViewContext} context
 */
function searchForm(search, context) {
  const inputs = TEXT_FIELDS.map(([field, label, placeholder]) =>
    h(
      'label',
      {},
      label,
      h('input', {
        name: field,
        type: 'search',
        placeholder,
        value: search[/** @type {'name'} */ (field)] ?? '',
      }),
    ),
  );
  const status = h(
    'select',
    { name: 'status' },
    h('option', { value: '' }, 'any'),
    STATUSES.map((s) => h('option', { value: s, selected: search.status === s }, s)),
  );
  /** @param {string} name @param {string | undefined} iso */
  const timeInput = (name, iso) =>
    h('input', {
      name,
      type: 'datetime-local',
      step: 1,
      value: iso ? iso.replace(/Z$/, '').slice(0, 19) : '',
    });
  const form = h(
    'form',
    { id: 'flow-search', class: 'search' },
    inputs,
    h('label', {}, 'Status', status),
    h('label', {}, 'From (UTC)', timeInput('from', search.from)),
    h('label', {}, 'To (UTC)', timeInput('to', search.to)),
    h('button', { type: 'submit' }, 'Search'),
    h('a', { href: '#/flows', class: 'clear' }, 'Clear'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    for (const [key, value] of new FormData(form)) {
      const text = String(value).trim();
      if (!text) continue;
      params.set(key, key === 'from' || key === 'to' ? utcFromInput(text) : text);
    }
    context.navigate(`#/flows?${params}`);
  });
  return form;
}

/** @param {any[]} flows */
function flowsTable(flows) {
  if (!flows.length) return h('p', { class: 'empty' }, 'No flows match.');
  return h(
    'table',
    { class: 'flows' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['Started (UTC)', 'Flow', 'Status', 'Order', 'Caller', 'Took', 'Attempt'].map((c) => h('th', {}, c)),
      ),
    ),
    h(
      'tbody',
      {},
      flows.map((flow) =>
        h(
          'tr',
          { 'data-flow-id': flow.id, 'data-kind': flow.kind },
          h('td', { class: 'time' }, time(flow.startedAt)),
          h(
            'td',
            {},
            h('a', { href: `#/flow/${encodeURIComponent(flow.id)}` }, flow.name),
            flow.receiver ? h('span', { class: 'receiver' }, ` → ${flow.receiver}`) : null,
          ),
          h('td', {}, h('span', { class: statusClass(flow.status) }, flow.status)),
          h('td', { class: 'order' }, flow.orderId ?? '—'),
          // A receiver run has no caller: its signal started it.
          h('td', {}, flow.kind === 'RECEIVER' ? '—' : who(flow.startedBy)),
          h('td', { class: 'number' }, duration(flow.startedAt, flow.finishedAt)),
          h('td', { class: 'number' }, String(flow.attempt)),
        ),
      ),
    ),
  );
}
