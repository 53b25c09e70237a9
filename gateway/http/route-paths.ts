/**
 * Route paths with parameters: a segment `:name` of a Plugin route's path (e.g.
 * `/lms/program-price-info/:bundleKey/`) matches one non-empty path segment, handed to the route
 * decoded as `request.params.name`. Exact paths are looked up first and always win; among patterns the
 * one with the most literal segments before the first parameter wins, so adding a pattern never takes
 * a path another route already serves.
 */

/** Longest decoded parameter: course run and program keys are far shorter, a 10 kB one is an attack. */
export const MAX_PARAM_LENGTH = 512;

/** Whether `path` has parameters (a `:name` segment). */
export function isPathPattern(path: string): boolean {
  return path.split('/').some((segment) => segment.startsWith(':'));
}

/** The shape two patterns collide on: their parameter names do not matter (`/a/:x/` = `/a/:y/`). */
export function patternShape(path: string): string {
  return path
    .split('/')
    .map((segment) => (segment.startsWith(':') ? ':' : segment))
    .join('/');
}

/** A path parameter that is not one segment of an ordinary value. */
export class PathParamError extends Error {}

interface CompiledPattern<T> {
  pattern: string;
  segments: readonly string[];
  value: T;
}

/** Orders patterns so the more literal one is tried first: literal segments beat parameters, left to right. */
function specificity(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const pa = a[i]!.startsWith(':');
    const pb = b[i]!.startsWith(':');
    if (pa !== pb) return pa ? 1 : -1;
  }
  return 0;
}

/**
 * The patterns among `routes`' keys, ready to match a request's path. `find` answers the pattern a
 * path matches (the route's key, for a bounded metrics label) and its value, or undefined.
 */
export function compilePatterns<T>(routes: ReadonlyMap<string, T>, exact: ReadonlySet<string> = new Set()) {
  const compiled: Array<CompiledPattern<T>> = [];
  for (const [pattern, value] of routes)
    if (isPathPattern(pattern)) compiled.push({ pattern, segments: pattern.split('/'), value });
  compiled.sort((a, b) => specificity(a.segments, b.segments));
  return {
    size: compiled.length,
    find(pathname: string): { pattern: string; value: T } | undefined {
      if (!compiled.length || exact.has(pathname)) return undefined;
      const segments = pathname.split('/');
      for (const candidate of compiled)
        if (segmentsMatch(candidate.segments, segments))
          return { pattern: candidate.pattern, value: candidate.value };
      return undefined;
    },
  };
}

function segmentsMatch(pattern: readonly string[], path: readonly string[]): boolean {
  if (pattern.length !== path.length) return false;
  for (let i = 0; i < pattern.length; i++) {
    const expected = pattern[i]!;
    const actual = path[i]!;
    if (expected.startsWith(':')) {
      if (!actual) return false;
    } else if (expected !== actual) return false;
  }
  return true;
}

/**
 * The decoded parameters of `pathname` (as the URL parser gives it: percent-encoded) under `pattern`.
 * Throws PathParamError on a segment that is not a plain value once decoded: malformed percent
 * encoding, an encoded `/` or `\`, `.`/`..`, control characters, or over MAX_PARAM_LENGTH.
 */
export function pathParams(pattern: string, pathname: string): Record<string, string> {
  const names = pattern.split('/');
  const segments = pathname.split('/');
  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    if (!name.startsWith(':')) continue;
    const raw = segments[i] ?? '';
    if (raw.length > MAX_PARAM_LENGTH * 3)
      throw new PathParamError(`Path parameter ${name.slice(1)} is over ${MAX_PARAM_LENGTH} characters`);
    let value: string;
    try {
      value = decodeURIComponent(raw);
    } catch {
      throw new PathParamError(`Path parameter ${name.slice(1)} is not valid percent-encoding`);
    }
    if (value.length > MAX_PARAM_LENGTH)
      throw new PathParamError(`Path parameter ${name.slice(1)} is over ${MAX_PARAM_LENGTH} characters`);
    // eslint-disable-next-line no-control-regex
    if (!value || value === '.' || value === '..' || /[/\\\u0000-\u001f\u007f]/.test(value))
      throw new PathParamError(`Path parameter ${name.slice(1)} must be one plain path segment`);
    params[name.slice(1)] = value;
  }
  return params;
}
