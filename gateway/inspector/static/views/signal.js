// @ts-check
// One signal: the flow (or Plugin) that emitted it, and each receiver's run and dead letter.
import { graphql } from '../api.js';
import { h, replace } from '../dom.js';
import { SIGNAL } from '../queries.js';
import { signalSection } from './signal-section.js';

/**
 * @param {import('./view.js').ViewContext} context
 * @returns {import('./view.js').View}
 */
export function createSignalView(context) {
  /** This view's own element: a reload that ends after the operator moved on renders nowhere. */
  let root = h('div');
  let id = '';
  /** Only the latest reload renders. */
  let generation = 0;
  /** @type {string | undefined} */
  let name;

  const refresh = async () => {
    const mine = ++generation;
    try {
      const { signal } = await graphql(SIGNAL, { id });
      if (mine !== generation) return;
      if (!signal)
        return replace(root, h('h1', {}, 'Signal'), h('p', { class: 'error' }, `NOT_FOUND: no signal ${id}`));
      name = signal.name;
      replace(
        root,
        h('h1', {}, 'Signal ', signal.name),
        signal.flowId
          ? h(
              'p',
              {},
              'Emitted by flow ',
              h('a', { href: `#/flow/${encodeURIComponent(signal.flowId)}` }, signal.flowId),
            )
          : null,
        signalSection(signal, { context, reload: refresh }),
      );
    } catch (error) {
      if (mine !== generation) return;
      const e = /** @type {{ code?: string, message?: string }} */ (error);
      replace(
        root,
        h('h1', {}, 'Signal'),
        h('p', { class: 'error', role: 'alert' }, `${e.code}: ${e.message}`),
      );
    }
  };

  return {
    async show(element, params) {
      root = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
      replace(element, root);
      id = params.get('id') ?? '';
      name = undefined;
      await refresh();
    },
    refresh,
    // Its receivers' runs are flows under the signal's name.
    wants: (event) => event.name === name,
  };
}
