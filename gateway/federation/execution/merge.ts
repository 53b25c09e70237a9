/**
 * Merges a subgraph's answer into the entity it completes, in place: the objects and lists the
 * subgraph returned are adopted, never copied. Same rules as @apollo/gateway's deepMerge (objects
 * merge key by key, lists of equal length element by element, anything else replaces), without its
 * per-key property checks: only `__proto__` needs defining rather than assigning.
 */
export function mergeInto(
  target: Record<string, unknown>,
  source: Record<string, unknown> | null | undefined,
) {
  if (source == null) return;
  for (const key in source) {
    const value = source[key];
    if (value === undefined) continue;
    const existing = Object.hasOwn(target, key) ? target[key] : undefined;
    if (existing && typeof value === 'object' && value !== null && !Array.isArray(value)) {
      mergeInto(existing as Record<string, unknown>, value as Record<string, unknown>);
    } else if (Array.isArray(value) && Array.isArray(existing) && value.length === existing.length) {
      for (let i = 0; i < value.length; i++) {
        const from = value[i] as unknown;
        const into = existing[i] as unknown;
        if (isObject(into) && isObject(from)) mergeInto(into, from);
        else existing[i] = from;
      }
    } else if (key === '__proto__') {
      Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
    } else {
      target[key] = value;
    }
  }
}

export const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
