import { describe, expect, it } from 'vitest';
import { referenceResponse } from '../../bench/federation/reference.js';
import { scenario } from '../../bench/federation/scenario.js';
import { subgraphSchemas } from '../../bench/federation/subgraphs.js';
import { composeForTest, differentialGateways, localDataSources } from '../support/differential.js';
import { compiledCases, differentialSubgraphs, fallbackCases } from './executor-differential-subgraphs.js';

// The gateway's own executor must answer exactly as @apollo/gateway's executeQueryPlan on the same
// plans: same data, same errors (paths, codes, service names), same value-completion extensions.

describe('the compiled executor against executeQueryPlan', () => {
  it('answers the federation benchmark scenario (all its data) identically, and correctly', async () => {
    const gateways = differentialGateways(
      scenario.supergraph('http://127.0.0.1:1'),
      localDataSources(subgraphSchemas),
    );
    expect(gateways.compiles(scenario.query)).toBe(true);
    const { ours, reference } = await gateways.run(scenario.query);
    expect(ours).toEqual(reference);
    expect(ours).toEqual(JSON.parse(JSON.stringify(referenceResponse())));
  });
});

describe('the compiled executor on hand-written subgraphs', () => {
  const gateways = differentialGateways(
    composeForTest(differentialSubgraphs),
    localDataSources(
      Object.fromEntries(Object.entries(differentialSubgraphs).map(([n, s]) => [n, s.schema])),
    ),
  );
  it.each(compiledCases)('%s', async (_, query, variables) => {
    expect(gateways.compiles(query)).toBe(true);
    const { ours, reference } = await gateways.run(query, variables);
    expect(ours).toEqual(reference);
  });
  it.each(fallbackCases)('falls back to executeQueryPlan: %s', async (_, query, variables) => {
    expect(gateways.compiles(query)).toBe(false);
    const { ours, reference } = await gateways.run(query, variables);
    expect(ours).toEqual(reference);
  });
});
