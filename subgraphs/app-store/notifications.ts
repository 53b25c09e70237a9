import {
  VerificationException,
  VerificationStatus,
  type JWSTransactionDecodedPayload,
  type ResponseBodyV2DecodedPayload,
} from '@apple/app-store-server-library';
import { z } from 'zod';
import { DomainError, ErrorCode } from '@commerce-coordinator/plugin-sdk';
import { signedDataVerifier } from './client.js';
import { appStoreVerificationConfig } from './config.js';

/**
 * App Store Server Notifications V2, verified: what a route receiving Apple's POST uses. Apple sends
 * `{ signedPayload }`, a JWS whose x5c chain must end at a configured root (Apple Root CA - G3), for
 * this app (bundle id, app Apple ID) and environment; the transaction inside is a JWS of its own,
 * verified the same way.
 */

/** Why a notification is refused: the payload is not Apple's (403) or not a notification at all (400). */
export class AppStoreNotificationError extends DomainError {
  constructor(
    code: typeof ErrorCode.INVALID_SIGNATURE | typeof ErrorCode.BAD_REQUEST,
    message: string,
    readonly reason: string,
  ) {
    super(code, message, { reason });
  }
}

export interface AppStoreNotification {
  /** REFUND, CONSUMPTION_REQUEST, TEST, … */
  notificationType: string;
  subtype?: string;
  /** Unique per notification, the same when Apple resends it: the key to handle it once. */
  notificationUUID: string;
  /** Unix milliseconds. */
  signedDate?: number;
  environment?: string;
  /** The transaction it is about (verified), for notifications that carry one. */
  transaction?: JWSTransactionDecodedPayload;
  /** The whole verified payload. */
  payload: ResponseBodyV2DecodedPayload;
}

/** Apple's body; a notification larger than this is not one. */
const MAX_SIGNED_PAYLOAD = 64 * 1024;
const Body = z.object({ signedPayload: z.string().min(1).max(MAX_SIGNED_PAYLOAD) });

/** The signedPayload of a POST body, or a 400 AppStoreNotificationError. */
export function readAppStoreNotificationBody(rawBody: Buffer | string): string {
  let json: unknown;
  try {
    json = JSON.parse(rawBody.toString());
  } catch {
    throw new AppStoreNotificationError(ErrorCode.BAD_REQUEST, 'The body is not JSON', 'malformed');
  }
  const body = Body.safeParse(json);
  if (!body.success)
    throw new AppStoreNotificationError(ErrorCode.BAD_REQUEST, 'The body has no signedPayload', 'malformed');
  return body.data.signedPayload;
}

const REASONS: Partial<Record<VerificationStatus, string>> = {
  [VerificationStatus.INVALID_APP_IDENTIFIER]: 'the notification is for another app',
  [VerificationStatus.INVALID_ENVIRONMENT]: 'the notification is from another App Store environment',
  [VerificationStatus.INVALID_CHAIN_LENGTH]: 'the signature has no Apple certificate chain',
  [VerificationStatus.INVALID_CERTIFICATE]: 'the certificate chain is invalid or expired',
  [VerificationStatus.VERIFICATION_FAILURE]: 'the signature does not verify against the Apple root',
  [VerificationStatus.RETRYABLE_VERIFICATION_FAILURE]: 'the certificate status could not be checked now',
  [VerificationStatus.FAILURE]: 'the payload is not an App Store notification',
};

function refused(error: unknown): never {
  const status = error instanceof VerificationException ? error.status : VerificationStatus.FAILURE;
  throw new AppStoreNotificationError(
    ErrorCode.INVALID_SIGNATURE,
    `App Store notification refused: ${REASONS[status] ?? 'it does not verify'}`,
    VerificationStatus[status] ?? 'FAILURE',
  );
}

/**
 * Verifies and decodes an App Store Server Notification V2 `signedPayload`. Throws an
 * AppStoreNotificationError (INVALID_SIGNATURE) for anything Apple did not sign for this app.
 */
export async function verifyAppStoreNotification(signedPayload: string): Promise<AppStoreNotification> {
  if (typeof signedPayload !== 'string' || signedPayload.length > MAX_SIGNED_PAYLOAD)
    throw new AppStoreNotificationError(ErrorCode.BAD_REQUEST, 'The signedPayload is not a JWS', 'malformed');
  const verifier = signedDataVerifier(appStoreVerificationConfig());
  let payload: ResponseBodyV2DecodedPayload;
  try {
    payload = await verifier.verifyAndDecodeNotification(signedPayload);
  } catch (error) {
    refused(error);
  }
  if (!payload.notificationType || !payload.notificationUUID)
    throw new AppStoreNotificationError(
      ErrorCode.BAD_REQUEST,
      'The notification has no notificationType or notificationUUID',
      'malformed',
    );
  let transaction: JWSTransactionDecodedPayload | undefined;
  if (payload.data?.signedTransactionInfo) {
    try {
      transaction = await verifier.verifyAndDecodeTransaction(payload.data.signedTransactionInfo);
    } catch (error) {
      refused(error);
    }
  }
  return {
    notificationType: String(payload.notificationType),
    ...(payload.subtype ? { subtype: String(payload.subtype) } : {}),
    notificationUUID: payload.notificationUUID,
    ...(payload.signedDate !== undefined ? { signedDate: payload.signedDate } : {}),
    ...(payload.data?.environment ? { environment: String(payload.data.environment) } : {}),
    ...(transaction ? { transaction } : {}),
    payload,
  };
}
