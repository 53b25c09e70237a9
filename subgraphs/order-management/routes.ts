import { z } from 'zod';
import {
  domainCodeOf,
  ErrorCode,
  httpStatusOf,
  isErrorCode,
  type Route,
  type RouteRequest,
  type RouteResponse,
} from '@commerce-coordinator/plugin-sdk';
import { orderManagementClient } from './client.js';
import { orderView } from './model.js';

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

/** Only the Service (a service JWT) or staff may deliver events; then the envelope must be well formed. */
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
  return { envelope, orderId: envelope.detail.resource?.id ?? envelope.detail.id };
}

const isResponse = (value: object): value is RouteResponse => 'status' in value;

/** An order was placed (a line item moved to the pending state): run the fulfillment flow. */
export const fulfillRoute: Route = {
  method: 'POST',
  path: '/order-management/fulfill',
  // Where the order management Service's subscription delivers to the reference system today.
  aliases: ['/commercetools/fulfill', '/orders/fulfill'],
  async handle(request, runtime) {
    const accepted = accept(request);
    if (isResponse(accepted)) return accepted;
    try {
      // One flow per event: a redelivered event finds its flow by the idempotency key.
      const result = await runtime.runFilter(
        'order.fulfillment.requested.v1',
        { orderId: accepted.orderId },
        { idempotencyKey: `fulfill:${accepted.envelope.id}`, principal: request.principal },
      );
      // A flow that ran answers 200 however it ended (its record says); one refused before it ran
      // (bad input, a caller it does not admit) is an error answer, with the status of why.
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
      // The same event's flow runs elsewhere: accepted, it will finish there.
      if (domainCodeOf(failure) === ErrorCode.FLOW_IN_PROGRESS)
        return error(202, ErrorCode.FLOW_IN_PROGRESS, (failure as Error).message);
      throw failure;
    }
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
      runtime.logger.info(
        { orderId: view.id, state: view.state },
        'order state event: the order is not sanctioned',
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
