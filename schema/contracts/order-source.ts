/**
 * Whose order a PSP payment paid. The PSP accounts are shared with the legacy ecommerce service (its
 * orders are numbered `EDX-…`) and with other source systems that tag their payments with their own
 * name: a refund of such a payment is theirs to record. The Coordinator records only refunds of its own
 * orders, and acknowledges the others without effect (the PSP would retry a refusal for days, and a
 * receiver would fail on a payment the order management Service never had, then dead-letter it).
 */

/** A legacy ecommerce order number, as the reference's `is_legacy_order` recognises it. */
export const LEGACY_ORDER_NUMBER = /^EDX-\d{1,6}$/;

/** What a payment says about its order: its number and the system that created it, when it says. */
export interface PaymentOrigin {
  orderNumber?: string | null;
  sourceSystem?: string | null;
}

/**
 * Why a payment's order is not the Coordinator's, or undefined when it is (or the payment does not say:
 * a payment without a tag is looked up, and a missing order stays the error it is).
 */
export function foreignOrderReason(origin: PaymentOrigin, ourSourceSystem: string): string | undefined {
  if (origin.orderNumber && LEGACY_ORDER_NUMBER.test(origin.orderNumber))
    return `order ${origin.orderNumber} is a legacy ecommerce order`;
  if (origin.sourceSystem && origin.sourceSystem !== ourSourceSystem)
    return `the payment is of source system '${origin.sourceSystem}', not '${ourSourceSystem}'`;
  return undefined;
}
