import { DomainError, ErrorCode, type ActionContext } from '@commerce-coordinator/plugin-sdk';
import { requireOrderAccess } from './actions.js';
import { orderManagementClient, type CtOrder } from './client.js';
import { lineView, lmsUserIdOf } from './model.js';

/**
 * The lines a refund request names, as the refund flow's createReturn takes them (an order id and its
 * line item ids). The LMS names them two ways, as the reference's `/lms/refund/` takes them: a course
 * refund by the order's id and line item id (the enrollment's attributes), an entitlement refund by the
 * order's number and the entitlement's UUID (`get_order_line_item_info_from_entitlement_uuid`).
 */
export interface RefundLinesInput {
  orderId?: string | null;
  orderNumber?: string | null;
  lineItemIds?: string[] | null;
  entitlementUuid?: string | null;
}

/** The reference's answer for an entitlement no line of the order carries. */
export const NO_SUCH_LINE = 'Line item does not exist.';

const badInput = (message: string, details?: Record<string, unknown>) =>
  new DomainError(ErrorCode.BAD_USER_INPUT, message, details);

export async function refundLines(input: RefundLinesInput, ctx: ActionContext) {
  const { orderId, orderNumber, lineItemIds, entitlementUuid } = input;
  if (!orderId && !orderNumber) throw badInput('Name the order: orderId or orderNumber');
  if (lineItemIds && entitlementUuid)
    throw badInput('Name the lines by lineItemIds or by entitlementUuid, not both');
  if (!lineItemIds && !entitlementUuid)
    throw badInput('Name the lines to refund: lineItemIds, or the entitlementUuid of one');
  if (entitlementUuid !== undefined && entitlementUuid !== null && !entitlementUuid.trim())
    throw badInput('entitlementUuid is empty');

  // Lines named by id need no read: createReturn reads the order and checks them, in the flow.
  if (lineItemIds && orderId) return { orderId, lineItemIds };

  const order = await readOrder(orderId, orderNumber);
  requireOrderAccess(ctx, lmsUserIdOf(order));
  if (lineItemIds) return { orderId: order.id, lineItemIds };
  const lines = order.lineItems.filter((line) => lineView(line).entitlementUuid === entitlementUuid);
  if (!lines.length)
    throw badInput(NO_SUCH_LINE, { orderNumber: order.orderNumber ?? null, entitlementUuid });
  return { orderId: order.id, lineItemIds: lines.map((line) => line.id) };
}

/** The order by id or by number; both given must be the same order. */
async function readOrder(orderId?: string | null, orderNumber?: string | null): Promise<CtOrder> {
  const client = orderManagementClient();
  const order = orderId
    ? await client.getOrder(orderId)
    : await client.get('orders', `order-number=${encodeURIComponent(orderNumber!)}`);
  const named = orderId ?? orderNumber!;
  if (!order) throw new DomainError(ErrorCode.NOT_FOUND, `No order ${named}`, { order: named });
  if (orderId && orderNumber && order.orderNumber !== orderNumber)
    throw badInput(`Order ${orderId} is not order ${orderNumber}`);
  return order;
}
