import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { serveFixturePlugins, type RemoteSubgraphs } from '../support/remote-subgraphs.js';

const ORDERS = /* GraphQL */ `
  query Orders($ids: [ID!]!) {
    orders(ids: $ids) {
      id
      number
      payments {
        id
        amount
      }
    }
  }
`;

type Order = { id: string; number: string; payments: Array<{ id: string; amount: number }> };

describe.each([{ mode: 'in-process' }, { mode: 'remote' }])(
  'entity resolution of a page of orders ($mode subgraphs)',
  ({ mode }) => {
    let remote: RemoteSubgraphs | undefined;
    let t: TestCoordinator;

    beforeAll(async () => {
      remote = mode === 'remote' ? await serveFixturePlugins() : undefined;
      t = await startTestCoordinator(`batching-${mode}`, {
        redis: false,
        overrides: remote ? remote.coordinatorOptions : {},
      });
    });
    afterAll(async () => {
      await t?.stop();
      await remote?.close();
    });

    it('resolves the payments of 50 orders with one call to the Service', async () => {
      const ids = Array.from({ length: 50 }, (_, i) => `batch-${mode}-${i + 1}`);
      const before = t.ledger.calls('/payments');
      const { data, errors } = await t.graphql<{ orders: Order[] }>(ORDERS, { ids });
      expect(errors).toBeUndefined();
      expect(data!.orders).toEqual(
        ids.map((id) => ({ id, number: `ORD-${id}`, payments: [{ id: `pay-${id}`, amount: 100 }] })),
      );
      expect(t.ledger.calls('/payments') - before).toBe(1);
      if (remote) {
        // One entity request reached the payments subgraph over HTTP, with all 50 representations.
        const entityRequests = remote.requests('payments').filter((r) => r.body.query.includes('_entities'));
        expect(entityRequests).toHaveLength(1);
        expect(entityRequests[0]!.body.variables?.representations).toHaveLength(50);
      }
    });

    it('batches per request: two concurrent queries make one Service call each', async () => {
      const page = (n: number) => Array.from({ length: 20 }, (_, i) => `batch-${mode}-p${n}-${i}`);
      const before = t.ledger.calls('/payments');
      const results = await Promise.all([
        t.graphql<{ orders: Order[] }>(ORDERS, { ids: page(1) }),
        t.graphql<{ orders: Order[] }>(ORDERS, { ids: page(2) }),
      ]);
      expect(results.map((r) => r.data!.orders.map((o) => o.payments[0]!.id))).toEqual([
        page(1).map((id) => `pay-${id}`),
        page(2).map((id) => `pay-${id}`),
      ]);
      expect(t.ledger.calls('/payments') - before).toBe(2);
    });
  },
);
