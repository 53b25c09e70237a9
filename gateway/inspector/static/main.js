// @ts-check
// The flow inspector: signs in, routes `#/…` to its views, and keeps the view current with the flow
// events the gateway publishes.
import { ApiError, GRAPHQL_URL, SIGNED_OUT, graphql } from './api.js';
import { byId, h, replace } from './dom.js';
import { subscribeLive } from './live.js';
import { FLOW_EVENTS, PROBE } from './queries.js';
import { authorization, callerName, credentials, forgetToken } from './session.js';
import { createDeadLettersView } from './views/dead-letters.js';
import { createFlowView } from './views/flow.js';
import { createFlowsView } from './views/flows.js';
import { createSignalView } from './views/signal.js';
import { showRefusal, showSignIn } from './views/sign-in.js';

const main = byId('view', HTMLElement);
const nav = byId('nav', HTMLElement);
const caller = byId('caller', HTMLElement);
const live = byId('live', HTMLElement);
const notice = byId('notice', HTMLElement);
const signOut = byId('sign-out', HTMLButtonElement);

/** @type {import('./views/view.js').ViewContext} */
const context = {
  notify(message, kind = 'ok') {
    notice.className = `notice notice-${kind}`;
    replace(notice, message);
    notice.hidden = false;
  },
  navigate(hash) {
    if (location.hash === hash) void route();
    else location.hash = hash;
  },
};

const views = {
  flows: createFlowsView(context),
  flow: createFlowView(context),
  signal: createSignalView(context),
  deadLetters: createDeadLettersView(context),
};
/** @type {import('./views/view.js').View | undefined} */
let current;
/** @type {{ stop(): void } | undefined} */
let subscription;

/** The view of the location's hash: `#/flows?…`, `#/flow/<id>`, `#/signal/<id>`, `#/dead-letters?…`. */
async function route() {
  const [path = '', query = ''] = location.hash.replace(/^#/, '').split('?');
  const params = new URLSearchParams(query);
  const record = /^\/(flow|signal)\/([^/]+)$/.exec(path);
  let section = 'flows';
  if (record?.[2]) {
    params.set('id', decodeURIComponent(record[2]));
    current = record[1] === 'signal' ? views.signal : views.flow;
  } else if (path === '/dead-letters') {
    current = views.deadLetters;
    section = 'dead-letters';
  } else current = views.flows;
  for (const link of nav.querySelectorAll('a'))
    link.classList.toggle('current', link.dataset.section === section);
  notice.hidden = true;
  delete main.dataset.shown;
  await current.show(main, params);
  // Which location the view shows, once it does (what a test of the page waits for).
  main.dataset.shown = location.hash;
}

/** Many events at once (a flow's steps) reload the view once. */
let pending = /** @type {ReturnType<typeof setTimeout> | undefined} */ (undefined);
function refreshSoon() {
  if (pending) return;
  pending = setTimeout(() => {
    pending = undefined;
    void current?.refresh();
  }, 150);
}

function startLive() {
  subscription = subscribeLive({
    url: Object.assign(new URL(GRAPHQL_URL), {
      protocol: GRAPHQL_URL.protocol === 'https:' ? 'wss:' : 'ws:',
    }),
    query: FLOW_EVENTS,
    // With the LMS's cookies there is nothing to send: the gateway reads them from the handshake.
    connectionParams: () => {
      const auth = authorization();
      return auth ? { authorization: auth } : {};
    },
    cursorOf: (data) => data.flowEvents?.cursor,
    onData: (data) => {
      if (data.flowEvents && current?.wants(data.flowEvents)) refreshSoon();
    },
    onStatus: (status) => {
      live.dataset.status = status;
      replace(
        live,
        {
          connecting: 'connecting…',
          live: 'live',
          reconnecting: 'reconnecting…',
          refused: 'live updates refused',
          stopped: 'stopped',
        }[status],
      );
      // Events may have been missed while away: reload once connected.
      if (status === 'live') refreshSoon();
    },
  });
}

/** Checks who the page is signed in as, then shows the app, the sign-in form or the refusal. */
async function start() {
  subscription?.stop();
  subscription = undefined;
  const session = credentials();
  nav.hidden = true;
  signOut.hidden = session.via !== 'token';
  replace(caller, '');
  try {
    await graphql(PROBE);
  } catch (error) {
    const e = error instanceof ApiError ? error : new ApiError('UNKNOWN', String(error));
    if (e.code === 'FORBIDDEN') {
      replace(caller, callerName(session.claims));
      return showRefusal(main, { caller: callerName(session.claims), message: e.message });
    }
    if (e.code === 'UNAUTHENTICATED') {
      forgetToken();
      signOut.hidden = true;
      // Without a token or cookies the gateway says so too; that is no problem to show.
      const problem =
        session.via === 'token' || session.claims ? `The sign-in was refused: ${e.message}` : undefined;
      return showSignIn(main, { problem, onSignedIn: () => void start() });
    }
    return replace(main, h('p', { class: 'error', role: 'alert' }, `${e.code}: ${e.message}`));
  }
  replace(caller, `${callerName(session.claims)}${session.via === 'cookies' ? ' (LMS cookies)' : ''}`);
  nav.hidden = false;
  startLive();
  await route();
}

signOut.addEventListener('click', () => {
  forgetToken();
  void start();
});
// Signed in no longer (the token expired): back to the sign-in form, which says why.
window.addEventListener(SIGNED_OUT, () => {
  if (!nav.hidden) void start();
});
window.addEventListener('hashchange', () => {
  if (!nav.hidden) void route();
});
void start();
