// @ts-check
// The confirmation every operator action goes through: what it will do, and why (the reason is
// recorded with the action and required by the gateway too).
import { byId, replace } from './dom.js';

/**
 * @typedef {{
 *   title: string,
 *   summary: string,
 *   confirmLabel: string,
 *   perform: (reason: string) => Promise<string>,
 * }} Confirmation
 */

/**
 * Opens the dialog; resolves with what `perform` said it did, or undefined when the operator cancelled.
 * A refused action keeps the dialog open with the gateway's code and message.
 * @param {Confirmation} confirmation
 * @returns {Promise<string | undefined>}
 */
export function confirmAction(confirmation) {
  const dialog = byId('confirm', HTMLDialogElement);
  const form = byId('confirm-form', HTMLFormElement);
  const reason = byId('confirm-reason', HTMLTextAreaElement);
  const problem = byId('confirm-error', HTMLParagraphElement);
  const ok = byId('confirm-ok', HTMLButtonElement);
  const cancel = byId('confirm-cancel', HTMLButtonElement);
  replace(byId('confirm-title', HTMLHeadingElement), confirmation.title);
  replace(byId('confirm-summary', HTMLParagraphElement), confirmation.summary);
  replace(ok, confirmation.confirmLabel);
  reason.value = '';
  problem.hidden = true;
  ok.disabled = false;
  dialog.showModal();
  reason.focus();

  return new Promise((resolve) => {
    /** @param {string | undefined} outcome */
    const finish = (outcome) => {
      form.onsubmit = null;
      cancel.onclick = null;
      dialog.oncancel = null;
      dialog.close();
      resolve(outcome);
    };
    cancel.onclick = () => finish(undefined);
    dialog.oncancel = () => finish(undefined);
    form.onsubmit = async (event) => {
      event.preventDefault();
      const why = reason.value.trim();
      if (!why) {
        replace(problem, 'Say why: the reason is recorded with the action.');
        problem.hidden = false;
        return;
      }
      ok.disabled = true;
      try {
        finish(await confirmation.perform(why));
      } catch (error) {
        const e = /** @type {{ code?: string, message?: string }} */ (error);
        replace(problem, `${e.code ?? 'ERROR'}: ${e.message ?? String(error)}`);
        problem.hidden = false;
        ok.disabled = false;
      }
    };
  });
}
