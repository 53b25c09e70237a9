// @ts-check
// One flow: what it is, its steps on a timeline (start, end, attempts, the Implementation that ran and
// the flags that chose it, input, output, error, compensation), its signals and their receivers' runs,
// what operators did to it, and the actions an operator may take on it.
import { cancelFlow, retryFlow } from '../actions.js';
import { graphql } from '../api.js';
import { h, json, replace } from '../dom.js';
import { duration, statusClass, time, who } from '../format.js';
import { FLOW } from '../queries.js';
import { errorBox, signalSection } from './signal-section.js';

/**
 * @param {import('./view.js').ViewContext} context
 * @returns {import('./view.js').View}
 */
export function createFlowView(context) {
  /** This view's own element: a reload that ends after the operator moved on renders nowhere. */
  let root = h('div');
  let id = '';
  /** Only the latest reload renders (a live update can race an action's reload). */
  let generation = 0;
  /** The flows whose events change this view: the flow itself and its signals' receiver runs. */
  let related = new Set();
  /** Receiver runs of its signals start under the signal's name. */
  let signalNames = new Set();
  /** Steps the operator opened stay open when the view reloads. */
  const openSteps = new Set();

  const refresh = async () => {
    const mine = ++generation;
    try {
      const { flow } = await graphql(FLOW, { id });
      if (mine !== generation) return;
      if (!flow)
        return replace(root, h('h1', {}, 'Flow'), h('p', { class: 'error' }, `NOT_FOUND: no flow ${id}`));
      related = new Set([
        flow.id,
        ...flow.signals.flatMap((/** @type {any} */ s) =>
          s.receivers.map((/** @type {any} */ r) => r.run?.id),
        ),
      ]);
      signalNames = new Set(flow.signals.map((/** @type {any} */ s) => s.name));
      replace(root, ...renderFlow(flow, { context, openSteps, reload: refresh }));
    } catch (error) {
      if (mine !== generation) return;
      const e = /** @type {{ code?: string, message?: string }} */ (error);
      replace(
        root,
        h('h1', {}, 'Flow'),
        h('p', { class: 'error', role: 'alert' }, `${e.code}: ${e.message}`),
      );
    }
  };

  return {
    async show(element, params) {
      root = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
      replace(element, root);
      id = params.get('id') ?? '';
      openSteps.clear();
      await refresh();
    },
    refresh,
    wants: (event) =>
      related.has(event.flowId) || (event.type === 'FLOW_STARTED' && signalNames.has(event.name)),
  };
}

/**
 * @typedef {{ context: import('./view.js').ViewContext, openSteps: Set<number>, reload: () => Promise<void> }} RenderOptions
 */

/**
 * @param {any} flow
 * @param {RenderOptions} options
 */
function renderFlow(flow, options) {
  return [
    h(
      'h1',
      {},
      flow.name,
      flow.receiver ? h('span', { class: 'receiver' }, ` → ${flow.receiver}`) : null,
      ' ',
      h('span', { class: statusClass(flow.status), id: 'flow-status' }, flow.status),
    ),
    summary(flow),
    flow.error ? errorBox(flow.error) : null,
    flowActions(flow, options),
    h('h2', {}, 'Steps'),
    timeline(flow, options.openSteps),
    h('h2', {}, 'Data'),
    h(
      'div',
      { class: 'data' },
      h('details', { class: 'flow-input' }, h('summary', {}, 'Input'), json(flow.input)),
      h('details', { class: 'flow-output' }, h('summary', {}, 'Output'), json(flow.output)),
    ),
    h('h2', {}, 'Signals'),
    signals(flow, options),
    h('h2', {}, 'Operator actions'),
    operatorActions(flow.operatorActions),
  ];
}

/** @param {any} flow */
function summary(flow) {
  /** @type {Array<[string, Node | string]>} */
  const rows = [
    ['Flow id', flow.id],
    ['Kind', flow.kind],
    [
      'Order',
      flow.orderId
        ? h('a', { href: `#/flows?orderId=${encodeURIComponent(flow.orderId)}` }, flow.orderId)
        : '—',
    ],
    ['Started by', who(flow.startedBy)],
    ['Started (UTC)', time(flow.startedAt)],
    ['Finished (UTC)', time(flow.finishedAt)],
    ['Took', duration(flow.startedAt, flow.finishedAt)],
    ['Attempt', String(flow.attempt)],
    ['Idempotency key', flow.idempotencyKey ?? '—'],
  ];
  if (flow.haltedAt !== null && flow.haltedAt !== undefined)
    rows.push(['Halted at step', String(flow.haltedAt)]);
  return h(
    'dl',
    { class: 'summary' },
    rows.map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]),
  );
}

/**
 * Retry for a filter flow that failed or was compensated; cancel for one still running.
 * @param {any} flow
 * @param {RenderOptions} options
 */
function flowActions(flow, options) {
  /** @param {() => Promise<string | undefined>} run */
  const act = (run) => async () => {
    const outcome = await run();
    if (outcome) {
      options.context.notify(outcome);
      await options.reload();
    }
  };
  const retryable = flow.kind === 'FILTER' && (flow.status === 'FAILED' || flow.status === 'COMPENSATED');
  return h(
    'div',
    { class: 'actions' },
    retryable
      ? h('button', { type: 'button', id: 'retry-flow', onclick: act(() => retryFlow(flow)) }, 'Retry…')
      : null,
    flow.status === 'RUNNING'
      ? h(
          'button',
          { type: 'button', id: 'cancel-flow', class: 'danger', onclick: act(() => cancelFlow(flow)) },
          'Cancel…',
        )
      : null,
  );
}

/**
 * The steps on one time axis, from the flow's start to its end (or now): each bar spans the step's run.
 * @param {any} flow
 * @param {Set<number>} openSteps
 */
function timeline(flow, openSteps) {
  if (!flow.steps.length) return h('p', { class: 'empty' }, 'No step has run yet.');
  const start = Date.parse(flow.startedAt);
  const end = Math.max(
    flow.finishedAt ? Date.parse(flow.finishedAt) : Date.now(),
    ...flow.steps.map((/** @type {any} */ s) => Date.parse(s.finishedAt ?? s.startedAt)),
  );
  const span = Math.max(1, end - start);
  /** Which step undid which: the reverse of `compensates`. */
  const undoneBy = new Map(
    flow.steps
      .filter((/** @type {any} */ s) => s.compensates !== null && s.compensates !== undefined)
      .map((/** @type {any} */ s) => [s.compensates, s.index]),
  );
  return h(
    'ol',
    { class: 'timeline' },
    flow.steps.map((/** @type {any} */ step) => {
      const from = Date.parse(step.startedAt) - start;
      const to = (step.finishedAt ? Date.parse(step.finishedAt) : Date.now()) - start;
      const bar = h('span', { class: `bar ${statusClass(step.status)}` });
      bar.style.left = `${(100 * from) / span}%`;
      bar.style.width = `${Math.max(0.5, (100 * (to - from)) / span)}%`;
      const details = h(
        'details',
        {
          class: 'step-details',
          ontoggle: () => (details.open ? openSteps.add(step.index) : openSteps.delete(step.index)),
        },
        h(
          'summary',
          {},
          h('span', { class: 'step-index' }, `#${step.index}`),
          ' ',
          h('span', { class: 'step-action' }, step.action),
          ' ',
          h('span', { class: statusClass(step.status) }, step.status),
          step.compensates !== null && step.compensates !== undefined
            ? h('span', { class: 'compensation' }, ` undoes step #${step.compensates}`)
            : null,
          undoneBy.has(step.index)
            ? h('span', { class: 'compensation' }, ` undone by step #${undoneBy.get(step.index)}`)
            : null,
          h('span', { class: 'track' }, bar),
        ),
        stepBody(step),
      );
      details.open = openSteps.has(step.index);
      return h('li', { class: 'step', 'data-step': step.index }, details);
    }),
  );
}

/** @param {any} step */
function stepBody(step) {
  const decisions = step.flagDecisions.length
    ? h(
        'ul',
        { class: 'flags' },
        step.flagDecisions.map((/** @type {any} */ d) =>
          h('li', {}, h('code', {}, d.flag), ` = ${d.value ? 'true' : 'false'} (${d.reason})`),
        ),
      )
    : 'no flag decided it';
  /** @type {Array<[string, Node | string]>} */
  const rows = [
    ['Started (UTC)', time(step.startedAt)],
    ['Finished (UTC)', time(step.finishedAt)],
    ['Took', duration(step.startedAt, step.finishedAt)],
    ['Attempts', String(step.attempt)],
    ['Implementation', step.implementation ?? '—'],
    ['Flag decisions', decisions],
    ['Idempotency key', step.idempotencyKey],
  ];
  return h(
    'div',
    { class: 'step-body' },
    h(
      'dl',
      { class: 'summary' },
      rows.map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]),
    ),
    step.error ? errorBox(step.error) : null,
    h(
      'div',
      { class: 'data' },
      h('div', {}, h('h4', {}, 'Input'), json(step.input)),
      h('div', {}, h('h4', {}, 'Output'), json(step.output)),
    ),
  );
}

/**
 * The signals the flow emitted, each with its receivers.
 * @param {any} flow
 * @param {RenderOptions} options
 */
function signals(flow, options) {
  if (!flow.signals.length) return h('p', { class: 'empty' }, 'This flow emitted no signal.');
  return h(
    'div',
    { class: 'signals' },
    flow.signals.map((/** @type {any} */ signal) => signalSection(signal, options)),
  );
}

/** @param {any[]} actions */
function operatorActions(actions) {
  if (!actions.length) return h('p', { class: 'empty' }, 'No operator has acted on this flow.');
  return h(
    'table',
    { class: 'operator-actions' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['At (UTC)', 'Action', 'By', 'Reason', 'Status', 'Outcome'].map((c) => h('th', {}, c)),
      ),
    ),
    h(
      'tbody',
      {},
      actions.map((a) =>
        h(
          'tr',
          {},
          h('td', { class: 'time' }, time(a.at)),
          h('td', {}, a.action),
          h('td', {}, who(a.actor)),
          h('td', { class: 'reason' }, a.reason),
          h('td', {}, h('span', { class: statusClass(a.status) }, a.status)),
          h('td', {}, a.outcome === null || a.outcome === undefined ? '—' : json(a.outcome)),
        ),
      ),
    ),
  );
}
