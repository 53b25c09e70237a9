/**
 * The longest key the Coordinator's record takes, in characters: an idempotency key, the order id a
 * flow is keyed by, a Service event's id. Each is indexed, and a B-tree entry holds about 2.7 KB; no
 * real key comes near 255. Shared, so a Plugin refuses at its entry points what the core would refuse.
 */
export const KEY_MAX_LENGTH = 255;
