import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operationLimits, readEnv } from '../../gateway/env.js';
import { ConfigError } from '../../gateway/errors.js';
import { DEFAULT_OPERATION_LIMITS } from '../../gateway/federation/operation-limits.js';
import { startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { collect, subscriptionClient } from '../support/subscriptions.js';

type Answer = {
  errors?: Array<{ message: string; extensions?: Record<string, unknown> }>;
  data?: Record<string, unknown>;
};

const post = async (url: string, body: Record<string, unknown>) => {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: withoutStacks((await res.json()) as Answer) };
};

/** Development answers carry a stack trace in each error's extensions; the assertions leave it out. */
const withoutStacks = (answer: Answer): Answer => {
  for (const error of answer.errors ?? []) delete error.extensions?.stacktrace;
  return answer;
};

/** The refusal a limit gives: 400, one error naming the limit, its maximum and the operation's value. */
const refusal = (limit: string, maximum: number, value: number) => ({
  status: 400,
  body: {
    errors: [
      {
        message: expect.stringContaining(`the limit is ${maximum} (${limit})`),
        extensions: { code: 'OPERATION_LIMIT_EXCEEDED', limit, maximum, value },
      },
    ],
  },
});

const aliased = (count: number, field: string) =>
  Array.from({ length: count }, (_, i) => `a${i}: ${field}`).join('\n');

describe('operation limits on their defaults', () => {
  let t: TestCoordinator;
  beforeAll(async () => {
    t = await startTestCoordinator('http-limits-defaults', { redis: false });
  });
  afterAll(async () => t?.stop());

  it('refuses 2,000 aliases of flows(limit: 200) by their tokens, before parsing them', async () => {
    const query = `{ ${aliased(2000, 'flows(limit: 200) { id input steps { input output } }')} }`;
    // `a0: flows(limit: 200) { id input steps { input output } }` is 17 tokens; the braces 2.
    expect(await post(t.url, { query })).toEqual(refusal('tokens', 2000, 2000 * 17 + 2));
  });

  it('refuses the same over GET', async () => {
    const query = `{ ${aliased(200, 'flows(limit: 200) { id }')} }`;
    const res = await fetch(`${t.url}/graphql?${new URLSearchParams({ query })}`, {
      headers: { 'apollo-require-preflight': 'true' },
    });
    expect({ status: res.status, body: withoutStacks((await res.json()) as Answer) }).toEqual(
      refusal('tokens', 2000, 200 * 11 + 2),
    );
  });

  it('refuses more aliases than the maximum', async () => {
    const query = `{ ${aliased(31, 'flows(limit: 1) { id }')} }`;
    expect(await post(t.url, { query })).toEqual(refusal('aliases', 30, 31));
  });

  it('refuses one field selected more often in one selection set than validation should compare, before validating it', async () => {
    // Each pair of them is compared by validation: 51 selections of flows, through fragments and not.
    const fragments = Array.from(
      { length: 26 },
      (_, i) => `fragment F${i} on Query { flows(limit: ${i + 1}) { id } }`,
    );
    const query = `{ ${Array.from({ length: 25 }, (_, i) => `flows(limit: ${i + 30}) { id }`).join(' ')} ${fragments
      .map((_, i) => `...F${i}`)
      .join(' ')} } ${fragments.join(' ')}`;
    // Refused by the limit, not by validation (the arguments differ: validation would refuse it too).
    expect(await post(t.url, { query })).toEqual(refusal('repeats', 50, 51));
    // Under the limit, and nested selections merged as validation merges them: counted, not refused.
    const nested = `{ ${Array.from({ length: 40 }, () => 'flows { steps { index } }').join(' ')} }`;
    expect((await post(t.url, { query: nested })).status).toBe(200);
    const deep = `{ ${Array.from({ length: 51 }, () => 'flows { id }').join(' ')} }`;
    expect(await post(t.url, { query: deep })).toEqual(refusal('repeats', 50, 51));
  });

  it('refuses an operation that runs two flows, and runs neither', async () => {
    const query = `{
      first: echoCaller(input: { channel: WEB, note: "two-flows" }) { flow { status } }
      second: echoCaller(input: { channel: WEB, note: "two-flows" }) { flow { status } }
    }`;
    expect(await post(t.url, { query })).toEqual(refusal('flows', 1, 2));
    const { body } = await post(t.url, { query: '{ flows(name: "caller.echo.v1") { id } }' });
    expect(body).toEqual({ data: { flows: [] } });
  });

  it('counts filter fields reached through fragments', async () => {
    const query = `
      query { ...Echo ... on Query { again: echoCaller(input: { channel: WEB }) { flow { status } } } }
      fragment Echo on Query { echoCaller(input: { channel: WEB }) { flow { status } } }`;
    expect(await post(t.url, { query })).toEqual(refusal('flows', 1, 2));
  });

  it('runs one flow per operation', async () => {
    const { status, body } = await post(t.url, {
      query: '{ echoCaller(input: { channel: WEB, note: "one" }) { flow { status } } }',
    });
    expect(status).toBe(200);
    expect(body).toEqual({ data: { echoCaller: { flow: { status: 'COMPLETED' } } } });
  });

  it("costs a list by its limit argument, or the argument's default, or the default list size", async () => {
    // flows(limit: 200) × (FlowRun 1 + steps 10 × (FlowStep 1 + flagDecisions 10 × 1)) = 22,200: allowed.
    const within = await post(t.url, {
      query: '{ flows(limit: 200) { id steps { index flagDecisions { flag } } } }',
    });
    expect(within.status).toBe(200);
    expect(within.body.errors).toBeUndefined();
    // Two of them cost 44,400.
    const over = await post(t.url, {
      query: `{ a: flows(limit: 200) { id steps { index flagDecisions { flag } } }
                b: flows(limit: 200) { id steps { index flagDecisions { flag } } } }`,
    });
    expect(over).toEqual(refusal('cost', DEFAULT_OPERATION_LIMITS.maxCost, 44_400));
  });

  it('still serves the introspection Apollo Sandbox sends in development', async () => {
    const { status, body } = await post(t.url, {
      query: `{ __schema { types { name fields { name args { name type { ...Ref } } type { ...Ref } } } } }
        fragment Ref on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType {
          kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }`,
    });
    expect(status).toBe(200);
    expect(body.errors).toBeUndefined();
  });
});

describe('operation limits configured', () => {
  let t: TestCoordinator;
  beforeAll(async () => {
    t = await startTestCoordinator('http-limits-configured', {
      redis: false,
      overrides: {
        operationLimits: {
          maxDepth: 3,
          maxCost: 100,
          maxAliases: 1,
          maxRepeatedSelections: 2,
          maxTokens: 60,
          defaultListSize: 101,
        },
      },
    });
  });
  afterAll(async () => t?.stop());

  it('refuses a filter mutation nested too deep before its flow starts', async () => {
    const query = `mutation { requestRefund(input: { orderId: "limits-deep", amount: 3 }) {
      flow { steps { action } } } }`;
    expect(await post(t.url, { query })).toEqual(refusal('depth', 3, 4));
    expect(t.ledger.operations().filter((o) => o.orderId === 'limits-deep')).toEqual([]);
    const { body } = await post(t.url, { query: '{ flows(orderId: "limits-deep") { id } }' });
    expect(body).toEqual({ data: { flows: [] } });
  });

  it('counts depth through fragments', async () => {
    const query = `{ flows(limit: 1) { ...Steps } } fragment Steps on FlowRun { steps { flagDecisions { flag } } }`;
    expect(await post(t.url, { query })).toEqual(refusal('depth', 3, 4));
  });

  it('costs a list sized by a variable with the value of each request', async () => {
    const query = 'query Page($n: Int) { flows(limit: $n) { id } }';
    expect(await post(t.url, { query, variables: { n: 101 } })).toEqual(refusal('cost', 100, 101));
    const small = await post(t.url, { query, variables: { n: 100 } });
    expect(small.status).toBe(200);
    expect(small.body.errors).toBeUndefined();
    expect(await post(t.url, { query, variables: { n: 150 } })).toEqual(refusal('cost', 100, 150));
    // Without the variable, the argument's default (limit: Int = 20).
    expect((await post(t.url, { query })).status).toBe(200);
  });

  it('uses the default list size for a list without a size argument', async () => {
    // orders returns [Order!]!: 101 (the configured default list size) × 1.
    expect(await post(t.url, { query: '{ orders(ids: ["1"]) { id } }' })).toEqual(refusal('cost', 100, 101));
  });

  it("does not apply the limits to the flow engine's own Action calls", async () => {
    // The client's operation costs 1; its step `orders` returns a list, which costs 101.
    const lookup = await post(t.url, {
      query: '{ lookupOrders(input: { ids: ["7", "8"] }) { flow { status output } } }',
    });
    expect(lookup).toEqual({
      status: 200,
      body: {
        data: {
          lookupOrders: {
            flow: {
              status: 'COMPLETED',
              output: {
                ids: ['7', '8'],
                page: [
                  { id: '7', number: 'ORD-7' },
                  { id: '8', number: 'ORD-8' },
                ],
              },
            },
          },
        },
      },
    });
    const refund = await post(t.url, {
      query: 'mutation { requestRefund(input: { orderId: "limits-engine", amount: 3 }) { flow { status } } }',
    });
    expect(refund).toEqual({
      status: 200,
      body: { data: { requestRefund: { flow: { status: 'COMPLETED' } } } },
    });
  });

  it('applies the limits to operations sent over the WebSocket, which stays open', async () => {
    const client = subscriptionClient(t.url, { lazy: false, onNonLazyError: () => {} });
    const closes: unknown[] = [];
    client.on('closed', (event) => closes.push(event));
    const limitOf = async (query: string) => {
      const errors = (await collect(client, { query }, (d) => d).failed.promise) as Array<{
        extensions?: Record<string, unknown>;
      }>;
      return errors.map((e) => e.extensions);
    };
    expect(await limitOf('subscription { a: flowEvents { b: cursor } }')).toEqual([
      { code: 'OPERATION_LIMIT_EXCEEDED', limit: 'aliases', maximum: 1, value: 2 },
    ]);
    expect(await limitOf('{ flows(limit: 1) { steps { flagDecisions { flag } } } }')).toEqual([
      { code: 'OPERATION_LIMIT_EXCEEDED', limit: 'depth', maximum: 3, value: 4 },
    ]);
    expect(await limitOf(`{ ${'flows { id } '.repeat(3)}}`)).toEqual([
      { code: 'OPERATION_LIMIT_EXCEEDED', limit: 'repeats', maximum: 2, value: 3 },
    ]);
    expect(await limitOf(`{ ${'__typename '.repeat(61)}}`)).toEqual([
      { code: 'OPERATION_LIMIT_EXCEEDED', limit: 'tokens', maximum: 60, value: 63 },
    ]);
    expect(
      await limitOf(
        `{ x: echoCaller(input: { channel: WEB }) { flow { status } } echoCaller(input: { channel: WEB }) { flow { status } } }`,
      ),
    ).toEqual([{ code: 'OPERATION_LIMIT_EXCEEDED', limit: 'flows', maximum: 1, value: 2 }]);

    const query = collect(client, { query: '{ flows(limit: 1) { id } }' }, (d) => d);
    await query.completed.promise;
    expect(query.events).toEqual([{ flows: expect.any(Array) }]);
    expect(closes).toEqual([]);
    await client.dispose();
  });
});

describe('operation limits from the environment', () => {
  it('defaults every limit, also for a variable set to nothing (`OPERATION_MAX_DEPTH=`)', () => {
    expect(operationLimits(readEnv({}))).toEqual(DEFAULT_OPERATION_LIMITS);
    expect(operationLimits(readEnv({ OPERATION_MAX_DEPTH: '', OPERATION_MAX_COST: '' }))).toEqual(
      DEFAULT_OPERATION_LIMITS,
    );
  });

  it('reads each limit from its variable', () => {
    const env = readEnv({
      OPERATION_MAX_TOKENS: '500',
      OPERATION_MAX_DEPTH: '6',
      OPERATION_MAX_ALIASES: '0',
      OPERATION_MAX_REPEATED_SELECTIONS: '7',
      OPERATION_MAX_FLOWS: '2',
      OPERATION_MAX_COST: '1000',
      OPERATION_DEFAULT_LIST_SIZE: '25',
    });
    expect(operationLimits(env)).toEqual({
      maxTokens: 500,
      maxDepth: 6,
      maxAliases: 0,
      maxRepeatedSelections: 7,
      maxFlows: 2,
      maxCost: 1000,
      defaultListSize: 25,
    });
  });

  it('refuses a limit that is not a whole number of 0 or more, naming the variable', () => {
    const problems = (env: Record<string, string>) => {
      try {
        readEnv(env);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return (error as ConfigError).problems;
      }
      throw new Error('readEnv accepted it');
    };
    expect(problems({ OPERATION_MAX_DEPTH: 'deep' })).toEqual([
      'OPERATION_MAX_DEPTH: Invalid input: expected number, received NaN',
    ]);
    expect(problems({ OPERATION_MAX_COST: '1.5' })).toEqual(['OPERATION_MAX_COST: must be a whole number']);
    expect(problems({ OPERATION_MAX_FLOWS: '-1' })).toEqual([
      'OPERATION_MAX_FLOWS: Too small: expected number to be >=0',
    ]);
  });
});
