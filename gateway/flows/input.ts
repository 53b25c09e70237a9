import { KEY_MAX_LENGTH } from '@commerce-coordinator/plugin-sdk';
import { DomainError, ErrorCode } from '../errors.js';

/**
 * What a flow's record can hold, checked before a flow starts so that input the database would refuse
 * is BAD_USER_INPUT — never a half-written record or a database error. Keys and order ids are indexed
 * (a B-tree entry holds at most about 2.7 KB); jsonb and text refuse NUL and lone surrogates.
 */
export const FlowInputLimits = {
  /** Characters of an idempotency key. */
  idempotencyKey: KEY_MAX_LENGTH,
  /** Characters of the order id a filter's orderKey names. */
  orderId: KEY_MAX_LENGTH,
  /** Bytes of the input as JSON. */
  inputBytes: 256 * 1024,
} as const;

/** NUL, and UTF-16 surrogates without their pair: what PostgreSQL's text and jsonb refuse. */
// eslint-disable-next-line no-control-regex -- NUL is exactly what this looks for
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const EVERY_UNSTORABLE = new RegExp(UNSTORABLE.source, 'g');

/** `text` with U+FFFD in place of each character PostgreSQL cannot store. */
export const replaceUnstorable = (text: string): string => text.replace(EVERY_UNSTORABLE, '\ufffd');

/** The path of the first string (value or key) in `value` that PostgreSQL cannot store, if any. */
export function unstorablePath(value: unknown, path = '$'): string | undefined {
  if (typeof value === 'string') return UNSTORABLE.test(value) ? path : undefined;
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = unstorablePath(item, `${path}[${i}]`);
      if (found) return found;
    }
    return undefined;
  }
  if (value && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (UNSTORABLE.test(key)) return `${path} (a key)`;
      const found = unstorablePath(item, `${path}.${key}`);
      if (found) return found;
    }
  }
  return undefined;
}

const badInput = (message: string, details?: Record<string, unknown>) =>
  new DomainError(ErrorCode.BAD_USER_INPUT, message, details);

/**
 * Refuses the first of an API call's `args` (strings, or lists of them) that PostgreSQL cannot hold
 * or search by: a query or a record with it fails in the database, as an internal error.
 */
export function checkStorableArguments(args: Record<string, unknown>): void {
  for (const [name, value] of Object.entries(args))
    if (value != null && unstorablePath(value))
      throw badInput(`${name} holds a NUL character or an unpaired surrogate`);
}

/** Refuses a request to run a flow whose input, order id or idempotency key the record cannot hold. */
export function checkFlowRequest(request: {
  input: Record<string, unknown>;
  orderId?: string;
  idempotencyKey?: string;
}): void {
  const { input, orderId, idempotencyKey } = request;
  if (idempotencyKey !== undefined) {
    if (!idempotencyKey.trim()) throw badInput('idempotencyKey must not be empty');
    if (idempotencyKey.length > FlowInputLimits.idempotencyKey)
      throw badInput(`idempotencyKey is longer than ${FlowInputLimits.idempotencyKey} characters`);
    // eslint-disable-next-line no-control-regex -- control characters are what this refuses
    if (UNSTORABLE.test(idempotencyKey) || /[\u0000-\u001f\u007f]/.test(idempotencyKey))
      throw badInput('idempotencyKey holds a control character or an unpaired surrogate');
  }
  if (orderId !== undefined && orderId.length > FlowInputLimits.orderId)
    throw badInput(`The order id is longer than ${FlowInputLimits.orderId} characters`);
  const path = unstorablePath(input);
  if (path)
    throw badInput(`The input holds a NUL character or an unpaired surrogate at ${path}`, {
      path,
    });
  const bytes = Buffer.byteLength(JSON.stringify(input));
  if (bytes > FlowInputLimits.inputBytes)
    throw badInput(
      `The input is ${bytes} bytes of JSON, over the ${FlowInputLimits.inputBytes} a flow takes`,
    );
}
