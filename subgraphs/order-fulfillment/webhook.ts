import { createHash } from 'node:crypto';
import { z } from 'zod';
import {
  domainCodeOf,
  ErrorCode,
  httpStatusOf,
  isErrorCode,
  isTransient,
  type PluginRuntime,
  type Principal,
  type RouteRequest,
  type RouteResponse,
} from '@commerce-coordinator/plugin-sdk';
import { orderFulfillmentWebhookSecret } from './config.js';
import { SIGNATURE_HEADER, signatureProblem, TIMESTAMP_HEADER } from './signature.js';

/** The filter the completion webhook runs (connections.yaml). */
export const COMPLETION_FILTER = 'order.fulfillment.reported.v1';

/** A delivery whose signature checks out acts as the Order Fulfillment service. */
export const ORDER_FULFILLMENT_PRINCIPAL: Principal = {
  kind: 'service',
  subject: 'order-fulfillment',
  service: 'order-fulfillment',
};

const id = z.string().trim().min(1).max(200);

/**
 * The reference's `FulfillOrderWebhookSerializer` as the service sends it, in an EventBridge-style
 * envelope (`detail`). Fields this Coordinator does not use (order_version, item_quantity,
 * line_item_state_id: it re-reads the order) are accepted and ignored.
 */
const reportSchema = z.object({
  detail: z.object({
    fulfillment_type: z.enum(['enrollment', 'entitlement']),
    is_fulfilled: z.boolean(),
    entitlement_uuid: z.string().trim().max(100).nullish(),
    order_id: id,
    line_item_id: id,
  }),
});

const refuse = (code: ErrorCode, message: string, extra: Record<string, unknown> = {}): RouteResponse => ({
  status: httpStatusOf(code),
  body: { code, message, ...extra },
});

/**
 * `POST /order-fulfillment/fulfillment-response-webhook`: the Order Fulfillment service reports how a
 * forwarded line ended; the flow `order.fulfillment.reported.v1` moves it to Success or Failure.
 *
 * - Unsigned, forged, or signed more than 120 s from now either way: 403 INVALID_SIGNATURE, nothing run.
 * - A signed body that is not a report: 400 BAD_REQUEST. An entitlement reported fulfilled without its
 *   UUID: 400 BAD_USER_INPUT (the reference's "Entitlement uuid is required…"), nothing run: the line
 *   would be Success with no entitlement to refund later. An enrollment needs no UUID.
 * - The same delivery again (the same timestamp and body, a replay within the window) answers the
 *   first run's record without running again. A redelivery signed anew runs again, and changes nothing
 *   already done: a Success line never moves, a Failure line is not written twice.
 * - The order busy or order management unreachable: 503, the service redelivers.
 */
export async function handleFulfillmentReport(
  request: RouteRequest,
  runtime: PluginRuntime,
): Promise<RouteResponse> {
  const timestamp = request.headers[TIMESTAMP_HEADER];
  const problem = signatureProblem(
    request.rawBody,
    { timestamp, signature: request.headers[SIGNATURE_HEADER] },
    orderFulfillmentWebhookSecret(),
  );
  if (problem) {
    runtime.logger.warn({ problem }, 'order fulfillment webhook: signature refused');
    return refuse(ErrorCode.INVALID_SIGNATURE, problem);
  }

  let json: unknown;
  try {
    json = JSON.parse(request.rawBody.toString('utf8'));
  } catch {
    return refuse(ErrorCode.BAD_REQUEST, 'The body is not JSON');
  }
  const parsed = reportSchema.safeParse(json);
  if (!parsed.success)
    return refuse(
      ErrorCode.BAD_REQUEST,
      `The body is not a fulfillment report: ${parsed.error.issues
        .slice(0, 3)
        .map((issue) => `${issue.path.join('.') || '(the body)'}: ${issue.message}`)
        .join('; ')}`,
    );
  const report = parsed.data.detail;
  const entitlementUuid = report.entitlement_uuid || undefined;
  if (report.fulfillment_type === 'entitlement' && report.is_fulfilled && !entitlementUuid)
    return refuse(ErrorCode.BAD_USER_INPUT, 'Entitlement uuid is required for Entitlement Fulfillment.');

  // One flow per delivery: the signed timestamp and the body (with the event id) name it.
  const delivery = createHash('sha256')
    .update(`${String(timestamp)}.`)
    .update(request.rawBody)
    .digest('hex');
  try {
    const result = await runtime.runFilter(
      COMPLETION_FILTER,
      {
        orderId: report.order_id,
        fulfillments: [
          {
            lineItemId: report.line_item_id,
            fulfilled: report.is_fulfilled,
            ...(entitlementUuid ? { entitlementUuid } : {}),
          },
        ],
      },
      { idempotencyKey: `of-report:${delivery}`, principal: ORDER_FULFILLMENT_PRINCIPAL },
    );
    if (result.status === 'COMPLETED')
      return {
        status: 200,
        body: {
          message: 'Order Fulfillment Response event processed successfully.',
          flowId: result.flowId,
          lineItemStates: result.output?.lineItemStates ?? null,
        },
      };
    const code = result.error?.code;
    // Not now (the order busy, order management down): the service delivers again.
    const known =
      code !== undefined && isErrorCode(code) && !isTransient(code) && code !== ErrorCode.STEP_FAILED;
    return refuse(
      known ? code : ErrorCode.SERVICE_UNAVAILABLE,
      result.error?.message ?? `The report's flow ended ${result.status}`,
      { flowId: result.flowId },
    );
  } catch (failure) {
    const code = domainCodeOf(failure);
    if (code && isErrorCode(code)) return refuse(code, (failure as Error).message);
    throw failure;
  }
}
