import { createClient } from 'redis';

/**
 * What the learner email Plugin remembers so that an email goes out once: a claim per key that
 * lasts a while. In Redis (SET NX PX), shared by every gateway process and kept across restarts;
 * without a Redis, in this process only.
 */
export interface OnceMemory {
  /** True for the one caller that gets the key (until it expires or is released). */
  claim(key: string, holder: string, ttlMs: number): Promise<boolean>;
  /** Gives up a claim this holder made (its email did not go out), so a retry may send it. */
  release(key: string, holder: string): Promise<void>;
  close(): Promise<void>;
}

export function processMemory(): OnceMemory {
  const claims = new Map<string, { holder: string; until: number }>();
  return {
    async claim(key, holder, ttlMs) {
      const now = Date.now();
      const held = claims.get(key);
      if (held && held.until > now) return false;
      claims.set(key, { holder, until: now + ttlMs });
      return true;
    },
    async release(key, holder) {
      if (claims.get(key)?.holder === holder) claims.delete(key);
    },
    async close() {},
  };
}

// Deletes the key only if this holder still holds it (not a later claim after expiry).
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

export function redisMemory(url: string, prefix: string): OnceMemory {
  const client = createClient({ url });
  client.on('error', () => {
    // Reported by the command that fails; the client reconnects on its own.
  });
  let connected: Promise<unknown> | undefined;
  const ready = () => (connected ??= client.connect());
  return {
    async claim(key, holder, ttlMs) {
      await ready();
      return (await client.set(prefix + key, holder, { NX: true, PX: ttlMs })) === 'OK';
    },
    async release(key, holder) {
      await ready();
      await client.eval(RELEASE, { keys: [prefix + key], arguments: [holder] });
    },
    async close() {
      if (connected) await client.quit().catch(() => undefined);
    },
  };
}
