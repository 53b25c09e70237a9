/**
 * A stand-in's held requests: a test holds the requests it names, before they are performed, until it
 * releases them, to let another caller go first between a read and a write, or to keep a call in flight.
 */

export interface Hold {
  /** How many requests are waiting now. */
  held(): number;
  /** Lets the waiting requests and every later one through. */
  release(): void;
}

export function createHolds<R>() {
  const holds: Array<{ matches: (request: R) => boolean; waiting: Array<() => void>; released: boolean }> =
    [];
  return {
    /** Holds every request `matches` accepts, until released. */
    hold(matches: (request: R) => boolean): Hold {
      const hold = { matches, waiting: [] as Array<() => void>, released: false };
      holds.push(hold);
      return {
        held: () => hold.waiting.length,
        release() {
          hold.released = true;
          hold.waiting.splice(0).forEach((resume) => resume());
        },
      };
    },
    /** Whether any hold is still waiting for requests (so that a request need not be read for it). */
    active: () => holds.some((h) => !h.released),
    /** Resolves once `request` may go on: at once, unless a hold accepts it. */
    async pass(request: R): Promise<void> {
      const hold = holds.find((h) => !h.released && h.matches(request));
      if (hold) await new Promise<void>((resolve) => hold.waiting.push(resolve));
    },
  };
}
