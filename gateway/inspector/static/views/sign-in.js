// @ts-check
// Signing in: paste a token (kept in this tab only), or come from the LMS, whose cookies sign the page in.
import { h, replace } from '../dom.js';
import { keepToken } from '../session.js';

/**
 * @param {HTMLElement} root
 * @param {{ problem?: string, onSignedIn: () => void }} options
 */
export function showSignIn(root, options) {
  const token = h('textarea', {
    id: 'token',
    name: 'token',
    rows: 4,
    required: true,
    spellcheck: 'false',
    autocomplete: 'off',
    placeholder: 'eyJhbGciOi…',
  });
  const form = h(
    'form',
    { id: 'sign-in', class: 'sign-in' },
    h('h1', {}, 'Sign in'),
    h(
      'p',
      {},
      'The flow inspector is for staff and Services. Paste a JWT (kept in this tab until it closes), or sign in to the LMS and come back: its cookies sign you in.',
    ),
    options.problem ? h('p', { class: 'error', role: 'alert' }, options.problem) : null,
    h('label', {}, 'Token', token),
    h('button', { type: 'submit' }, 'Sign in'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = token.value.trim().replace(/^(Bearer|JWT)\s+/i, '');
    if (!value) return;
    keepToken(value);
    options.onSignedIn();
  });
  replace(root, form);
  token.focus();
}

/**
 * A caller the gateway refuses the records to (a learner): nothing of them is shown.
 * @param {HTMLElement} root
 * @param {{ caller: string, message: string }} refusal
 */
export function showRefusal(root, refusal) {
  replace(
    root,
    h(
      'section',
      { id: 'refused', class: 'refused', role: 'alert' },
      h('h1', {}, 'Not for this caller'),
      h('p', {}, `Signed in as ${refusal.caller}. The flow inspector is for staff and Services only.`),
      h('p', { class: 'error' }, `FORBIDDEN: ${refusal.message}`),
    ),
  );
}
