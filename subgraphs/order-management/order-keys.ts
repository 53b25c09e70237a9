import { DomainError, ErrorCode, KEY_MAX_LENGTH } from '@commerce-coordinator/plugin-sdk';

/**
 * The longest order id or order number the Plugin takes from a caller: the Coordinator's bound on the
 * order id a flow is keyed by, so every entry point of the Plugin refuses the same values with the
 * same words as the core (which answers `/order-management/fulfill` so when its flow is refused).
 *
 * No commercetools id or order number comes near it (ids are UUIDs, numbers 2U-…), and a longer value
 * would otherwise go to the Service in a URL, which it refuses as too long (414, 431) once the value
 * is a few kilobytes.
 */
export const ORDER_KEY_MAX_LENGTH = KEY_MAX_LENGTH;

/** Why `value` cannot be an order's id (`'order id'`) or number (`'order number'`), if it cannot. */
export function orderKeyProblem(
  value: string,
  what: 'order id' | 'order number' = 'order id',
): string | undefined {
  return value.length > ORDER_KEY_MAX_LENGTH
    ? `The ${what} is longer than ${ORDER_KEY_MAX_LENGTH} characters`
    : undefined;
}

/**
 * Refuses, as BAD_USER_INPUT, an order id or number from a caller that no order can have, before any
 * call to the Service. Null and undefined (an optional argument left out) pass.
 */
export function checkOrderKey(
  value: string | null | undefined,
  what: 'order id' | 'order number' = 'order id',
): void {
  const problem = typeof value === 'string' ? orderKeyProblem(value, what) : undefined;
  if (problem) throw new DomainError(ErrorCode.BAD_USER_INPUT, problem);
}
