import { OAuth2Client } from 'google-auth-library';
import { z } from 'zod';
import { DomainError, ErrorCode } from '@commerce-coordinator/plugin-sdk';
import { googlePlayPushConfig, type GooglePlayPushConfig } from './config.js';

/**
 * Google Play's real-time developer notifications as Pub/Sub pushes them, verified: what a route
 * receiving the push uses. Pub/Sub POSTs `{ message: { data, messageId, publishTime }, subscription }`
 * with `Authorization: Bearer <OIDC token>`, which google-auth-library checks: Google's signature (keys
 * from GOOGLE_PUBSUB_CERTS_URL), issuer accounts.google.com, audience GOOGLE_PUBSUB_AUDIENCE, not
 * expired; and here, the push service account (GOOGLE_PUBSUB_SERVICE_ACCOUNT_EMAIL, verified). Both
 * that and GOOGLE_PLAY_REFUND_SUBSCRIPTION are required: a token Google signed with our audience is what
 * any Google Cloud project's push subscription to our endpoint gets.
 */

/** Why a push is refused: not Google's (403 INVALID_SIGNATURE) or not a Pub/Sub push (400 BAD_REQUEST). */
export class PubSubPushError extends DomainError {
  constructor(
    code: typeof ErrorCode.INVALID_SIGNATURE | typeof ErrorCode.BAD_REQUEST,
    message: string,
    readonly reason: string,
  ) {
    super(code, message, { reason });
  }
}

/** A DeveloperNotification (https://developer.android.com/google/play/billing/rtdn-reference). */
const DeveloperNotification = z
  .object({
    version: z.string().optional(),
    packageName: z.string(),
    eventTimeMillis: z.coerce.string().optional(),
    voidedPurchaseNotification: z
      .object({
        purchaseToken: z.string(),
        orderId: z.string(),
        /** 1 subscription, 2 one-time product. */
        productType: z.number().int(),
        /** 1 full refund, 2 quantity-based partial refund. */
        refundType: z.number().int(),
      })
      .loose()
      .optional(),
    oneTimeProductNotification: z.record(z.string(), z.unknown()).optional(),
    subscriptionNotification: z.record(z.string(), z.unknown()).optional(),
    testNotification: z.record(z.string(), z.unknown()).optional(),
  })
  .loose();
export type DeveloperNotification = z.infer<typeof DeveloperNotification>;

const MAX_PUSH_BODY = 64 * 1024;

const Push = z.object({
  message: z
    .object({
      data: z.base64().max(MAX_PUSH_BODY),
      messageId: z.string().min(1).max(200).optional(),
      message_id: z.string().min(1).max(200).optional(),
      publishTime: z.string().optional(),
      attributes: z.record(z.string(), z.string()).optional(),
    })
    .refine((m) => m.messageId ?? m.message_id, { message: 'messageId is required' }),
  subscription: z.string().min(1).max(300),
});

export interface PubSubPush {
  /** Unique per message, the same when Pub/Sub redelivers it: the key to handle it once. */
  messageId: string;
  /** The subscription that pushed it (projects/…/subscriptions/…). */
  subscription: string;
  /** Whether that is GOOGLE_PLAY_REFUND_SUBSCRIPTION. */
  isRefundSubscription: boolean;
  publishTime?: string;
  notification: DeveloperNotification;
}

let cachedVerifier: { key: string; client: OAuth2Client } | undefined;

function verifier(config: GooglePlayPushConfig): OAuth2Client {
  const key = config.certsUrl.href;
  if (cachedVerifier?.key !== key)
    cachedVerifier = {
      key,
      client: new OAuth2Client({ endpoints: { oauth2FederatedSignonPemCertsUrl: config.certsUrl.href } }),
    };
  return cachedVerifier.client;
}

const refuse = (message: string, reason: string): never => {
  throw new PubSubPushError(ErrorCode.INVALID_SIGNATURE, message, reason);
};
const malformed = (message: string): never => {
  throw new PubSubPushError(ErrorCode.BAD_REQUEST, message, 'malformed');
};

/**
 * Verifies a Pub/Sub push's OIDC token and reads its real-time developer notification. Throws the
 * ConfigError of googlePlayPushConfig, before reading anything, when a setting is missing; else a
 * PubSubPushError: INVALID_SIGNATURE when the token is missing, forged, expired, for another audience or
 * from another service account; BAD_REQUEST when the body is not a push of a developer notification.
 */
export async function verifyPubSubPush(
  authorization: string | undefined,
  body: Buffer | string,
): Promise<PubSubPush> {
  const config = googlePlayPushConfig();
  const idToken = /^Bearer ([A-Za-z0-9_\-.]+)$/.exec(authorization ?? '')?.[1];
  if (!idToken || idToken.length > 8192) refuse('The push has no bearer token', 'missing');
  let claims: { email?: string; email_verified?: boolean } | undefined;
  try {
    const ticket = await verifier(config).verifyIdToken({ idToken: idToken!, audience: config.audience });
    claims = ticket.getPayload();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // google-auth-library says why in its message; the certificates not loading is not the caller's fault.
    if (
      /certificates|fetch|ECONN|timeout/i.test(message) &&
      !/Invalid token signature|No pem found/i.test(message)
    )
      throw new DomainError(
        ErrorCode.SERVICE_UNAVAILABLE,
        `Google's signing certificates could not be read: ${message}`,
      );
    // The library's message may quote the token's claims: only its first clause is said.
    refuse(
      `The push's token does not verify: ${message.split(/\n|: \{/)[0]!.slice(0, 200)}`,
      'invalid-token',
    );
  }
  if (claims?.email !== config.serviceAccountEmail || claims.email_verified !== true)
    refuse("The push's token is not the push subscription's service account", 'wrong-service-account');

  if (body.length > MAX_PUSH_BODY * 2) malformed('The push body is too large');
  let json: unknown;
  try {
    json = JSON.parse(body.toString());
  } catch {
    malformed('The push body is not JSON');
  }
  const push = Push.safeParse(json);
  if (!push.success) return malformed('The body is not a Pub/Sub push message');
  let notification: unknown;
  try {
    notification = JSON.parse(Buffer.from(push.data.message.data, 'base64').toString('utf8'));
  } catch {
    malformed('The message data is not JSON');
  }
  const developerNotification = DeveloperNotification.safeParse(notification);
  if (!developerNotification.success)
    return malformed('The message is not a Google Play developer notification');
  const { message, subscription } = push.data;
  return {
    messageId: (message.messageId ?? message.message_id)!,
    subscription,
    isRefundSubscription: config.subscription === subscription,
    ...(message.publishTime ? { publishTime: message.publishTime } : {}),
    notification: developerNotification.data,
  };
}
