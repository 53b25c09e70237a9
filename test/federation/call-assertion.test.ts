import { SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGatewayContext } from '../../gateway/federation/context.js';
import { RemoteDataSource } from '../../gateway/federation/data-sources.js';
import {
  CALL_ASSERTION_HEADER,
  createCallSigner,
  type ActionCall,
} from '@commerce-coordinator/plugin-sdk/call-assertion';
import { serveSubgraph, type SubgraphServer } from '@commerce-coordinator/plugin-sdk';
import ordersPlugin from '../fixtures/subgraphs/orders/index.js';
import { TEST_SUBGRAPH_SIGNING_SECRET } from '../support/remote-subgraphs.js';

const CALLER = JSON.stringify({ query: '{ caller { callerKind callerName } }' });
const learner: ActionCall['principal'] = { kind: 'learner', subject: 'l-3', lmsUserId: 3, username: 'ada' };
const signer = createCallSigner(TEST_SUBGRAPH_SIGNING_SECRET);

let orders: SubgraphServer;
let ordersEu: SubgraphServer;

beforeAll(async () => {
  orders = await serveSubgraph(ordersPlugin, { secret: TEST_SUBGRAPH_SIGNING_SECRET });
  ordersEu = await serveSubgraph(ordersPlugin, { secret: TEST_SUBGRAPH_SIGNING_SECRET, name: 'orders-eu' });
});
afterAll(async () => {
  await orders?.close();
  await ordersEu?.close();
});

async function post(server: SubgraphServer, body: string, headers: Record<string, string>) {
  const res = await fetch(server.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const signedAt = (offsetMs: number) =>
  createCallSigner(TEST_SUBGRAPH_SIGNING_SECRET, { now: () => Date.now() + offsetMs });

const refusal = (why: RegExp) => ({
  status: 401,
  body: { errors: [{ message: expect.stringMatching(why), extensions: { code: 'UNAUTHENTICATED' } }] },
});

describe('serveSubgraph and the gateway’s signed call assertion', () => {
  it('builds the ActionContext from the verified claims only: a bare principal header beside them is ignored', async () => {
    const answer = await post(orders, CALLER, {
      [CALL_ASSERTION_HEADER]: signer.sign({ principal: learner }, 'orders', CALLER),
      'x-coordinator-principal': Buffer.from(
        JSON.stringify({ kind: 'staff', subject: 's', username: 'support' }),
      ).toString('base64url'),
    });
    expect(answer).toEqual({
      status: 200,
      body: { data: { caller: { callerKind: 'learner', callerName: 'ada' } } },
    });
  });

  it('serves calls addressed to its configured name, and refuses those addressed to the Plugin’s own', async () => {
    expect(
      (await post(ordersEu, CALLER, { [CALL_ASSERTION_HEADER]: signer.sign({}, 'orders-eu', CALLER) }))
        .status,
    ).toBe(200);
    expect(
      await post(ordersEu, CALLER, { [CALL_ASSERTION_HEADER]: signer.sign({}, 'orders', CALLER) }),
    ).toEqual(refusal(/addressed to another subgraph/));
  });

  it(`tolerates a clock skew of a few seconds, not more`, async () => {
    const call = (offsetMs: number) =>
      post(orders, CALLER, { [CALL_ASSERTION_HEADER]: signedAt(offsetMs).sign({}, 'orders', CALLER) });
    expect((await call(4_000)).status).toBe(200);
    expect((await call(-62_000)).status).toBe(200);
    expect(await call(30_000)).toEqual(refusal(/issued in the future/));
    expect(await call(-70_000)).toEqual(refusal(/expired/));
  });

  it('refuses assertions signed with another secret, unsigned ones, and tokens of another kind', async () => {
    const other = createCallSigner('another-secret-that-is-long-enough-too');
    expect(await post(orders, CALLER, { [CALL_ASSERTION_HEADER]: other.sign({}, 'orders', CALLER) })).toEqual(
      refusal(/signature does not verify/),
    );
    const unsecured = new UnsecuredJWT({ bodySha256: 'x' }).setAudience('orders').setIssuedAt().encode();
    expect(await post(orders, CALLER, { [CALL_ASSERTION_HEADER]: unsecured })).toEqual(
      refusal(/not a valid/),
    );
    // A JWT with the same secret but not an assertion (a caller's token, say) is not one.
    const callerToken = await new SignJWT({ sub: 'staff-1' })
      .setProtectedHeader({ alg: 'HS256' })
      .setAudience('orders')
      .setIssuedAt()
      .setExpirationTime('1m')
      .sign(new TextEncoder().encode(TEST_SUBGRAPH_SIGNING_SECRET));
    expect(await post(orders, CALLER, { [CALL_ASSERTION_HEADER]: callerToken })).toEqual(refusal(/typ/));
    expect(await post(orders, CALLER, { [CALL_ASSERTION_HEADER]: 'not.a.jwt' })).toEqual(
      refusal(/not a valid/),
    );
  });

  it("reports a subgraph's refusal of the gateway's calls as the gateway's fault, not the caller's", async () => {
    const source = new RemoteDataSource({
      url: orders.url,
      name: 'orders',
      signer: createCallSigner('the-gateway-has-another-secret-configured'),
    });
    const refused = source.process({
      kind: 0 as never,
      request: {
        query: '{ caller { callerKind } }',
        http: { method: 'POST', url: orders.url, headers: new Headers() } as never,
      },
      context: createGatewayContext({ flagContext: { kind: 'user', key: 'anonymous', anonymous: true } }),
    } as never);
    await expect(refused).rejects.toMatchObject({
      message: expect.stringMatching(
        /^Subgraph orders refused the gateway's signed call \(.*signature does not verify.*\): check that both use the same SUBGRAPH_SIGNING_SECRET/,
      ),
      extensions: { code: 'INTERNAL_SERVER_ERROR', response: { status: 401 } },
    });
  });
});
