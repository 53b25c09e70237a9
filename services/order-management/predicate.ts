/**
 * The subset of commercetools query predicates (`where=`) the stand-in understands:
 *
 *   id in ("a", "b")                       id in :ids   (input variables: var.ids=a&var.ids=b)
 *   createdAt > "2026-01-01T00:00:00.000Z"  orderState = "Complete"    interfaceId != :id
 *   custom(fields(lmsUserId = 42))          paymentInfo(payments(id = "…"))   (nested objects and arrays)
 *   transactions(type = "Charge" and interactionId = "…")   a and b   a or b   not(a)   (a)
 *   custom is defined   custom is not defined
 *
 * A nested `field(…)` on an array matches when any element matches, as in commercetools.
 */
export type Variables = ReadonlyMap<string, readonly string[]>;

type Scalar = string | number | boolean;
type Operand = { kind: 'value'; value: Scalar } | { kind: 'var'; name: string };
type Node =
  | { kind: 'and' | 'or'; left: Node; right: Node }
  | { kind: 'not'; inner: Node }
  | { kind: 'nested'; field: string; inner: Node }
  | { kind: 'compare'; field: string; op: string; operand: Operand }
  | { kind: 'in'; field: string; negated: boolean; operands: Operand[] }
  | { kind: 'defined'; field: string; negated: boolean };

export class PredicateError extends Error {}

const TOKEN =
  /\s*(?:("(?:[^"\\]|\\.)*")|(-?\d+(?:\.\d+)?)|(:[A-Za-z_][\w]*)|([A-Za-z_][\w-]*)|(<=|>=|!=|<>|[=<>(),]))/y;

function tokenize(source: string): string[] {
  const tokens: string[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < source.length) {
    if (/^\s*$/.test(source.slice(TOKEN.lastIndex))) break;
    const at = TOKEN.lastIndex;
    const match = TOKEN.exec(source);
    if (!match) throw new PredicateError(`Syntax error at position ${at} of '${source}'`);
    tokens.push(match[0].trim());
  }
  return tokens;
}

export function parsePredicate(source: string): Node {
  const tokens = tokenize(source);
  let pos = 0;
  const peek = (offset = 0) => tokens[pos + offset];
  const lower = (offset = 0) => peek(offset)?.toLowerCase();
  const take = (expected?: string) => {
    const token = tokens[pos++];
    if (token === undefined || (expected !== undefined && token.toLowerCase() !== expected))
      throw new PredicateError(`Expected ${expected ?? 'more input'} in '${source}'`);
    return token;
  };
  const operand = (): Operand => {
    const token = take();
    if (token.startsWith(':')) return { kind: 'var', name: token.slice(1) };
    if (token.startsWith('"')) return { kind: 'value', value: JSON.parse(token) as string };
    if (/^-?\d/.test(token)) return { kind: 'value', value: Number(token) };
    if (token === 'true' || token === 'false') return { kind: 'value', value: token === 'true' };
    throw new PredicateError(`Expected a value, got '${token}' in '${source}'`);
  };
  const or = (): Node => {
    let node = and();
    while (lower() === 'or') {
      take();
      node = { kind: 'or', left: node, right: and() };
    }
    return node;
  };
  const and = (): Node => {
    let node = unary();
    while (lower() === 'and') {
      take();
      node = { kind: 'and', left: node, right: unary() };
    }
    return node;
  };
  const unary = (): Node => {
    if (lower() === 'not' && peek(1) === '(') {
      take();
      return { kind: 'not', inner: unary() };
    }
    if (peek() === '(') {
      take();
      const inner = or();
      take(')');
      return inner;
    }
    return field();
  };
  const field = (): Node => {
    const name = take();
    if (!/^[A-Za-z_]/.test(name))
      throw new PredicateError(`Expected a field name, got '${name}' in '${source}'`);
    const next = lower();
    if (next === '(') {
      take();
      const inner = or();
      take(')');
      return { kind: 'nested', field: name, inner };
    }
    if (next === 'is') {
      take();
      const negated = lower() === 'not';
      if (negated) take();
      take('defined');
      return { kind: 'defined', field: name, negated };
    }
    if (next === 'in' || (next === 'not' && lower(1) === 'in')) {
      const negated = next === 'not';
      if (negated) take();
      take('in');
      // `id in :ids` takes every value of the multi-valued input variable.
      if (peek()?.startsWith(':')) return { kind: 'in', field: name, negated, operands: [operand()] };
      take('(');
      const operands = [operand()];
      while (peek() === ',') {
        take();
        operands.push(operand());
      }
      take(')');
      return { kind: 'in', field: name, negated, operands };
    }
    if (next && ['=', '!=', '<>', '<', '>', '<=', '>='].includes(next)) {
      const op = take();
      return { kind: 'compare', field: name, op: op === '<>' ? '!=' : op, operand: operand() };
    }
    throw new PredicateError(`Expected an operator after '${name}' in '${source}'`);
  };
  const node = or();
  if (pos !== tokens.length) throw new PredicateError(`Unexpected '${peek()}' in '${source}'`);
  return node;
}

function resolve(operand: Operand, variables: Variables): Scalar[] {
  if (operand.kind === 'value') return [operand.value];
  const values = variables.get(operand.name);
  if (!values?.length)
    throw new PredicateError(`The input variable '${operand.name}' (var.${operand.name}) is missing`);
  return [...values];
}

function compare(actual: unknown, op: string, expected: Scalar): boolean {
  if (Array.isArray(actual)) return actual.some((a) => compare(a, op, expected));
  if (actual === undefined || actual === null) return op === '!=';
  // Input variables arrive as strings; compare them as numbers against numeric fields.
  const want = typeof actual === 'number' && typeof expected === 'string' ? Number(expected) : expected;
  const have = actual as Scalar;
  switch (op) {
    case '=':
      return have === want;
    case '!=':
      return have !== want;
    case '<':
      return have < want;
    case '>':
      return have > want;
    case '<=':
      return have <= want;
    case '>=':
      return have >= want;
    default:
      throw new PredicateError(`Unknown operator ${op}`);
  }
}

function evaluate(node: Node, target: unknown, variables: Variables): boolean {
  const value = (field: string) =>
    target && typeof target === 'object' ? (target as Record<string, unknown>)[field] : undefined;
  switch (node.kind) {
    case 'and':
      return evaluate(node.left, target, variables) && evaluate(node.right, target, variables);
    case 'or':
      return evaluate(node.left, target, variables) || evaluate(node.right, target, variables);
    case 'not':
      return !evaluate(node.inner, target, variables);
    case 'nested': {
      const inner = value(node.field);
      if (Array.isArray(inner)) return inner.some((element) => evaluate(node.inner, element, variables));
      return inner !== undefined && inner !== null && evaluate(node.inner, inner, variables);
    }
    case 'compare':
      return resolve(node.operand, variables).every((expected) =>
        compare(value(node.field), node.op, expected),
      );
    case 'in': {
      const candidates = node.operands.flatMap((o) => resolve(o, variables));
      const found = candidates.some((c) => compare(value(node.field), '=', c));
      return node.negated ? !found : found;
    }
    case 'defined': {
      const defined = value(node.field) !== undefined && value(node.field) !== null;
      return node.negated ? !defined : defined;
    }
  }
}

/** A matcher for one `where` parameter; throws PredicateError on a malformed predicate. */
export function compilePredicate(source: string, variables: Variables): (resource: unknown) => boolean {
  const node = parsePredicate(source);
  return (resource) => evaluate(node, resource, variables);
}
