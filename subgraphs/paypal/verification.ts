/**
 * What PayPal's verify-webhook-signature costs, bounded: at most `maxInFlight` calls at once (beyond,
 * the caller is told to come back later), and each transmission asked about once — its verdict is
 * remembered until the transmission would be refused as too old anyway, in a cache of at most
 * `cacheSize` entries (the least recently used go first). A transmission asked about again while its
 * call is in flight waits for that call.
 */

/** @default 1024 */
export const VERIFICATION_CACHE_SIZE = 1024;

export interface VerificationGateOptions {
  maxInFlight: number;
  /** @default VERIFICATION_CACHE_SIZE */
  cacheSize?: number;
}

interface Entry {
  verdict: Promise<boolean>;
  /** Epoch ms after which the verdict is not used (the transmission is out of its window). */
  expiresAt: number;
}

export class VerificationGate {
  private inFlight = 0;
  private readonly entries = new Map<string, Entry>();
  private readonly cacheSize: number;

  constructor(private readonly options: VerificationGateOptions) {
    this.cacheSize = options.cacheSize ?? VERIFICATION_CACHE_SIZE;
  }

  /**
   * PayPal's verdict on the transmission `key` names (a digest of everything the signature covers),
   * `'busy'` when `maxInFlight` calls are under way. `verify` is called only when the verdict is not
   * known; a call that fails is not remembered, so a retry asks again.
   */
  verdict(
    key: string,
    expiresAt: number,
    verify: () => Promise<boolean>,
    nowMs: number = Date.now(),
  ): Promise<boolean> | 'busy' {
    const known = this.entries.get(key);
    if (known && known.expiresAt > nowMs) {
      // Most recently used last: eviction takes the first.
      this.entries.delete(key);
      this.entries.set(key, known);
      return known.verdict;
    }
    if (this.inFlight >= this.options.maxInFlight) return 'busy';
    this.inFlight++;
    let call: Promise<boolean>;
    try {
      call = verify();
    } catch (error) {
      call = Promise.reject(error);
    }
    const entry: Entry = { verdict: call.finally(() => this.inFlight--), expiresAt };
    entry.verdict.catch(() => {
      if (this.entries.get(key) === entry) this.entries.delete(key);
    });
    this.entries.delete(key);
    this.entries.set(key, entry);
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.cacheSize) break;
      this.entries.delete(oldest);
    }
    return entry.verdict;
  }

  /** Verdicts remembered now (for tests of the bound). */
  get size(): number {
    return this.entries.size;
  }
}
