/**
 * Label values from bounded sets. A Prometheus series exists per distinct label set, so a value a
 * client chooses (a path, an operation name) must be mapped into a set the Coordinator fixes.
 */

/** A value outside every bounded set: an unknown method, an operation name past the cap. */
export const OTHER = '(other)';
/** A request that matched no route (a 404). */
export const UNMATCHED_ROUTE = '(unmatched)';
/** An operation without a name. */
export const ANONYMOUS_OPERATION = '(anonymous)';
/** A request whose operation could not be resolved: it did not parse or validate, or named none. */
export const UNRESOLVED_OPERATION = '(unresolved)';

const METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export function methodLabel(method: string | undefined): string {
  return method && METHODS.has(method) ? method : OTHER;
}

/** An exact route path the server serves, or the pattern it matched, else `(unmatched)`: never the raw path. */
export function routeLabel(
  pathname: string,
  routes: ReadonlySet<string>,
  patternOf?: (pathname: string) => string | undefined,
): string {
  return routes.has(pathname) ? pathname : (patternOf?.(pathname) ?? UNMATCHED_ROUTE);
}

/** Longest operation name kept as a label value; GraphQL names have no length limit of their own. */
const MAX_NAME_LENGTH = 64;

/**
 * Operation names as label values: the first `max` distinct names seen are kept, later ones and
 * names over 64 characters are `(other)`. Per instance, so each Coordinator counts its own.
 */
export class OperationNameLabels {
  private readonly seen = new Set<string>();

  constructor(private readonly max: number) {}

  labelOf(name: string | null | undefined): string {
    if (!name) return ANONYMOUS_OPERATION;
    if (this.seen.has(name)) return name;
    if (name.length > MAX_NAME_LENGTH || this.seen.size >= this.max) return OTHER;
    this.seen.add(name);
    return name;
  }
}
