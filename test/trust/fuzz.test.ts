import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../gateway/errors.js';
import { DEMO } from '../../services/demo.js';
import { STRIPE_WEBHOOK_SECRET } from '../../services/embedded.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';

/**
 * Thousands of generated requests — GraphQL operations mutated from real ones, malformed bodies,
 * odd transports and headers, signed and forged webhooks, REST calls with random input — against the
 * Coordinator with every Plugin and Service stand-in. None may answer 5xx, and every error must carry
 * one of the documented codes (gateway/errors.ts), never INTERNAL_SERVER_ERROR or a code of a library.
 *
 * The generator is seeded: FUZZ_SEED reproduces a run, FUZZ_CASES scales it (default 3000 GraphQL
 * requests and 1500 others). A failure names the seed and the request.
 */

const SEED = Number(process.env.FUZZ_SEED ?? 20261203);
const GRAPHQL_CASES = Number(process.env.FUZZ_CASES ?? 3000);
const OTHER_CASES = Math.ceil(GRAPHQL_CASES / 2);
const CONCURRENCY = 8;

/** mulberry32: small, fast and good enough to pick cases reproducibly. */
function random(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const chance = (p: number) => next() < p;
  return { next, int, pick, chance };
}
type Random = ReturnType<typeof random>;

const DOCUMENTED = new Set<string>(
  Object.values(ErrorCode).filter((c) => c !== ErrorCode.INTERNAL_SERVER_ERROR),
);

const ada = DEMO.learners.ada;
const order = DEMO.orders.adaStripe;

/** Real operations, the seeds of the mutations. */
const CORPUS = [
  `query OrderHistory { orderHistory(input: {}) { flow { status output } } }`,
  `query Receipt { orderReceipt(input: { orderNumber: "${order.orderNumber}" }) { flow { status output } } }`,
  `query Order { order(id: "${order.id}") { orderNumber payment { psp stripe { status } } lineItems { title state } enrollments { courseRunKey } flows { name status } } }`,
  `query RecentFlows { flows(limit: 10) { name receiver status steps { action status implementation flagDecisions { flag value } } } }`,
  `query ($id: ID!) { flow(id: $id) { id input output error { code message details } } }`,
  `mutation Refund($input: RefundRequestInput!, $key: String) { requestRefund(input: $input, idempotencyKey: $key) { flow { status steps { action status } } } }`,
  `mutation { retireLearner(input: { lmsUserId: 999999 }) { flow { status } } }`,
  `query { ordersForLearner(lmsUserId: ${ada.lmsUserId}) { id orderNumber createdAt } }`,
  `query { learner(username: "${ada.username}") { lmsUserId email } }`,
  `query { legacyOrders(username: "${ada.username}") { number total } }`,
  `query { deadLetters(receiver: "record-psp-refund") { id error { code } } }`,
  `query { checkoutPage(input: { query: "sku=8CF08E5" }) { flow { status output } } }`,
  `mutation { createReturn(input: { orderId: "${order.id}", lineItemIds: ["li-ada-1-demo"] }) { returnId } }`,
  `query { __schema { types { name fields { name } } } }`,
  `query A { flows { id } } query B { order(id: "x") { id } }`,
  `subscription { flowEvents { type flowId } }`,
  `fragment F on FlowRun { id steps { action } } query { flows { ...F } }`,
];

const TOKENS_CHARS = [
  '{',
  '}',
  '(',
  ')',
  ':',
  '$',
  '!',
  '@',
  '...',
  '"',
  '#',
  ',',
  '[',
  ']',
  '=',
  '|',
  '&',
  '\u0000',
  '\ud800',
  '\\',
];
const NAMES = [
  'flows',
  'flow',
  'order',
  'id',
  'input',
  'query',
  'mutation',
  'subscription',
  'fragment',
  '__typename',
  'on',
  'x',
  'include',
  'skip',
];

function mutateQuery(r: Random, query: string): string {
  let q = query;
  for (let n = 1 + r.int(4); n > 0; n--) {
    const at = r.int(q.length + 1);
    switch (r.int(9)) {
      case 0:
        q = q.slice(0, at) + q.slice(at + 1 + r.int(5));
        break;
      case 1:
        q = q.slice(0, at) + r.pick(TOKENS_CHARS) + q.slice(at);
        break;
      case 2:
        q = q.slice(0, at) + ` ${r.pick(NAMES)} ` + q.slice(at);
        break;
      case 3:
        q = q.slice(0, at);
        break;
      case 4: {
        const end = Math.min(q.length, at + r.int(40));
        q = q.slice(0, end) + q.slice(at, end) + q.slice(end);
        break;
      }
      case 5:
        q = q.replace(/\(limit: \d+\)|\(limit: 10\)/, `(limit: ${r.pick([0, -1, 201, 2 ** 31, 1e6])})`);
        break;
      case 6:
        q = q.replace(/\{ id \}/, `{ id ${'a: id '.repeat(r.int(50))}}`);
        break;
      case 7:
        q = q.replace(
          /flows/,
          `flows @${r.pick(['skip', 'include', 'deprecated', 'nope'])}(if: ${r.pick(['true', '"x"', '$v'])})`,
        );
        break;
      default:
        q = q.replace(
          /"[^"]*"/,
          JSON.stringify(r.pick(['', 'x'.repeat(3000), 'a\u0000b', '\ud800', '../../etc', "'; drop table"])),
        );
    }
  }
  return q;
}

function deepQuery(r: Random): string {
  const depth = 5 + r.int(60);
  return `{ flows { ${'steps { flagDecisions { '.repeat(0)}${'__typename a: flows { '.repeat(depth)}id${' }'.repeat(depth)} } }`;
}

function randomJson(r: Random, depth = 0): unknown {
  switch (r.int(depth > 3 ? 5 : 8)) {
    case 0:
      return null;
    case 1:
      return r.pick([0, -1, 1.5, 2 ** 53, 1e308, Number.NaN]);
    case 2:
      return r.pick(['', 'x', 'a\u0000b', '\ud800', 'x'.repeat(r.int(5000)), '{}', '2026-13-45T99:99:99Z']);
    case 3:
      return r.chance(0.5);
    case 4:
      return r.pick([order.id, order.orderNumber, 'li-ada-1-demo', ada.username]);
    case 5:
      return Array.from({ length: r.int(4) }, () => randomJson(r, depth + 1));
    default: {
      const object: Record<string, unknown> = {};
      for (let n = r.int(5); n > 0; n--) {
        const key = r.pick([
          'orderId',
          'lineItemIds',
          'username',
          'query',
          'orderNumber',
          'lmsUserId',
          'id',
          'x',
          '__proto__',
          'constructor',
        ]);
        // An own property even for `__proto__`, as JSON.parse makes one.
        Object.defineProperty(object, key, {
          value: randomJson(r, depth + 1),
          enumerable: true,
          configurable: true,
          writable: true,
        });
      }
      return object;
    }
  }
}

interface Case {
  what: string;
  path: string;
  init: RequestInit;
}

function graphqlCase(r: Random, tokens: readonly (string | undefined)[]): Case {
  const bearer = r.pick(tokens);
  const headers: Record<string, string> = {
    ...(bearer ? { authorization: r.chance(0.05) ? `Bearer ${bearer}x` : `Bearer ${bearer}` } : {}),
  };
  if (r.chance(0.03))
    headers.authorization = r.pick(['Bearer', 'Basic abc', 'Bearer a.b.c', 'x'.repeat(3000)]);
  let query: unknown = r.chance(0.85)
    ? mutateQuery(r, r.pick(CORPUS))
    : r.chance(0.5)
      ? deepQuery(r)
      : r.pick(CORPUS);
  if (r.chance(0.05)) query = randomJson(r);
  const body: Record<string, unknown> = { query };
  if (r.chance(0.5))
    body.variables = r.chance(0.8)
      ? { input: randomJson(r), key: randomJson(r), id: randomJson(r) }
      : randomJson(r);
  if (r.chance(0.15)) body.operationName = r.pick(['A', 'B', 'Nope', '', null, 3, 'OrderHistory']);
  if (r.chance(0.03)) body.extensions = { persistedQuery: { version: 1, sha256Hash: 'abc' } };
  const transport = r.int(20);
  if (transport === 0) {
    const params = new URLSearchParams({ query: typeof query === 'string' ? query : JSON.stringify(query) });
    if (body.variables !== undefined) params.set('variables', JSON.stringify(body.variables));
    return {
      what: `GET ${params}`,
      path: `/graphql?${params}`,
      init: { headers: { ...headers, 'apollo-require-preflight': '1' } },
    };
  }
  if (transport === 1)
    return {
      what: 'batch',
      path: '/graphql',
      init: {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify([body, body]),
      },
    };
  if (transport === 2)
    return {
      what: 'text/plain',
      path: '/graphql',
      init: {
        method: 'POST',
        headers: { ...headers, 'content-type': 'text/plain' },
        body: JSON.stringify(body),
      },
    };
  if (transport === 3)
    return {
      what: 'bad JSON',
      path: '/graphql',
      init: {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify(body).slice(0, -1 - r.int(5)),
      },
    };
  if (transport === 4)
    return {
      what: 'method',
      path: '/graphql',
      init: {
        method: r.pick(['PUT', 'DELETE', 'PATCH']),
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      },
    };
  return {
    what: JSON.stringify(body).slice(0, 300),
    path: '/graphql',
    init: {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    },
  };
}

const STRIPE_TYPES = [
  'charge.refunded',
  'charge.refund.updated',
  'refund.created',
  'refund.updated',
  'refund.failed',
  'payment_intent.succeeded',
  'x',
];

function stripeCase(r: Random): Case {
  const event = r.chance(0.7)
    ? {
        id: `evt_${r.int(1e9)}`,
        object: 'event',
        type: r.pick(STRIPE_TYPES),
        data: r.chance(0.8)
          ? {
              object: r.chance(0.5)
                ? randomJson(r)
                : {
                    id: `ch_${r.int(100)}`,
                    object: r.pick(['charge', 'refund']),
                    refunds: randomJson(r),
                    payment_intent: r.pick(['pi_x', null, 3]),
                    amount: randomJson(r),
                    status: r.pick(['succeeded', 'pending', 'failed', 'x']),
                  },
            }
          : randomJson(r),
      }
    : randomJson(r);
  const body = JSON.stringify(event) ?? 'null';
  const t = Math.floor(Date.now() / 1000) + r.pick([0, 0, 0, -400, 400, 1e6]);
  const signature = r.chance(0.8)
    ? `t=${t},v1=${createHmac('sha256', STRIPE_WEBHOOK_SECRET).update(`${t}.${body}`).digest('hex')}`
    : r.pick(['', 't=1,v1=00', 'garbage', `t=${t}`]);
  return {
    what: `stripe ${body.slice(0, 200)}`,
    path: '/stripe/webhook/',
    init: {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'stripe-signature': signature },
      body,
    },
  };
}

function payPalCase(r: Random): Case {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  const set = (name: string, value: string) => r.chance(0.85) && (headers[name] = value);
  set('paypal-transmission-id', r.pick(['8c8a3c40-0000-11ef-0000-000000000000', 'x', '']));
  set('paypal-transmission-time', r.pick([new Date().toISOString(), '2020-01-01T00:00:00Z', 'nope']));
  set('paypal-transmission-sig', r.pick(['A'.repeat(344), 'x', '']));
  set(
    'paypal-cert-url',
    r.pick(['https://api.sandbox.paypal.com/v1/notifications/certs/CERT-1', 'http://evil.example/cert', 'x']),
  );
  set('paypal-auth-algo', r.pick(['SHA256withRSA', 'MD5', '']));
  const body =
    JSON.stringify(
      r.chance(0.6)
        ? {
            id: `WH-${r.int(1e6)}`,
            event_type: r.pick(['PAYMENT.CAPTURE.REFUNDED', 'X']),
            resource: randomJson(r),
          }
        : randomJson(r),
    ) ?? 'null';
  return {
    what: `paypal ${body.slice(0, 200)}`,
    path: '/paypal/webhook/',
    init: { method: 'POST', headers, body },
  };
}

function restCase(r: Random, tokens: readonly (string | undefined)[]): Case {
  const bearer = r.pick(tokens);
  const authorization: Record<string, string> = bearer ? { authorization: `Bearer ${bearer}` } : {};
  switch (r.int(6)) {
    case 0:
    case 1: {
      const path = r.pick(['/order-management/fulfill', '/order-management/sanctioned']);
      const body = r.chance(0.7)
        ? JSON.stringify({
            id: r.pick([`evt-${r.int(1e6)}`, '', 3]),
            detail: { id: r.pick([order.id, 'nope', '', 'x'.repeat(3000), 'a\u0000b']) },
          })
        : String(JSON.stringify(randomJson(r)));
      return {
        what: `${path} ${body.slice(0, 200)}`,
        path,
        init: r.chance(0.8)
          ? { method: 'POST', headers: { ...authorization, 'content-type': 'application/json' }, body }
          : { method: r.pick(['GET', 'POST']), headers: authorization },
      };
    }
    case 2: {
      const value = encodeURIComponent(
        String(r.pick([order.orderNumber, 'EDX-100001', 'EDX-', '', 'x'.repeat(3000), '\u0000'])),
      );
      return {
        what: `receipt ${value.slice(0, 100)}`,
        path: `/orders/unified/order_receipt/?order_number=${value}`,
        init: { headers: authorization },
      };
    }
    case 3:
      return {
        what: 'payment page',
        path: `/lms/payment_page_redirect/?${r.pick(['sku=1', 'a b', '#x', '%zz', 'sku=' + 'x'.repeat(3000)])}`,
        init: { headers: authorization },
      };
    case 4:
      return {
        what: 'path',
        path: r.pick(['/', '/nope', '/healthz', '/readyz', '/graphql/x', '/%', '/..%2f..']),
        init: { method: r.pick(['GET', 'POST', 'OPTIONS', 'HEAD']), headers: authorization },
      };
    default:
      return r.chance(0.5) ? stripeCase(r) : payPalCase(r);
  }
}

let cc: CommerceCoordinator;
let tokens: Array<string | undefined>;

beforeAll(async () => {
  cc = await startCommerceCoordinator('trust-fuzz');
  tokens = [
    undefined,
    cc.tokens.ada,
    cc.tokens.bob,
    cc.tokens.staff,
    cc.tokens.lms,
    cc.tokens.orderManagement,
  ];
});
afterAll(async () => {
  await cc?.stop();
});

/** The error codes a response carries: REST `{ code }`, GraphQL `{ errors: [{ extensions: { code } }] }`. */
function codesOf(body: unknown): unknown[] {
  if (!body || typeof body !== 'object') return [];
  const { code, errors } = body as { code?: unknown; errors?: Array<{ extensions?: { code?: unknown } }> };
  if (Array.isArray(errors)) return errors.map((e) => e?.extensions?.code);
  return code === undefined ? [] : [code];
}

async function send(c: Case): Promise<string | undefined> {
  const res = await fetch(`${cc.url}${c.path}`, { redirect: 'manual', ...c.init }).catch((e: Error) => e);
  if (res instanceof Error) return `request failed: ${res.message}`;
  const text = await res.text();
  if (res.status >= 500) return `HTTP ${res.status}: ${text.slice(0, 300)}`;
  if (res.status >= 300 && res.status < 400) return undefined;
  // A HEAD answer has no body by definition.
  if (c.init.method === 'HEAD') return undefined;
  if (!text) return res.status >= 400 ? `HTTP ${res.status} without a body` : undefined;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    // HTML answers: the Sandbox landing page.
    return res.status < 400 && (res.headers.get('content-type') ?? '').startsWith('text/html')
      ? undefined
      : `HTTP ${res.status}, not JSON: ${text.slice(0, 200)}`;
  }
  const codes = codesOf(body);
  if (res.status >= 400 && !codes.length) return `HTTP ${res.status} without a code: ${text.slice(0, 300)}`;
  const undocumented = codes.filter((code) => typeof code !== 'string' || !DOCUMENTED.has(code));
  if (undocumented.length)
    return `HTTP ${res.status} with ${JSON.stringify(undocumented)}: ${text.slice(0, 300)}`;
  return undefined;
}

async function run(cases: Case[]): Promise<string[]> {
  const failures: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < cases.length) {
        const c = cases[next++]!;
        const failure = await send(c);
        if (failure) failures.push(`${failure}\n    request: ${c.init.method ?? 'GET'} ${c.path} ${c.what}`);
      }
    }),
  );
  return failures;
}

describe(`generated requests (seed ${SEED})`, () => {
  it(`${GRAPHQL_CASES} GraphQL requests: no 5xx, a documented code on every error`, async () => {
    const r = random(SEED);
    const failures = await run(Array.from({ length: GRAPHQL_CASES }, () => graphqlCase(r, tokens)));
    expect(
      failures.slice(0, 10),
      `${failures.length} of ${GRAPHQL_CASES} failed (FUZZ_SEED=${SEED})`,
    ).toEqual([]);
  }, 600_000);

  it(`${OTHER_CASES} webhook and REST requests: no 5xx, a documented code on every error`, async () => {
    const r = random(SEED + 1);
    const failures = await run(Array.from({ length: OTHER_CASES }, () => restCase(r, tokens)));
    expect(failures.slice(0, 10), `${failures.length} of ${OTHER_CASES} failed (FUZZ_SEED=${SEED})`).toEqual(
      [],
    );
  }, 600_000);
});
