import type { BrazeConfig } from './config.js';

/**
 * Braze's REST API, for the one call the Coordinator makes: trigger an API-triggered Canvas for a
 * learner (`POST /canvas/trigger/send`). Braze has no official Node SDK; this is plain fetch.
 *
 * Errors: `BrazeUnavailableError` for what may pass (5xx, 429, timeouts, network errors) — the
 * caller's retry; `BrazeRejectedError` for what will not (401 wrong key, 400 unknown Canvas or bad
 * properties), with Braze's message.
 */

export class BrazeUnavailableError extends Error {
  override readonly name = 'BrazeUnavailableError';
}

export class BrazeRejectedError extends Error {
  override readonly name = 'BrazeRejectedError';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export interface CanvasSend {
  canvasId: string;
  /** The learner's Braze external id: their LMS user id. */
  externalUserId: string;
  properties: Record<string, unknown>;
}

export class BrazeClient {
  constructor(private readonly config: BrazeConfig) {}

  /** Triggers the Canvas for one learner; Braze's dispatch id. */
  async triggerCanvas(send: CanvasSend): Promise<string> {
    let res: Response;
    try {
      res = await fetch(`${this.config.BRAZE_API_URL}/canvas/trigger/send`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${this.config.BRAZE_API_KEY}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify({
          canvas_id: send.canvasId,
          recipients: [{ external_user_id: send.externalUserId, trigger_properties: send.properties }],
        }),
        signal: AbortSignal.timeout(this.config.BRAZE_TIMEOUT_MS),
      });
    } catch (error) {
      const reason =
        (error as Error).name === 'TimeoutError'
          ? `timed out after ${this.config.BRAZE_TIMEOUT_MS}ms`
          : `failed: ${(error as Error).message}`;
      throw new BrazeUnavailableError(`POST /canvas/trigger/send ${reason}`);
    }
    const body = (await res.json().catch(() => null)) as { message?: unknown; dispatch_id?: unknown } | null;
    const message = typeof body?.message === 'string' ? body.message : `Braze answered ${res.status}`;
    if (res.status >= 500 || res.status === 429)
      throw new BrazeUnavailableError(`POST /canvas/trigger/send: Braze answered ${res.status} (${message})`);
    if (!res.ok) throw new BrazeRejectedError(`Braze refused the Canvas send: ${message}`, res.status);
    return typeof body?.dispatch_id === 'string' ? body.dispatch_id : '';
  }
}
