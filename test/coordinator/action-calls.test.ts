import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { GatewayGraphQLRequestContext } from '@apollo/server-gateway-interface';
import type { CompiledAction } from '../../gateway/connections/compile.js';
import { createGatewayContext, type GatewayContext } from '../../gateway/federation/context.js';
import { FederatedExecutor } from '../../gateway/federation/executor.js';
import { formatGatewayError } from '../../gateway/federation/public-codes.js';
import { createActionCaller } from '../../gateway/flows/action-calls.js';
import type { ActionCaller } from '../../gateway/flows/engine.js';
import { silentLogger } from '../../gateway/log.js';
import { REQUEST_REFUND, startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';

let t: TestCoordinator;
let orderSeq = 0;
const nextOrder = () => `action-calls-${++orderSeq}-${Date.now()}`;

beforeAll(async () => {
  t = await startTestCoordinator('action-calls', { redis: false });
});
afterAll(async () => t?.stop());
afterEach(() => vi.restoreAllMocks());

const refundSteps = () =>
  t.coordinator.components.built.compiled.filters.get('order.refund.requested.v1')!.steps;
const stepOf = (action: string): CompiledAction =>
  [...t.coordinator.components.built.compiled.filters.values()]
    .flatMap((f) => f.steps)
    .find((s) => s.action.name === action)!;

describe("a flow's Action calls", () => {
  it("go to the gateway's executor with their document parsed once, not through Apollo Server", async () => {
    const pipeline = vi.spyOn(t.coordinator.components.apollo, 'executeOperation');
    const execute = vi.spyOn(FederatedExecutor.prototype, 'execute');
    const flows: string[] = [];
    for (const orderId of [nextOrder(), nextOrder()]) {
      const { data, errors } = await t.graphql<{ requestRefund: { flow: { id: string; status: string } } }>(
        REQUEST_REFUND,
        { input: { orderId, amount: 3 } },
      );
      expect(errors).toBeUndefined();
      expect(data!.requestRefund.flow.status).toBe('COMPLETED');
      flows.push(data!.requestRefund.flow.id);
    }
    expect(pipeline).not.toHaveBeenCalled();
    const internal = execute.mock.calls
      .map(([requestContext]) => requestContext as GatewayGraphQLRequestContext<GatewayContext>)
      .filter((rc) => rc.context.internal === true && flows.includes(rc.context.step!.flowId));
    const actions = refundSteps().map((s) => s.action.name);
    expect(internal).toHaveLength(2 * actions.length);
    // The second flow's calls run the very documents the first one's did.
    for (let i = 0; i < actions.length; i++) {
      expect(internal[actions.length + i]!.document).toBe(internal[i]!.document);
      expect(internal[i]!.request.query).toBe(stepOf(actions[i]!).document);
    }
  });

  /** The same call through Apollo Server's pipeline, as the engine made it before. */
  const throughPipeline: ActionCaller = async (call, variables, context) => {
    const response = await t.coordinator.components.apollo.executeOperation(
      { query: call.document, variables },
      { contextValue: { ...context, internal: true } },
    );
    if (response.body.kind !== 'single') throw new Error('not single');
    return response.body.singleResult as Awaited<ReturnType<ActionCaller>>;
  };
  const direct = () =>
    createActionCaller({
      executor: () => t.coordinator.components.gateway.executor,
      formatError: formatGatewayError,
      includeStacktrace: true,
      logger: silentLogger,
    });
  const contextOf = (orderId: string, attempt: number) =>
    createGatewayContext({
      flagContext: { kind: 'user', key: 'anonymous' },
      step: { flowId: orderId, stepIndex: 2, attempt, idempotencyKey: `${orderId}:2` },
    });
  /** Both answers, their stacks aside (they differ by where the call came from). */
  const both = async (call: CompiledAction, variables: Record<string, unknown>, orderId: string) => {
    const viaPipeline = await throughPipeline(call, variables, contextOf(orderId, 1));
    const viaExecutor = await direct()(call, variables, contextOf(orderId, 2));
    for (const error of [...(viaPipeline.errors ?? []), ...(viaExecutor.errors ?? [])]) {
      expect(error.extensions?.stacktrace).toEqual(expect.arrayContaining([expect.any(String)]));
      delete error.extensions!.stacktrace;
    }
    return { viaPipeline, viaExecutor };
  };

  it("answer what Apollo Server's pipeline answered: data, a Service's refusal, a failure, bad variables", async () => {
    const refund = stepOf('refundPayment');
    const ok = nextOrder();
    const completed = await both(refund, { input: { orderId: ok, refundAmount: 2 } }, ok);
    expect(completed.viaExecutor).toEqual(completed.viaPipeline);
    expect(completed.viaExecutor.data?.refundPayment).toMatchObject({ refundedAmount: 2 });

    const refused = nextOrder();
    t.ledger.fault({ kind: 'refund', orderId: refused, status: 409, times: 2 });
    const domain = await both(refund, { input: { orderId: refused, refundAmount: 2 } }, refused);
    expect(domain.viaExecutor).toEqual(domain.viaPipeline);
    expect(domain.viaExecutor.errors?.[0]?.extensions).toMatchObject({ code: 'CONFLICT' });

    const failing = nextOrder();
    t.ledger.fault({ kind: 'refund', orderId: failing, status: 503, times: 2 });
    const failure = await both(refund, { input: { orderId: failing, refundAmount: 2 } }, failing);
    expect(failure.viaExecutor).toEqual(failure.viaPipeline);
    expect(failure.viaExecutor.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');

    const coercion = await both(
      refund,
      { input: { orderId: nextOrder(), refundAmount: 'two' } },
      nextOrder(),
    );
    expect(coercion.viaExecutor).toEqual(coercion.viaPipeline);
    expect(coercion.viaExecutor.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('answer a document the supergraph does not validate as the pipeline did', async () => {
    const stale = { ...stepOf('whoCalls'), document: 'mutation { whoCalls(input: {}) { noSuchField } }' };
    const invalid = await both(stale, {}, nextOrder());
    expect(invalid.viaExecutor).toEqual(invalid.viaPipeline);
    expect(invalid.viaExecutor.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
  });
});
