import { z } from 'zod';
import {
  domainCodeOf,
  ErrorCode,
  httpStatusOf,
  isErrorCode,
  type FilterResult,
  type PluginRuntime,
  type Route,
  type RouteRequest,
  type RouteResponse,
} from '@commerce-coordinator/plugin-sdk';

/**
 * `POST /lms/refund/`: the LMS's `refund_seat` override (ADR-0008 of the reference) asks for the
 * refund of one enrollment or entitlement, as the reference's `RefundView` takes it:
 * - a course enrollment: `{ course_id, username, enrollment_attributes: [{ namespace, name, value }] }`,
 *   the order and line named by the `order.order_id` and `order.line_item_id` attributes fulfillment
 *   wrote on the enrollment;
 * - an entitlement: `{ entitlement_uuid, username, order_number }`, the line being the one of the order
 *   that carries the entitlement (filter `order.refund.lines.requested.v1`, read-only).
 * Then it runs the refund filter (`order.refund.requested.v1`) with an idempotency key taken from the
 * body, so that the LMS retrying a request never refunds twice: the retry answers as the first did.
 *
 * Answers, as the reference's (with our stable `code` beside its messages):
 * - 200 when the return was created (and the refund made), or when the lines were already returned
 *   ("Refund already created for order … with order line item id …");
 * - 400 for what the LMS sent that cannot be refunded: not JSON or not either shape ("Invalid input
 *   provided"), an attribute missing, "Line item does not exist.", an unknown order;
 * - 401 without a JWT, 403 for a learner's (the reference's IsAdminUser: staff and Services);
 * - 409 for a refund another flow of the order is running, or that the PSP refused;
 * - 500-class when a Service failed (the flow's record says which; 503 when it may succeed later).
 */

export const REFUND_FILTER = 'order.refund.requested.v1';
export const REFUND_LINES_FILTER = 'order.refund.lines.requested.v1';

const INVALID_INPUT = 'Invalid input provided';
const NO_ORDER_ID = 'the enrollment_attributes array requires an orders: order_id attribute.';
const NO_LINE_ITEM_ID = 'the enrollment_attributes array requires an orders: line_item_id attribute.';

// What the LMS sends is short: bounded so that nothing unbounded reaches a flow record.
const text = z.string().trim().min(1).max(255);

const courseRefund = z.object({
  course_id: text,
  username: text,
  enrollment_attributes: z
    .array(z.object({ namespace: z.string().max(255), name: z.string().max(255), value: z.unknown() }))
    .max(100),
});

const entitlementRefund = z.object({
  entitlement_uuid: text,
  username: text,
  order_number: text,
});

type Answer = RouteResponse;

const answer = (status: number, body: Record<string, unknown>): Answer => ({ status, body });
const refusal = (code: ErrorCode, message: string, details: Record<string, unknown> = {}): Answer =>
  answer(code === ErrorCode.NOT_FOUND ? 400 : httpStatusOf(code), { code, message, ...details });

/** Lines a flow found already returned: the reference's InvalidFilterType, answered as done. */
const ALREADY_RETURNED = /already returned/i;

export const refundRoute: Route = {
  method: 'POST',
  path: '/lms/refund/',
  async handle(request, runtime) {
    if (!request.principal)
      return refusal(
        ErrorCode.UNAUTHENTICATED,
        'This endpoint needs the bearer JWT of a Service or staff member',
      );
    if (request.principal.kind === 'learner')
      return refusal(ErrorCode.FORBIDDEN, 'This endpoint is for Services and staff only');
    const body = readBody(request);
    if ('issues' in body) return refusal(ErrorCode.BAD_USER_INPUT, INVALID_INPUT, { issues: body.issues });
    try {
      if ('entitlement_uuid' in body) return await refundEntitlement(body, request, runtime);
      return await refundEnrollment(body, request, runtime);
    } catch (error) {
      // "Not now" (another flow of the order, the same request still running, a Service down): the
      // LMS may send the same request again; its key finds the same flow.
      const code = domainCodeOf(error);
      if (code && isErrorCode(code)) return refusal(code, (error as Error).message);
      throw error;
    }
  },
};

type CourseRefund = z.infer<typeof courseRefund>;
type EntitlementRefund = z.infer<typeof entitlementRefund>;

function readBody(request: RouteRequest): CourseRefund | EntitlementRefund | { issues: string[] } {
  let json: unknown;
  try {
    json = JSON.parse(request.rawBody.toString('utf8'));
  } catch {
    return { issues: ['The body is not JSON'] };
  }
  const isEntitlement =
    typeof json === 'object' && json !== null && 'entitlement_uuid' in json && json.entitlement_uuid != null;
  const parsed = (isEntitlement ? entitlementRefund : courseRefund).safeParse(json);
  if (parsed.success) return parsed.data;
  return {
    issues: parsed.error.issues
      .slice(0, 5)
      .map((issue) => `${issue.path.join('.') || '(body)'}: ${issue.message}`),
  };
}

const attributeOf = (body: CourseRefund, name: string): string | undefined => {
  const value = body.enrollment_attributes.find((a) => a.namespace === 'order' && a.name === name)?.value;
  return typeof value === 'string' && value.trim() ? value.trim().slice(0, 255) : undefined;
};

async function refundEnrollment(body: CourseRefund, request: RouteRequest, runtime: PluginRuntime) {
  const orderId = attributeOf(body, 'order_id');
  if (!orderId) return refusal(ErrorCode.BAD_USER_INPUT, NO_ORDER_ID);
  const lineItemId = attributeOf(body, 'line_item_id');
  if (!lineItemId) return refusal(ErrorCode.BAD_USER_INPUT, NO_LINE_ITEM_ID);
  const result = await runtime.runFilter(
    REFUND_FILTER,
    { orderId, lineItemIds: [lineItemId] },
    { idempotencyKey: `lms-refund-seat:${orderId}:${lineItemId}`, principal: request.principal },
  );
  logOutcome(runtime, result, { username: body.username, courseId: body.course_id, orderId, lineItemId });
  return refundAnswer(result, orderId, [lineItemId]);
}

async function refundEntitlement(body: EntitlementRefund, request: RouteRequest, runtime: PluginRuntime) {
  // The refund flow runs one at a time per order, by its id: find the order (and check the line) first.
  const lines = await runtime.runFilter(
    REFUND_LINES_FILTER,
    { orderNumber: body.order_number, entitlementUuid: body.entitlement_uuid },
    { principal: request.principal },
  );
  if (lines.error) {
    logOutcome(runtime, lines, { username: body.username, orderNumber: body.order_number });
    return failureAnswer(lines);
  }
  const orderId = String(lines.output?.orderId ?? '');
  const lineItemIds = (lines.output?.lineItemIds ?? []) as string[];
  const result = await runtime.runFilter(
    REFUND_FILTER,
    { orderId, entitlementUuid: body.entitlement_uuid },
    {
      idempotencyKey: `lms-refund-seat:${body.order_number}:${body.entitlement_uuid}`,
      principal: request.principal,
    },
  );
  logOutcome(runtime, result, {
    username: body.username,
    orderNumber: body.order_number,
    entitlementUuid: body.entitlement_uuid,
  });
  return refundAnswer(result, orderId, lineItemIds);
}

function refundAnswer(result: FilterResult, orderId: string, lineItemIds: readonly string[]): Answer {
  const output = result.output ?? {};
  const already = `Refund already created for order ${orderId} with order line item id ${lineItemIds.join(', ')}`;
  if (!result.error) {
    // A flow that found the lines already returned and answered it as done says so.
    const repeated =
      output.settlement === 'ALREADY_RETURNED' ||
      output.refundStatus === 'already_refunded' ||
      output.refundStatus === 'already_returned';
    return answer(200, {
      message: repeated
        ? already
        : `Refund created for order ${orderId} with order line item id ${lineItemIds.join(', ')}`,
      flowId: result.flowId,
      status: result.status,
      orderId,
      lineItemIds,
      // The refund as the requestRefund mutation types it, not the flow's whole data.
      ...Object.fromEntries(
        ['returnId', 'refundAmountCents', 'currency', 'pspRefundId', 'refundStatus']
          .filter((field) => output[field] !== undefined)
          .map((field) => [field, output[field]]),
      ),
    });
  }
  if (result.error.code === ErrorCode.CONFLICT && ALREADY_RETURNED.test(result.error.message))
    return answer(200, {
      message: already,
      flowId: result.flowId,
      status: result.status,
      orderId,
      lineItemIds,
    });
  return failureAnswer(result);
}

/** A flow refused before it ran, or failed: the caller's mistake as 4xx, a Service's failure as 5xx. */
function failureAnswer(result: FilterResult): Answer {
  const { code, message } = result.error!;
  const details = { flowId: result.flowId || undefined, status: result.status };
  if (!isErrorCode(code)) return answer(500, { code: ErrorCode.INTERNAL_SERVER_ERROR, message, ...details });
  switch (code) {
    case ErrorCode.BAD_USER_INPUT:
    case ErrorCode.BAD_REQUEST:
    case ErrorCode.NOT_FOUND:
    case ErrorCode.IDEMPOTENCY_KEY_REUSED:
    case ErrorCode.UNAUTHENTICATED:
    case ErrorCode.FORBIDDEN:
    case ErrorCode.CONFLICT:
    case ErrorCode.ORDER_BUSY:
    case ErrorCode.FLOW_IN_PROGRESS:
    case ErrorCode.FLOW_CANCELLED:
      return refusal(code, message, details);
    case ErrorCode.SERVICE_UNAVAILABLE:
      return answer(503, { code, message, ...details });
    default:
      // A step that failed for good (a Service's error): the reference's 500.
      return answer(500, { code, message, ...details });
  }
}

function logOutcome(runtime: PluginRuntime, result: FilterResult, about: Record<string, unknown>): void {
  runtime.logger.info(
    { ...about, flowId: result.flowId, status: result.status, error: result.error },
    'LMS refund request (POST /lms/refund/) processed',
  );
}
