/** The largest part of a Redis stream id: ids are two unsigned 64-bit numbers, `<ms>-<seq>`. */
const LARGEST_PART = 2n ** 64n - 1n;
/** Two parts of at most 20 digits: anything longer is past 64 bits whatever its digits. */
const STREAM_ID = /^(\d{1,20})-(\d{1,20})$/;

/**
 * Whether `id` is a stream id Redis reads: Redis refuses any other (a part past 64 bits included)
 * with an error that fails the whole command, and has no code a caller could be answered with.
 */
export function isStreamId(id: string): boolean {
  const match = STREAM_ID.exec(id);
  return match !== null && BigInt(match[1]!) <= LARGEST_PART && BigInt(match[2]!) <= LARGEST_PART;
}

/** The largest stream id: nothing comes after it, so a reader cannot resume after it. */
export const LAST_STREAM_ID = `${LARGEST_PART}-${LARGEST_PART}`;
