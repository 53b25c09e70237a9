import { execute, parse, type ExecutionResult } from 'graphql';
import {
  createActionContext,
  type EmittedSignal,
  type Plugin,
  type Principal,
} from '@commerce-coordinator/plugin-sdk';

export const staff: Principal = { kind: 'staff', subject: 'staff-1', username: 'support', lmsUserId: 1 };
export const service: Principal = {
  kind: 'service',
  subject: 'commerce-coordinator',
  service: 'commerce-coordinator',
};
export const learner = (lmsUserId: number, username: string): Principal => ({
  kind: 'learner',
  subject: `learner-${lmsUserId}`,
  lmsUserId,
  username,
});

/**
 * Executes an operation against a plugin's subgraph schema as the gateway would call it: the caller
 * and the step's idempotency key become the ActionContext.
 */
export async function runAction<T = Record<string, unknown>>(
  plugin: Plugin,
  query: string,
  variables: Record<string, unknown> = {},
  options: { principal?: Principal; idempotencyKey?: string } = {},
): Promise<ExecutionResult<T> & { signals: EmittedSignal[] }> {
  const signals: EmittedSignal[] = [];
  const result = (await execute({
    schema: plugin.schema,
    document: parse(query),
    variableValues: variables,
    contextValue: createActionContext(
      { principal: options.principal, idempotencyKey: options.idempotencyKey },
      signals,
    ),
  })) as ExecutionResult<T>;
  return { ...result, signals };
}

/** The `extensions.code` of each error, in order. */
export const codes = (result: ExecutionResult) => (result.errors ?? []).map((e) => e.extensions?.code);
