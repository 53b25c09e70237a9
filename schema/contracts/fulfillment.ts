/**
 * The "fulfill an order" and "revoke returned lines" Action contracts, shared by their Implementations
 * (lms, and order-fulfillment where its flag is on): the inputs they take (`FulfillOrderInput`,
 * `RevokeLineItemsInput` in their SDL, which must stay identical for the @override to carry every field).
 */
export type LineItemKind = 'COURSE' | 'BUNDLE';

export interface FulfillOrderInput {
  orderId: string;
  orderNumber: string;
  lmsUserId: number;
  username: string;
  /** ISO 8601: the enrollments' order.date_placed attribute. */
  datePlaced?: string | null;
  lineItems: Array<{
    lineItemId: string;
    kind: LineItemKind;
    courseRunKey?: string | null;
    bundleKey?: string | null;
    mode?: string | null;
    /** The line of business (the Order Fulfillment service's); edx when absent. */
    lob?: string | null;
    /** A credit-mode line's credit provider (credit.provider_id). */
    creditProvider?: string | null;
  }>;
}

export interface RevokeLineItemsInput {
  orderId: string;
  lmsUserId: number;
  username: string;
  returnedItems: Array<{
    lineItemId: string;
    kind: LineItemKind;
    courseRunKey?: string | null;
    bundleKey?: string | null;
    entitlementUuid?: string | null;
    mode?: string | null;
    lob?: string | null;
  }>;
}
