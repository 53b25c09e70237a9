import {
  createSourceEventStream,
  execute,
  GraphQLError,
  print,
  type ExecutionArgs,
  type ExecutionResult,
} from 'graphql';
import { ErrorCode } from '../errors.js';
import { mapAsyncIterable } from './map-iterable.js';

type Result = ExecutionResult | Promise<ExecutionResult>;

/**
 * graphql-js executes a subscription's selection once per subscriber and event: with a hundred
 * subscribers of one signal, a hundred identical executions per signal. The feed hands every subscriber
 * of a process the same event object, and a payload does not depend on who reads it (access is decided
 * when subscribing), so the result for one (payload, operation, variables) is computed once and shared
 * by every subscriber that asked for exactly that.
 */
export function createSharedSubscribe(): (
  args: ExecutionArgs,
) => Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
  const results = new WeakMap<object, Map<string, Result>>();
  return async (args) => {
    let operation: string;
    try {
      operation = `${args.operationName ?? ''}\n${JSON.stringify(args.variableValues ?? {})}\n${print(args.document)}`;
    } catch (error) {
      // graphql-ws closes the whole connection (4500) on a throw here: this subscription fails alone.
      return {
        errors: [
          new GraphQLError(`The subscription's variables cannot be serialised: ${String(error)}`, {
            extensions: { code: ErrorCode.BAD_USER_INPUT },
          }),
        ],
      };
    }
    const source = await createSourceEventStream(args);
    if (!(Symbol.asyncIterator in source)) return source;
    const resultOf = (payload: unknown): Result => {
      if (payload === null || typeof payload !== 'object') return execute({ ...args, rootValue: payload });
      let byOperation = results.get(payload);
      if (!byOperation) results.set(payload, (byOperation = new Map()));
      let result = byOperation.get(operation);
      if (!result) byOperation.set(operation, (result = execute({ ...args, rootValue: payload })));
      return result;
    };
    // Like graphql-js's own mapping, `return()` reaches the source at once.
    return mapAsyncIterable(source, resultOf);
  };
}
