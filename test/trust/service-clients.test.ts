import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authOptions, readEnv } from '../../gateway/env.js';
import { ConfigError } from '../../gateway/errors.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { TEST_JWT_SECRET } from '../support/coordinator.js';
import { requestRefund, seedPaidOrder, standInState } from '../support/orders.js';

/**
 * The LMS gives client credentials to more applications than the Coordinator's Services: an enterprise
 * customer's API integration gets a client-credentials token for its own admin user. Only the clients
 * the Coordinator is told are its Services (JWT_SERVICE_CLIENTS) act as one; any other client's token is
 * read as the user it was issued for, as the LMS itself reads it.
 */

let cc: CommerceCoordinator;
beforeAll(async () => {
  cc = await startCommerceCoordinator('trust-service-clients');
});
afterAll(async () => {
  await cc?.stop();
});

/** A client-credentials token as the LMS issues it: the application's user, and its client. */
const clientToken = (claims: Record<string, unknown>) =>
  new SignJWT({ grant_type: 'client-credentials', ...claims })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(String(claims.client_id ?? claims.preferred_username ?? 'anonymous-id'))
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode(TEST_JWT_SECRET));

const refundAs = (bearer: string, orderId: string, lineItemIds: string[]) =>
  requestRefund(cc, orderId, lineItemIds, { bearer });

describe("another application's client credentials", () => {
  it("cannot refund someone else's order: the token is the application's user, a learner", async () => {
    const order = seedPaidOrder(cc, 'STRIPE', { prices: [9_900] });
    const enterprise = await clientToken({
      client_id: 'acme-enterprise-api',
      preferred_username: 'acme_admin',
      user_id: 9_001,
      administrator: false,
    });
    const answer = await refundAs(enterprise, order.orderId, order.lineItemIds);
    expect(answer.errors?.[0]?.extensions?.code, JSON.stringify(answer)).toBe('FORBIDDEN');
    expect(standInState(cc, order).pspRefunds).toEqual([]);
  });

  it('is refused when it names no user at all', async () => {
    const order = seedPaidOrder(cc, 'STRIPE', { prices: [9_900] });
    const bare = await clientToken({ client_id: 'some-other-client' });
    const answer = await refundAs(bare, order.orderId, order.lineItemIds);
    expect(answer.errors?.[0]?.extensions?.code, JSON.stringify(answer)).toBe('UNAUTHENTICATED');
    expect(answer.errors?.[0]?.message).toMatch(/JWT_SERVICE_CLIENTS/);
    expect(standInState(cc, order).pspRefunds).toEqual([]);
  });

  it('of a listed Service still acts as that Service, named by its client or by its user', async () => {
    const order = seedPaidOrder(cc, 'STRIPE', { prices: [9_900, 4_900] });
    // The LMS's own tokens carry no client_id: the application's (service) user names the client.
    const lms = await clientToken({ preferred_username: 'lms', administrator: false });
    const answer = await refundAs(lms, order.orderId, [order.lineItemIds[0]!]);
    expect(answer.errors, JSON.stringify(answer)).toBeUndefined();
    expect(answer.data?.requestRefund?.flow.status).toBe('COMPLETED');
    expect(standInState(cc, order).pspRefunds).toEqual([9_900]);
  });
});

describe('JWT_SERVICE_CLIENTS', () => {
  const base = { DATABASE_URL: 'postgresql://localhost/x', JWT_SECRET: 'a-secret-of-sixteen-or-more' };

  it('is required once callers are verified by a configured key', () => {
    const refused = () => authOptions(readEnv(base));
    expect(refused).toThrow(ConfigError);
    expect(refused).toThrow(/JWT_SERVICE_CLIENTS/);
  });

  it('lists client ids; set empty, it is unset', () => {
    expect(authOptions(readEnv({ ...base, JWT_SERVICE_CLIENTS: ' lms, order-management ' }))).toMatchObject({
      serviceClients: ['lms', 'order-management'],
    });
    expect(() => authOptions(readEnv({ ...base, JWT_SERVICE_CLIENTS: '' }))).toThrow(/JWT_SERVICE_CLIENTS/);
  });

  it('defaults to the embedded Services on the development key', () => {
    expect(authOptions(readEnv({})).serviceClients).toEqual(
      expect.arrayContaining(['lms', 'order-management']),
    );
  });
});
