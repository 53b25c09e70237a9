import { execute, parse, type ExecutionResult, type GraphQLSchema } from 'graphql';
import { createActionContext, type ActionIdentity } from '@commerce-coordinator/plugin-sdk';

/** Executes `document` on a Plugin's schema as the gateway does, as `identity`. */
export async function executePlugin<T = Record<string, unknown>>(
  schema: GraphQLSchema,
  document: string,
  variables: Record<string, unknown>,
  identity: ActionIdentity,
): Promise<ExecutionResult<T>> {
  return (await execute({
    schema,
    document: parse(document),
    variableValues: variables,
    contextValue: createActionContext(identity, []),
  })) as ExecutionResult<T>;
}
