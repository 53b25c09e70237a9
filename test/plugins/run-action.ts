import { execute, parse, type ExecutionResult } from 'graphql';
import {
  createActionContext,
  StepHeader,
  type EmittedSignal,
  type Plugin,
} from '../../gateway/sdk/plugin.js';
import { encodePrincipal, type Principal } from '../../gateway/sdk/principal.js';

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
 * Executes an operation against a plugin's subgraph schema as the gateway would call it: the step's
 * identity and the caller arrive as headers and become the ActionContext.
 */
export async function runAction<T = Record<string, unknown>>(
  plugin: Plugin,
  query: string,
  variables: Record<string, unknown> = {},
  options: { principal?: Principal; idempotencyKey?: string } = {},
): Promise<ExecutionResult<T> & { signals: EmittedSignal[] }> {
  const headers: Record<string, string> = {};
  if (options.principal) headers[StepHeader.principal] = encodePrincipal(options.principal);
  if (options.idempotencyKey) headers[StepHeader.idempotencyKey] = options.idempotencyKey;
  const signals: EmittedSignal[] = [];
  const result = (await execute({
    schema: plugin.schema,
    document: parse(query),
    variableValues: variables,
    contextValue: createActionContext((name) => headers[name], signals),
  })) as ExecutionResult<T>;
  return { ...result, signals };
}

/** The `extensions.code` of each error, in order. */
export const codes = (result: ExecutionResult) => (result.errors ?? []).map((e) => e.extensions?.code);
