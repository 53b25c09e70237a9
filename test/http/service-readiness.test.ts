import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { waitFor } from '../support/wait.js';

/**
 * /readyz reports each Service through its Plugin's health check (a cheap authenticated call the
 * stand-ins answer as the real Services do), each bounded by READINESS_TIMEOUT_MS: a Service down,
 * hung or not configured makes the Coordinator `degraded` (200), never `not ready`.
 */

let cc: CommerceCoordinator;
const TIMEOUT_MS = 500;
const ok = { status: 'ok' };

interface Readiness {
  status: string;
  checks: Record<string, boolean>;
  services: Record<string, { status: string; reason?: string }>;
}

async function readyz(): Promise<{ status: number; body: Readiness }> {
  const res = await fetch(`${cc.url}/readyz`, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: (await res.json()) as Readiness };
}

beforeAll(async () => {
  cc = await startCommerceCoordinator('service-readiness', {
    overrides: { readinessTimeoutMs: TIMEOUT_MS },
  });
});

afterAll(async () => {
  await cc?.stop();
});

describe('/readyz and the Services', () => {
  it('is ready with the flags loaded and every Service answering its health check', async () => {
    const { status, body } = await waitFor(async () => {
      const answer = await readyz();
      expect(answer.status).toBe(200);
      expect(answer.body.status).toBe('ready');
      return answer;
    });
    expect(status).toBe(200);
    expect(body).toEqual({
      status: 'ready',
      checks: { database: true, bus: true, flags: true, supergraph: true },
      services: {
        'order-management': ok,
        stripe: ok,
        paypal: ok,
        lms: ok,
        'legacy-ecommerce': ok,
        'app-store': ok,
        'google-play': ok,
      },
      config: { hash: expect.stringMatching(/^[0-9a-f]{16}$/), loadedAt: expect.any(String) },
    });
  });

  it('says degraded (200) naming the Service and its answer when one refuses', async () => {
    cc.services.lms.failNext(1, 503, '/oauth2/access_token');
    const { status, body } = await readyz();
    expect(status).toBe(200);
    expect(body.status).toBe('degraded');
    expect(body.checks).toEqual({ database: true, bus: true, flags: true, supergraph: true });
    expect(body.services.lms).toEqual({ status: 'degraded', reason: expect.stringContaining('503') });
    expect(body.services.stripe).toEqual(ok);
    expect((await readyz()).body.status).toBe('ready');
  });

  it('answers within its bound when a Service hangs, saying it did not answer', async () => {
    const hung = await startHungServer();
    const standIn = process.env.STRIPE_API_BASE;
    process.env.STRIPE_API_BASE = hung.url;
    try {
      const started = Date.now();
      const { status, body } = await readyz();
      expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + 1_000);
      expect(status).toBe(200);
      expect(body.status).toBe('degraded');
      expect(body.services.stripe).toEqual({
        status: 'degraded',
        reason: `no answer within ${TIMEOUT_MS} ms`,
      });
    } finally {
      process.env.STRIPE_API_BASE = standIn;
      await hung.close();
    }
  });

  it('says which variable is missing when a Service is not configured', async () => {
    const key = process.env.STRIPE_SECRET_KEY;
    delete process.env.STRIPE_SECRET_KEY;
    try {
      const { status, body } = await readyz();
      expect(status).toBe(200);
      expect(body.services.stripe).toEqual({
        status: 'degraded',
        reason: expect.stringMatching(/^not configured: STRIPE_SECRET_KEY is not set/),
      });
    } finally {
      process.env.STRIPE_SECRET_KEY = key;
    }
    expect((await readyz()).body.status).toBe('ready');
  });
});

/** A server that accepts connections and never answers (a hung Service). */
async function startHungServer(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => void sockets.add(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
