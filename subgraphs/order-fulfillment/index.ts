import { definePlugin, DomainError, ErrorCode } from '@commerce-coordinator/plugin-sdk';
import { orderFulfillmentClient, OrderFulfillmentRejectedError, type FulfillOrderPayload } from './client.js';
import { orderFulfillmentApiConfig, orderFulfillmentWebhookSecret } from './config.js';
import { handleFulfillmentReport } from './webhook.js';
import type { FulfillOrderInput, RevokeLineItemsInput } from '../../schema/contracts/fulfillment.js';

/**
 * The order-fulfillment Plugin: 2U's Order Fulfillment service (the reference's order_fulfillment app,
 * ADR-0009) as a Service. It implements two Actions the lms Plugin implements, and takes them over where
 * the flag `transition.fulfillment.order-fulfillment-service` is on: progressive `@override`s of that
 * label, which the gateway evaluates per request (the flow's caller, order and service) and records on
 * the step. The reference read its `order_fulfillment_service_forwarding_enabled` flag in a branch of
 * its fulfillment task; here the flows stay as they are and the Action moves.
 *
 * - `fulfillOrder` forwards each line to the service and answers no outcome: the flow's
 *   `completeFulfillment` leaves the lines PROCESSING until
 *   `POST /order-fulfillment/fulfillment-response-webhook` (./webhook.ts) reports them.
 * - `revokeLineItems` (the refund's revoke receiver) revokes each returned line through the service.
 */

/** The reference's default line of business. */
const DEFAULT_LOB = 'edx';
const DEFAULT_MODE = 'verified';

const badInput = (message: string, extensions?: Record<string, unknown>) =>
  new DomainError(ErrorCode.BAD_USER_INPUT, message, extensions);

/** A 4xx from the service is about the request: the caller's (and the flow's) error, not retried. */
async function calling<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof OrderFulfillmentRejectedError)
      throw badInput(`The Order Fulfillment service refused: ${error.message}`, { status: error.status });
    throw error;
  }
}

async function fulfillOrder(_: unknown, { input }: { input: FulfillOrderInput }) {
  const ids = input.lineItems.map((line) => line.lineItemId);
  const duplicates = ids.filter((id, i) => ids.indexOf(id) !== i);
  if (duplicates.length)
    throw badInput(`lineItems lists ${[...new Set(duplicates)].join(', ')} more than once`);
  // Every line is checked before any is sent: a bad line does not leave the others half forwarded.
  const payloads: FulfillOrderPayload[] = input.lineItems.map((line) => {
    const course = line.kind === 'COURSE' ? line.courseRunKey : line.bundleKey;
    if (!course?.trim())
      throw badInput(
        `Line ${line.lineItemId} (${line.kind}) has no ${line.kind === 'COURSE' ? 'courseRunKey' : 'bundleKey'}`,
      );
    return {
      order_id: input.orderId,
      order_number: input.orderNumber,
      line_item_id: line.lineItemId,
      item_quantity: 1,
      fulfillment_type: line.kind === 'COURSE' ? 'enrollment' : 'entitlement',
      course_id: course,
      course_mode: line.mode?.trim() || DEFAULT_MODE,
      edx_lms_user_id: input.lmsUserId,
      edx_lms_username: input.username,
      // As the lms Plugin enrolls: no marketing opt-in the learner did not give at checkout.
      email_opt_in: false,
      provider_id: null,
      source_system: 'commercetools',
      lob: line.lob?.trim() || DEFAULT_LOB,
    };
  });
  const client = orderFulfillmentClient();
  for (const payload of payloads) await calling(client.fulfillOrder(payload));
  // Accepted is not fulfilled: every outcome comes on the webhook.
  return { fulfillments: [] };
}

async function revokeLineItems(_: unknown, { input }: { input: RevokeLineItemsInput }) {
  const client = orderFulfillmentClient();
  let revoked = 0;
  for (const item of input.returnedItems) {
    const courseRunKey = item.kind === 'COURSE' ? item.courseRunKey : (item.bundleKey ?? item.courseRunKey);
    if (!courseRunKey?.trim())
      throw badInput(`Returned item ${item.lineItemId} (${item.kind}) has no course run key or bundle key`);
    // Items already revoked are sent again on a retry: the service answers them as revoked.
    await calling(
      client.revokeLine({
        edx_lms_username: input.username,
        course_run_key: courseRunKey,
        course_mode: item.mode?.trim() || DEFAULT_MODE,
        ...(item.kind === 'BUNDLE' && item.entitlementUuid ? { entitlement_uuid: item.entitlementUuid } : {}),
        lob: item.lob?.trim() || DEFAULT_LOB,
      }),
    );
    revoked++;
  }
  return { revoked };
}

export default definePlugin({
  name: 'order-fulfillment',
  schemaFile: new URL('./schema.graphql', import.meta.url),
  // Steps of the fulfillment flow and the refund's revoke receiver.
  access: {
    Mutation: { fulfillOrder: ['staff', 'service'], revokeLineItems: ['staff', 'service'] },
  },
  resolvers: {
    Mutation: { fulfillOrder, revokeLineItems },
  },
  routes: [
    {
      method: 'POST',
      path: '/order-fulfillment/fulfillment-response-webhook',
      handle: handleFulfillmentReport,
    },
  ],
  config: [orderFulfillmentApiConfig, orderFulfillmentWebhookSecret],
});
