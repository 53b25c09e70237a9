import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizationFromCookies, parseCookies } from '../../gateway/auth/cookies.js';
import { signToken } from '../../gateway/auth/tokens.js';
import { startTestCoordinator, token, type TestCoordinator } from '../support/coordinator.js';
import { wsUrl } from '../support/subscriptions.js';

/** The two cookies the LMS sets for a JWT: header.payload, and the signature (HttpOnly). */
function edxCookies(jwt: string): string {
  const [header, payload, signature] = jwt.split('.');
  return `edx-jwt-cookie-header-payload=${header}.${payload}; edx-jwt-cookie-signature=${signature}`;
}

const codeOf = (run: () => unknown) => {
  try {
    run();
    return 'returned';
  } catch (error) {
    return (error as { extensions?: { code?: string } }).extensions?.code ?? String(error);
  }
};

describe('the edX JWT cookies', () => {
  it('are put back together as the JWT the LMS split', async () => {
    const jwt = await token({ kind: 'staff', username: 'grace' });
    expect(authorizationFromCookies(`theme=dark; ${edxCookies(jwt)}`)).toBe(`JWT ${jwt}`);
    expect(authorizationFromCookies('theme=dark')).toBeUndefined();
    expect(authorizationFromCookies(undefined)).toBeUndefined();
  });

  it('one without the other is UNAUTHENTICATED, naming the missing one', () => {
    expect(codeOf(() => authorizationFromCookies('edx-jwt-cookie-signature=abc'))).toBe('UNAUTHENTICATED');
    expect(() => authorizationFromCookies('edx-jwt-cookie-header-payload=a.b')).toThrow(
      /edx-jwt-cookie-signature is missing/,
    );
  });

  it('are read from a Cookie header as browsers send it: quoted, percent-encoded, the first of a name', () => {
    const cookies = parseCookies('a="quoted"; b=x%3Dy; a=second; broken; =nameless');
    expect([...cookies]).toEqual([
      ['a', 'quoted'],
      ['b', 'x=y'],
    ]);
  });
});

describe('a Coordinator reads callers from the edX JWT cookies', () => {
  let t: TestCoordinator;
  let staffCookies: string;
  let learnerCookies: string;
  let staffToken: string;
  beforeAll(async () => {
    t = await startTestCoordinator('auth-cookies', { authenticated: true, redis: false });
    staffToken = await token({ kind: 'staff', username: 'grace' });
    staffCookies = edxCookies(staffToken);
    learnerCookies = edxCookies(await token({ kind: 'learner', lmsUserId: 3, username: 'ada' }));
  });
  afterAll(async () => t?.stop());

  const post = (body: unknown, headers: Record<string, string>) =>
    fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
  const FLOWS = { query: '{ flows(limit: 1) { id } }' };
  const codes = async (res: Response) =>
    ((await res.json()) as { errors?: Array<{ extensions: { code: string } }> }).errors?.map(
      (e) => e.extensions.code,
    );

  it('when no Authorization header is sent', async () => {
    const staff = await post(FLOWS, { cookie: staffCookies });
    expect(staff.status).toBe(200);
    expect(await staff.json()).toEqual({ data: { flows: [] } });
    expect(await codes(await post(FLOWS, { cookie: learnerCookies }))).toEqual(['FORBIDDEN']);
  });

  it('the Authorization header wins over them', async () => {
    const learner = await token({ kind: 'learner', lmsUserId: 3, username: 'ada' });
    const res = await post(FLOWS, { cookie: staffCookies, authorization: `Bearer ${learner}` });
    expect(await codes(res)).toEqual(['FORBIDDEN']);
  });

  it('a forged or incomplete pair is UNAUTHENTICATED (401)', async () => {
    const forged = edxCookies(
      await signToken('not-the-coordinators-secret', { kind: 'staff', username: 'x' }),
    );
    for (const cookie of [forged, 'edx-jwt-cookie-header-payload=a.b']) {
      const res = await post(FLOWS, { cookie });
      expect(res.status).toBe(401);
      expect(await codes(res)).toEqual(['UNAUTHENTICATED']);
    }
  });

  it("a request another site's page can send without a CORS preflight is refused, running nothing", async () => {
    const orderId = `csrf-${Date.now()}`;
    const mutation = `mutation { requestRefund(input: { orderId: "${orderId}", amount: 5 }) { flow { id } } }`;
    // What an HTML form (text/plain, form-encoded) or a no-cors fetch of another origin sends.
    for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data']) {
      const res = await fetch(`${t.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': contentType, cookie: staffCookies },
        body: JSON.stringify({ query: mutation }),
      });
      expect(res.status).toBe(400);
      expect(await codes(res)).toEqual(['BAD_REQUEST']);
    }
    const get = await fetch(`${t.url}/graphql?query=${encodeURIComponent('{ flows { id } }')}`, {
      headers: { cookie: staffCookies },
    });
    expect(get.status).toBe(400);
    expect(await codes(get)).toEqual(['BAD_REQUEST']);
    const flows = await t.graphql<{ flows: unknown[] }>(
      'query ($orderId: String) { flows(orderId: $orderId) { id } }',
      { orderId },
      { token: staffToken },
    );
    expect(flows.data?.flows).toEqual([]);
    expect(t.ledger.operations().filter((o) => o.orderId === orderId)).toEqual([]);
  });

  /** How a graphql-ws handshake with these headers ends: acknowledged, or the close code. */
  async function handshake(headers: Record<string, string>, payload: Record<string, unknown> = {}) {
    const socket = new WebSocket(wsUrl(t.url), 'graphql-transport-ws', { headers });
    return new Promise<string | number>((resolve, reject) => {
      socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload })));
      socket.on('message', (data) => {
        if ((JSON.parse(String(data)) as { type: string }).type === 'connection_ack') {
          resolve('ack');
          socket.close();
        }
      });
      socket.on('close', (code) => resolve(code));
      socket.on('error', reject);
    });
  }

  it('on a websocket opened by a page of its own origin only', async () => {
    const own = new URL(t.url).origin;
    expect(await handshake({ cookie: staffCookies, origin: own })).toBe('ack');
    expect(await handshake({ cookie: staffCookies, origin: 'http://evil.example' })).toBe(4403);
    expect(await handshake({ cookie: staffCookies })).toBe(4403);
    expect(await handshake({ cookie: learnerCookies, origin: own })).toBe(4403);
    // connection_init's authorization wins over the cookies.
    const learner = `Bearer ${await token({ kind: 'learner', lmsUserId: 3, username: 'ada' })}`;
    expect(await handshake({ cookie: staffCookies, origin: own }, { authorization: learner })).toBe(4403);
    expect(
      await handshake({ origin: 'http://evil.example' }, { authorization: `Bearer ${staffToken}` }),
    ).toBe('ack');
  });
});
