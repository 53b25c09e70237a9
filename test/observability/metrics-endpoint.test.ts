import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCoordinator, token, type TestCoordinator } from '../support/coordinator.js';

const get = (url: string, init: RequestInit & { bearer?: string } = {}) =>
  fetch(url, {
    ...init,
    headers: init.bearer ? { authorization: `Bearer ${init.bearer}` } : {},
  });

describe('/metrics on the gateway port', () => {
  let t: TestCoordinator;
  beforeAll(async () => {
    t = await startTestCoordinator('observability-metrics-token', { redis: false, authenticated: true });
  });
  afterAll(async () => t?.stop());

  it('is served to staff and Services', async () => {
    for (const subject of [
      { kind: 'staff', username: 'operator' } as const,
      { kind: 'service', clientId: 'prometheus' } as const,
    ]) {
      const res = await get(`${t.url}/metrics`, { bearer: await token(subject) });
      expect(res.status, subject.kind).toBe(200);
      expect(await res.text()).toContain('# TYPE coordinator_flows_started_total counter');
    }
    expect(t.coordinator.components.metricsUrl).toBe(`${t.url}/metrics`);
  });

  it('refuses anonymous callers, tokens that do not verify and learners, with a code', async () => {
    const anonymous = await get(`${t.url}/metrics`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer');
    expect(await anonymous.json()).toMatchObject({ code: 'UNAUTHENTICATED' });

    const forged = await get(`${t.url}/metrics`, { bearer: 'not.a.token' });
    expect(forged.status).toBe(401);
    expect(await forged.json()).toMatchObject({ code: 'UNAUTHENTICATED' });

    const learner = await get(`${t.url}/metrics`, {
      bearer: await token({ kind: 'learner', lmsUserId: 3, username: 'ada' }),
    });
    expect(learner.status).toBe(403);
    const body = await learner.text();
    expect(JSON.parse(body)).toMatchObject({ code: 'FORBIDDEN' });
    expect(body).not.toContain('coordinator_');
  });

  it('answers another method 405 METHOD_NOT_ALLOWED', async () => {
    const res = await get(`${t.url}/metrics`, {
      method: 'POST',
      bearer: await token({ kind: 'staff', username: 'operator' }),
    });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, HEAD');
    expect(await res.json()).toMatchObject({ code: 'METHOD_NOT_ALLOWED' });
  });
});

describe('/metrics on a port of its own', () => {
  let t: TestCoordinator;
  beforeAll(async () => {
    t = await startTestCoordinator('observability-metrics-port', {
      redis: false,
      authenticated: true,
      overrides: { metrics: { port: 0, host: '127.0.0.1' } },
    });
  });
  afterAll(async () => t?.stop());

  it('is served there without a token, and only there', async () => {
    const metricsUrl = t.coordinator.components.metricsUrl;
    expect(new URL(metricsUrl).port).not.toBe(new URL(t.url).port);
    const res = await get(metricsUrl);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('coordinator_http_request_duration_seconds');

    const main = await get(`${t.url}/metrics`, {
      bearer: await token({ kind: 'staff', username: 'operator' }),
    });
    expect(main.status).toBe(404);
    expect(await main.json()).toMatchObject({ code: 'NOT_FOUND' });

    const other = await get(metricsUrl.replace('/metrics', '/graphql'));
    expect(other.status).toBe(404);
    expect(await other.json()).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('closes with the Coordinator', async () => {
    const metricsUrl = t.coordinator.components.metricsUrl;
    await t.coordinator.stop();
    await expect(fetch(metricsUrl)).rejects.toThrow();
  });
});
