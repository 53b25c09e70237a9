/**
 * commercetools cart predicates (a cart discount's `cartPredicate`), evaluated by the Plugin against
 * one course run's product and variant, to tell whether a discount code can apply to that course
 * before there is a cart. The language subset is the reference's (its Lark grammar,
 * `predicate_parser.py`):
 *
 *   a and b   a or b   (a)                      quantity = 1   attributes.mode != "audit"
 *   product.key = "edX+DemoX"   attributes.`course-key` = "x"  (backticks: names with dashes)
 *   attributes.mode in ("verified", "professional")   attributes.mode not in ("audit")
 *   custom.bundleId is defined   custom.bundleId is not defined
 *   lineItemCount(sku = "x") > 0   lineItemExists(attributes.mode = "verified") = true
 *
 * against the context `{ quantity: 1, custom: { bundleId: null }, product: { id, key },
 * variant: { sku, key }, attributes: { name: value } }` (one line item, as the reference builds it).
 * Anything else — a syntax error, an unknown function, a field the context lacks, comparing a string
 * with a number — is a PredicateEvaluationError: the caller decides what that means (the discount
 * code check skips the predicate, as the reference does).
 */

export class PredicateEvaluationError extends Error {
  override readonly name = 'PredicateEvaluationError';
}

type Scalar = string | number | boolean | null;
type Value =
  { kind: 'string'; value: string } | { kind: 'number'; value: number } | { kind: 'name'; value: string };
type Field = { kind: 'path'; path: string[] } | { kind: 'call'; name: string; args: Expr[] };
type Expr =
  | { kind: 'and' | 'or'; left: Expr; right: Expr }
  | { kind: 'compare'; field: Field; op: string; value: Value }
  | { kind: 'in'; field: Field; negated: boolean; values: Value[] }
  | { kind: 'defined'; field: Field; negated: boolean };

export interface PredicateContext {
  quantity: number;
  custom: Record<string, unknown>;
  product: { id: string; key?: string };
  variant: { sku?: string; key?: string };
  attributes: Record<string, unknown>;
}

/** A predicate longer than this is not a discount's: refused rather than parsed. */
const MAX_PREDICATE_LENGTH = 10_000;
const MAX_DEPTH = 64;
const OPERATORS = ['>=', '<=', '!=', '=', '>', '<'];

type Token =
  | { kind: 'string'; value: string }
  | { kind: 'number'; value: number }
  | { kind: 'name'; value: string }
  | { kind: 'backtick'; value: string }
  | { kind: 'op'; value: string }
  | { kind: 'punct'; value: '(' | ')' | ',' | '.' };

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      while (j < source.length && source[j] !== '"') j += source[j] === '\\' ? 2 : 1;
      if (j >= source.length) throw new PredicateEvaluationError(`Unterminated string at ${i}`);
      try {
        tokens.push({ kind: 'string', value: JSON.parse(source.slice(i, j + 1)) as string });
      } catch {
        throw new PredicateEvaluationError(`Malformed string at ${i}`);
      }
      i = j + 1;
      continue;
    }
    if (c === '`') {
      const end = source.indexOf('`', i + 1);
      if (end <= i + 1) throw new PredicateEvaluationError(`Malformed backtick name at ${i}`);
      tokens.push({ kind: 'backtick', value: source.slice(i + 1, end) });
      i = end + 1;
      continue;
    }
    const number = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/.exec(source.slice(i, i + 64));
    if (number && (/\d/.test(c) || ((c === '-' || c === '+') && /[\d.]/.test(source[i + 1] ?? '')))) {
      tokens.push({ kind: 'number', value: Number(number[0]) });
      i += number[0].length;
      continue;
    }
    const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(source.slice(i, i + 256));
    if (name) {
      tokens.push({ kind: 'name', value: name[0] });
      i += name[0].length;
      continue;
    }
    const op = OPERATORS.find((o) => source.startsWith(o, i));
    if (op) {
      tokens.push({ kind: 'op', value: op });
      i += op.length;
      continue;
    }
    if (c === '(' || c === ')' || c === ',' || c === '.') {
      tokens.push({ kind: 'punct', value: c });
      i++;
      continue;
    }
    throw new PredicateEvaluationError(`Unexpected '${c}' at ${i}`);
  }
  return tokens;
}

/** Parses a cart predicate; throws PredicateEvaluationError on anything outside the language. */
export function parseCartPredicate(source: string): Expr {
  if (source.length > MAX_PREDICATE_LENGTH)
    throw new PredicateEvaluationError(`Predicate over ${MAX_PREDICATE_LENGTH} characters`);
  const tokens = tokenize(source);
  let pos = 0;
  let depth = 0;
  const peek = (offset = 0) => tokens[pos + offset];
  const isWord = (word: string, offset = 0) => {
    const t = peek(offset);
    return t?.kind === 'name' && t.value === word;
  };
  const isPunct = (p: string, offset = 0) => {
    const t = peek(offset);
    return t?.kind === 'punct' && t.value === p;
  };
  const fail = (what: string): never => {
    const t = peek();
    throw new PredicateEvaluationError(`Expected ${what}${t ? `, got '${String(t.value)}'` : ' at the end'}`);
  };
  const expectPunct = (p: string) => {
    if (!isPunct(p)) fail(`'${p}'`);
    pos++;
  };
  const nest = <T>(parse: () => T): T => {
    if (++depth > MAX_DEPTH) throw new PredicateEvaluationError(`Predicate nested over ${MAX_DEPTH} levels`);
    try {
      return parse();
    } finally {
      depth--;
    }
  };

  const expr = (): Expr =>
    nest(() => {
      let left = term();
      while (isWord('or')) {
        pos++;
        left = { kind: 'or', left, right: term() };
      }
      return left;
    });
  const term = (): Expr => {
    let left = factor();
    while (isWord('and')) {
      pos++;
      left = { kind: 'and', left, right: factor() };
    }
    return left;
  };
  const factor = (): Expr => {
    if (isPunct('(')) {
      pos++;
      const inner = expr();
      expectPunct(')');
      return inner;
    }
    return comparison();
  };
  const value = (): Value => {
    const t = peek();
    if (t?.kind === 'string' || t?.kind === 'number' || t?.kind === 'name') {
      pos++;
      return t as Value;
    }
    return fail('a value');
  };
  const field = (): Field => {
    const first = peek();
    if (first?.kind !== 'name') return fail('a field');
    pos++;
    if (isPunct('(')) {
      pos++;
      const args: Expr[] = [];
      if (!isPunct(')')) {
        args.push(expr());
        while (isPunct(',')) {
          pos++;
          args.push(expr());
        }
      }
      expectPunct(')');
      return { kind: 'call', name: first.value, args };
    }
    const path = [first.value];
    while (isPunct('.')) {
      pos++;
      const part = peek();
      if (part?.kind !== 'name' && part?.kind !== 'backtick') return fail('a field name after .');
      pos++;
      path.push(part.value);
    }
    return { kind: 'path', path };
  };
  const comparison = (): Expr => {
    const f = field();
    const t = peek();
    if (t?.kind === 'op') {
      pos++;
      return { kind: 'compare', field: f, op: t.value, value: value() };
    }
    if (isWord('is')) {
      pos++;
      const negated = isWord('not');
      if (negated) pos++;
      if (!isWord('defined')) fail("'defined'");
      pos++;
      return { kind: 'defined', field: f, negated };
    }
    const negated = isWord('not');
    if (negated) pos++;
    if (!isWord('in')) return fail('an operator');
    pos++;
    expectPunct('(');
    const values: Value[] = [];
    if (!isPunct(')')) {
      values.push(value());
      while (isPunct(',')) {
        pos++;
        values.push(value());
      }
    }
    expectPunct(')');
    return { kind: 'in', field: f, negated, values };
  };

  const tree = expr();
  if (pos !== tokens.length) fail('the end of the predicate');
  return tree;
}

const MISSING = Symbol('missing');

function lookup(context: PredicateContext, path: readonly string[]): unknown {
  let node: unknown = context;
  for (const key of path) {
    if (node === null || typeof node !== 'object' || !Object.prototype.hasOwnProperty.call(node, key))
      return MISSING;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** The reference compares `true`/`false` as 1/0 (Python's bool is an int). */
const normalize = (v: unknown): unknown =>
  v === true ? 1 : v === false ? 0 : v === 'true' ? 1 : v === 'false' ? 0 : v;

function literal(v: Value): Scalar {
  return v.value;
}

function evaluate(expr: Expr, context: PredicateContext, depth = 0): boolean | number {
  if (depth > MAX_DEPTH) throw new PredicateEvaluationError('Predicate nested too deep');
  const fieldValue = (field: Field): unknown => {
    if (field.kind === 'call') {
      if (field.name !== 'lineItemCount' && field.name !== 'lineItemExists')
        throw new PredicateEvaluationError(`Function ${field.name} is not supported`);
      if (!field.args.length)
        throw new PredicateEvaluationError(`Function ${field.name} called with no arguments`);
      // One line item (the course run): it matches or it does not.
      return evaluate(field.args[0]!, context, depth + 1) ? 1 : 0;
    }
    const found = lookup(context, field.path);
    if (found === MISSING) throw new PredicateEvaluationError(`No field ${field.path.join('.')} to compare`);
    return found;
  };
  switch (expr.kind) {
    case 'and':
      return (
        Boolean(evaluate(expr.left, context, depth + 1)) && Boolean(evaluate(expr.right, context, depth + 1))
      );
    case 'or':
      return (
        Boolean(evaluate(expr.left, context, depth + 1)) || Boolean(evaluate(expr.right, context, depth + 1))
      );
    case 'defined': {
      const found = expr.field.kind === 'path' ? lookup(context, expr.field.path) : fieldValue(expr.field);
      const defined = found !== MISSING && found !== null && found !== undefined;
      return expr.negated ? !defined : defined;
    }
    case 'in': {
      const actual = normalize(fieldValue(expr.field));
      const found = expr.values.some((v) => normalize(literal(v)) === actual);
      return expr.negated ? !found : found;
    }
    case 'compare': {
      const actual = normalize(fieldValue(expr.field));
      const expected = normalize(literal(expr.value));
      if (expr.op === '=') return actual === expected;
      if (expr.op === '!=') return actual !== expected;
      const bothNumbers = typeof actual === 'number' && typeof expected === 'number';
      const bothStrings = typeof actual === 'string' && typeof expected === 'string';
      if (!bothNumbers && !bothStrings)
        throw new PredicateEvaluationError(
          `Cannot order ${typeof actual} and ${typeof expected} with ${expr.op}`,
        );
      const a = actual as number | string;
      const b = expected as number | string;
      if (expr.op === '>') return a > b;
      if (expr.op === '<') return a < b;
      if (expr.op === '>=') return a >= b;
      return a <= b;
    }
  }
}

/** Whether the predicate holds for the context; throws PredicateEvaluationError when it cannot tell. */
export function checkCartPredicate(predicate: string, context: PredicateContext): boolean {
  if (predicate.replace(/\s+/g, '') === '1=1') return true;
  const result = evaluate(parseCartPredicate(predicate), context);
  if (typeof result !== 'boolean')
    throw new PredicateEvaluationError(`The predicate evaluates to ${String(result)}, not true or false`);
  return result;
}

/** commercetools' predicate of a cart discount that applies to every cart. */
export const EVERY_CART = '1 = 1';

/**
 * The context of one line of `variant` of `product`, as the reference builds it: enum attributes by
 * their key. (The reference swaps `variant.sku` and `variant.key`; here each is what it says.)
 */
export function predicateContextOf(
  product: { id: string; key?: string },
  variant: { sku?: string; key?: string; attributes?: ReadonlyArray<{ name: string; value: unknown }> },
): PredicateContext {
  const attributes: Record<string, unknown> = {};
  for (const { name, value } of variant.attributes ?? [])
    attributes[name] =
      value && typeof value === 'object' && 'key' in value ? (value as { key: unknown }).key : value;
  return {
    quantity: 1,
    custom: { bundleId: null },
    product: { id: product.id, ...(product.key !== undefined ? { key: product.key } : {}) },
    variant: {
      ...(variant.sku !== undefined ? { sku: variant.sku } : {}),
      ...(variant.key !== undefined ? { key: variant.key } : {}),
    },
    attributes,
  };
}
