import {
  DomainError,
  ErrorCode,
  requireLearnerOrStaff,
  requirePrincipal,
  type ActionContext,
} from '@commerce-coordinator/plugin-sdk';

/**
 * The PSP Plugins' part of the `OrderPayment` entity (stripe: `stripe`, paypal: `paypal`): who may read
 * a payment's details at its PSP, which payments are whose, and how a page of payments is read.
 */

/** An `OrderPayment` reference as the gateway sends it: the key and the fields a PSP Plugin @requires. */
export interface OrderPaymentReference {
  pspPaymentId: string;
  /** The learner of the order the payment paid, from the order management Plugin. */
  lmsUserId?: number | null;
  /** PayPal: the PayPal order of the capture, from the order management Plugin. */
  pspOrderId?: string | null;
  /** Whose payment it is (STRIPE, PAYPAL, IOS_IAP, ANDROID_IAP), from the order management Plugin. */
  psp?: string | null;
}

/**
 * Who may read a payment's details: staff and Services (who may call the payment Actions
 * directly), and the learner whose order the payment paid. The PSP Plugins cannot
 * tell whose a payment is, so the order management Plugin says it: the reference carries the order's
 * `lmsUserId` (@requires), which only the gateway's query plan builds (`_entities` is not in the
 * supergraph API), from the order management Plugin's answer. A learner thus reads the payment details
 * of the orders they may read, and no others, however the payment was reached.
 */
export function authorizePaymentDetails(ctx: ActionContext, payment: OrderPaymentReference): void {
  const caller = requirePrincipal(ctx.principal);
  if (caller.kind !== 'learner') return;
  // A reference without its owner was not built by the gateway: no learner reads it.
  if (typeof payment.lmsUserId !== 'number')
    throw new DomainError(ErrorCode.FORBIDDEN, 'A learner may read only the payments of their own orders');
  requireLearnerOrStaff(caller, payment.lmsUserId);
}

/** A Stripe PaymentIntent id (pi_…); PayPal capture ids are upper-case letters and digits. */
export const isStripePaymentIntentId = (id: string) => /^pi_[A-Za-z0-9_]+$/.test(id);

/** An id in Stripe's format (pi_…, ch_…, py_…): never a PayPal capture. */
export const isStripeId = (id: string) => /^[a-z]+_[A-Za-z0-9_]+$/.test(id);

/**
 * Reads every key of a DataLoader batch with `read`, at most `concurrency` at a time; a key that fails
 * gets its error, the others their value. Stripe and PayPal have no read of several payments by id, so
 * a page of payments costs one call per distinct payment (DataLoader gives each key once).
 */
export async function readEach<K, V>(
  keys: readonly K[],
  read: (key: K) => Promise<V>,
  concurrency = 8,
): Promise<Array<V | Error>> {
  const results: Array<V | Error> = new Array<V | Error>(keys.length);
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const i = next++;
      try {
        results[i] = await read(keys[i]!);
      } catch (error) {
        results[i] = error instanceof Error ? error : new Error(String(error));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, keys.length) }, worker));
  return results;
}
