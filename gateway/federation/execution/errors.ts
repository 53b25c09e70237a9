import { ERRORS, errorCodeDef } from '@apollo/federation-internals';
import type { ResponsePath } from '@apollo/query-planner';
import { GraphQLError, type GraphQLErrorOptions, type GraphQLFormattedError } from 'graphql';

/**
 * A subgraph's error as the client sees it, the way @apollo/gateway reports it: its path moved under
 * the fetch's place in the response (an entity fetch's `_entities` index mapped to the entity's own
 * path), `serviceName` added, and a known or default downstream code.
 */
export function subgraphError(
  error: GraphQLFormattedError,
  serviceName: string,
  path: GraphQLErrorOptions['path'],
): GraphQLError {
  const message = error.message || `Error while fetching subquery from service "${serviceName}"`;
  const options: GraphQLErrorOptions = {
    originalError: error as Error,
    path,
    extensions: { ...error.extensions, serviceName },
  };
  const code = errorCodeDef(error);
  if (!code && error.extensions?.code) return new GraphQLError(message, options);
  return (code ?? ERRORS.DOWNSTREAM_SERVICE_ERROR).err(message, options);
}

/**
 * Maps a subgraph error's path into the client response. Entity fetches answer `_entities.<i>...`:
 * the i-th entity is the i-th non-null object at the fetch's flatten path, whose concrete paths are
 * computed only when an error needs them.
 */
export function errorPathMapper(
  isEntityFetch: boolean,
  flattenPath: ResponsePath,
  fullResult: unknown,
): (path: GraphQLFormattedError['path']) => GraphQLErrorOptions['path'] {
  let concrete: Array<Array<string | number>> | undefined;
  return (errorPath) => {
    if (isEntityFetch && typeof errorPath?.[1] === 'number') {
      if (!concrete) {
        concrete = [];
        concretePaths([], flattenPath, fullResult, concrete);
      }
      return [...(concrete[errorPath[1]] ?? []), ...errorPath.slice(2)];
    }
    return errorPath ? [...(flattenPath as Array<string | number>), ...errorPath] : undefined;
  };
}

function concretePaths(
  parent: Array<string | number>,
  path: ResponsePath,
  data: unknown,
  out: Array<Array<string | number>>,
): void {
  if (data == null) return;
  const [head, ...rest] = path;
  if (head === undefined) {
    out.push(parent.slice());
  } else if (head === '@' || (typeof head === 'string' && Array.isArray(data))) {
    if (!Array.isArray(data)) throw new Error('expected array when encountering `@`');
    data.forEach((value, i) => {
      parent.push(i);
      concretePaths(parent, head === '@' ? rest : path, value, out);
      parent.pop();
    });
  } else if (typeof head === 'string') {
    const object = data as Record<string, unknown>;
    if (Object.hasOwn(object, head)) {
      parent.push(head);
      concretePaths(parent, rest, object[head], out);
      parent.pop();
    }
  } else {
    throw new Error(`unknown path part "${String(head)}"`);
  }
}
