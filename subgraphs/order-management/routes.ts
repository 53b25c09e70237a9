import { z } from 'zod';
import {
  domainCodeOf,
  ErrorCode,
  httpStatusOf,
  isErrorCode,
  type PluginRuntime,
  type Route,
  type RouteRequest,
  type RouteResponse,
} from '@commerce-coordinator/plugin-sdk';
import { orderManagementClient } from './client.js';
import { orderView } from './model.js';
import { orderKeyProblem } from './order-keys.js';

/**
 * The order management Service's events, delivered by its subscription through an EventBridge-like
 * bus: `{ id: <event id>, detail: <commercetools message> }`. The order is `detail.resource.id` in a
 * commercetools message; a bare `detail.id` is accepted as the order id too.
 */
const envelopeSchema = z.object({
  id: z.string().min(1),
  detail: z.object({
    id: z.string().min(1),
    resource: z.object({ id: z.string().min(1) }).optional(),
  }),
});

type Envelope = z.infer<typeof envelopeSchema>;

const error = (status: number, code: string, message: string): RouteResponse => ({
  status,
  body: { code, message },
});

/**
 * Only the Service (a service JWT) or staff may deliver events; then the envelope must be well formed,
 * and name an order id that an order can have (checked here, before any route asks the Service).
 */
function accept(request: RouteRequest): { envelope: Envelope; orderId: string } | RouteResponse {
  if (!request.principal)
    return error(
      401,
      ErrorCode.UNAUTHENTICATED,
      'This endpoint needs the bearer JWT of a Service or staff member',
    );
  if (request.principal.kind === 'learner')
    return error(403, ErrorCode.FORBIDDEN, 'This endpoint is for Services and staff only');
  let json: unknown;
  try {
    json = JSON.parse(request.rawBody.toString('utf8'));
  } catch {
    return error(400, ErrorCode.BAD_USER_INPUT, 'The body is not JSON');
  }
  const parsed = envelopeSchema.safeParse(json);
  if (!parsed.success)
    return error(
      400,
      ErrorCode.BAD_USER_INPUT,
      `The body is not an event envelope { id, detail: { id } }: ${parsed.error.issues
        .map((issue) => `${issue.path.join('.') || '(body)'}: ${issue.message}`)
        .join('; ')}`,
    );
  const envelope = parsed.data;
  const orderId = envelope.detail.resource?.id ?? envelope.detail.id;
  const problem = orderKeyProblem(orderId);
  if (problem) return error(400, ErrorCode.BAD_USER_INPUT, problem);
  return { envelope, orderId };
}

const isResponse = (value: object): value is RouteResponse => 'status' in value;

/**
 * Runs the flow an event asks for, once per idempotency key. A flow that ran answers 200 however it
 * ended (its record says); one refused before it ran (bad input, a caller it does not admit) is an error
 * answer with the status of why; the same event's flow running elsewhere is accepted (202): it will
 * finish there.
 */
async function runEventFlow(
  runtime: PluginRuntime,
  request: RouteRequest,
  filter: string,
  input: Record<string, unknown>,
  idempotencyKey: string,
): Promise<RouteResponse> {
  try {
    const result = await runtime.runFilter(filter, input, { idempotencyKey, principal: request.principal });
    const { error: refusal } = result;
    if (result.status === 'REJECTED' && refusal && isErrorCode(refusal.code))
      return error(httpStatusOf(refusal.code), refusal.code, refusal.message);
    return {
      status: 200,
      body: {
        flowId: result.flowId,
        status: result.status,
        ...(result.error ? { error: result.error } : {}),
      },
    };
  } catch (failure) {
    if (domainCodeOf(failure) === ErrorCode.FLOW_IN_PROGRESS)
      return error(202, ErrorCode.FLOW_IN_PROGRESS, (failure as Error).message);
    throw failure;
  }
}

/** An order was placed (a line item moved to the pending state): run the fulfillment flow. */
export const fulfillRoute: Route = {
  method: 'POST',
  path: '/order-management/fulfill',
  // Where the order management Service's subscription delivers to the reference system today.
  aliases: ['/commercetools/fulfill', '/orders/fulfill'],
  async handle(request, runtime) {
    const accepted = accept(request);
    if (isResponse(accepted)) return accepted;
    // One flow per event: a redelivered event finds its flow by the idempotency key.
    return runEventFlow(
      runtime,
      request,
      'order.fulfillment.requested.v1',
      { orderId: accepted.orderId },
      `fulfill:${accepted.envelope.id}`,
    );
  },
};

/** An order's state changed: if the order is now sanctioned, signal it so the learner is deactivated. */
export const sanctionedRoute: Route = {
  method: 'POST',
  path: '/order-management/sanctioned',
  aliases: ['/commercetools/sanctioned', '/orders/sanctioned'],
  async handle(request, runtime) {
    const accepted = accept(request);
    if (isResponse(accepted)) return accepted;
    const order = await orderManagementClient().getOrder(accepted.orderId);
    if (!order) return error(404, ErrorCode.NOT_FOUND, `No order ${accepted.orderId}`);
    const view = orderView(order);
    if (view.state !== 'SANCTIONED') {
      // The Service announces sanctions only: an event about an order that is not sanctioned is a
      // misrouted or stale event, which the operators should see (the reference logs an error).
      runtime.logger.warn(
        { orderId: view.id, orderNumber: view.orderNumber, state: view.state, eventId: accepted.envelope.id },
        'order state event: the order is not sanctioned, nothing deactivated',
      );
      return { status: 200, body: { published: false, state: view.state } };
    }
    const { duplicate } = await runtime.publish(
      'order.sanctioned.v1',
      { orderId: view.id, lmsUserId: view.lmsUserId, username: view.username },
      { id: accepted.envelope.id },
    );
    return { status: 200, body: { published: true, duplicate } };
  },
};

/**
 * commercetools' ReturnInfoAdded message: `detail.returnInfo` is the return added to the order
 * (`detail.resource.id`), by the Coordinator's own refund flow or by staff in the Merchant Center.
 */
const returnInfoAddedSchema = z.object({
  returnInfo: z.object({
    returnTrackingId: z.string().min(1).optional(),
    items: z
      .array(z.object({ id: z.string().min(1), lineItemId: z.string().min(1).optional() }).passthrough())
      .min(1)
      .max(500),
  }),
});

/**
 * A return was added to an order: its items go through the refund flow of that return (createReturn
 * adopts it, never adds a second). One flow per return, whatever event announces it: a redelivered
 * event, or another event for the same return, finds the recorded flow, so a return is refunded once.
 * The Coordinator's own returns come back here too; their flow refunded them, so they are answered as
 * already returned.
 */
export const returnedRoute: Route = {
  method: 'POST',
  path: '/order-management/returned',
  aliases: ['/commercetools/returned', '/orders/returned'],
  async handle(request, runtime) {
    const accepted = accept(request);
    if (isResponse(accepted)) return accepted;
    // The envelope's schema keeps only what every event has: the message itself is read from the body.
    const body = JSON.parse(request.rawBody.toString('utf8')) as { detail?: unknown };
    const parsed = returnInfoAddedSchema.safeParse(body.detail);
    if (!parsed.success)
      return error(
        400,
        ErrorCode.BAD_USER_INPUT,
        `The event is not a ReturnInfoAdded message: ${parsed.error.issues
          .map((issue) => `detail.${issue.path.join('.')}: ${issue.message}`)
          .join('; ')}`,
      );
    const { returnInfo } = parsed.data;
    const lineItemIds = [...new Set(returnInfo.items.flatMap((i) => (i.lineItemId ? [i.lineItemId] : [])))];
    if (!lineItemIds.length)
      return error(400, ErrorCode.BAD_USER_INPUT, 'The return has no line item returns (lineItemId)');
    // No flow for an event about an order the Service does not have (a forged or stale event).
    if (!(await orderManagementClient().getOrder(accepted.orderId)))
      return error(404, ErrorCode.NOT_FOUND, `No order ${accepted.orderId}`);
    // The id a return is known by (model.ts returnIdOf): its tracking id, else its first item's id.
    const returnId = returnInfo.returnTrackingId ?? returnInfo.items[0]!.id;
    return runEventFlow(
      runtime,
      request,
      'order.refund.requested.v1',
      { orderId: accepted.orderId, lineItemIds, returnId },
      `returned:${accepted.orderId}:${returnId}`,
    );
  },
};
