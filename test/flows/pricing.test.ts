import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO, DEMO_PRICING } from '../../services/demo.js';
import { programOfferOf } from '../../subgraphs/order-management/pricing.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';

/**
 * The queries the LMS and the frontends make before a purchase, end to end through the gateway's REST
 * routes and GraphQL, against the order management stand-in's catalogue (the demo data plus what each
 * test seeds): discount code info, first-time discount eligibility, program price, credit checkout.
 */

const LOGIN = 'https://courses.example.com/login';
const PUBLIC = 'https://commerce.example.com';
let cc: CommerceCoordinator;
const { courses, bundle } = DEMO;

beforeAll(async () => {
  cc = await startCommerceCoordinator('pricing', {
    overrides: { browserLogin: { loginUrl: LOGIN, publicUrl: PUBLIC } },
  });
});

afterAll(async () => {
  await cc?.stop();
});

const json = async (res: Response) => ({
  status: res.status,
  body: (await res.json()) as Record<string, unknown>,
});
const codeInfo = (code: string, courseRunKey: string, token = cc.tokens.ada) =>
  cc
    .request(
      `/lms/discount-code-info/?${new URLSearchParams({ code, course_run_key: courseRunKey })}`,
      token ? { token } : {},
    )
    .then(json);
const firstTime = (body: unknown, token: string | null = cc.tokens.lms) =>
  cc
    .request('/lms/first-time-discount-eligible/', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
      ...(token ? { token } : {}),
    })
    .then(json);
const programPrice = (bundleKey: string, courseKeys: string[], token: string | null = cc.tokens.ada) =>
  cc
    .request(
      `/lms/program-price-info/${encodeURIComponent(bundleKey)}/?${new URLSearchParams(courseKeys.map((k) => ['course_key', k]))}`,
      token ? { token } : {},
    )
    .then(json);
const PROGRAM_COURSES = Object.values(DEMO_PRICING.programCourses);
const catalog = () => cc.services.orderManagement.catalog;
let unique = 0;
const fresh = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${++unique}`;

describe('discount code info (GET /lms/discount-code-info/)', () => {
  it('answers a code whose cart predicate the course run meets: applicable, its percentage', async () => {
    const { status, body } = await codeInfo(DEMO_PRICING.welcomeCode, courses.demo.courseId);
    expect(status).toBe(200);
    expect(body).toEqual({ is_applicable: true, discount_percentage: 0.25 });
  });

  it('answers not applicable when the course run does not meet the predicate', async () => {
    const { status, body } = await codeInfo(DEMO_PRICING.welcomeCode, courses.cs50.courseId);
    expect(status).toBe(200);
    expect(body).toEqual({ is_applicable: false, discount_percentage: 0.25 });
  });

  it('answers an unknown code 400, and missing parameters 400', async () => {
    const unknown = await codeInfo('NO-SUCH-CODE', courses.demo.courseId);
    expect(unknown.status).toBe(400);
    expect(unknown.body).toMatchObject({ code: 'BAD_USER_INPUT', message: 'Discount code not found' });
    const missing = await json(
      await cc.request('/lms/discount-code-info/?code=WELCOME25', { token: cc.tokens.ada }),
    );
    expect(missing.status).toBe(400);
    const huge = await codeInfo('X'.repeat(5000), courses.demo.courseId);
    expect(huge.status).toBe(400);
    expect(huge.body.code).toBe('BAD_USER_INPUT');
  });

  it('answers a per-customer-limited code the learner already used not applicable, and applicable to another', async () => {
    const ada = await codeInfo(DEMO_PRICING.firstOrderCode, courses.demo.courseId, cc.tokens.ada);
    expect(ada.body).toEqual({ is_applicable: false, discount_percentage: 0.1 });
    const bob = await codeInfo(DEMO_PRICING.firstOrderCode, courses.demo.courseId, cc.tokens.bob);
    expect(bob.body).toEqual({ is_applicable: true, discount_percentage: 0.1 });
  });

  it('skips a predicate it cannot evaluate (the reference bypasses it), and says so on the flow record', async () => {
    const code = fresh('BROKEN');
    catalog().seed({
      cartDiscounts: [
        {
          key: code,
          permyriad: 1_500,
          requiresDiscountCode: true,
          cartPredicate: 'lineItemTotal(sku = "x") > 1',
        },
      ],
      discountCodes: [{ code, cartDiscount: code }],
    });
    const { body } = await codeInfo(code, courses.cs50.courseId);
    expect(body).toEqual({ is_applicable: true, discount_percentage: 0.15 });

    const res = await cc.graphql<{
      discountCodeInfo: {
        isApplicable: boolean;
        flow: { status: string; steps: Array<{ output: Record<string, unknown> }> };
      };
    }>(
      `query($input: DiscountCodeInfoInput!) {
        discountCodeInfo(input: $input) { isApplicable discountPercentage flow { status steps { output } } }
      }`,
      { input: { code, courseRunKey: courses.cs50.courseId } },
      cc.tokens.staff,
    );
    expect(res.errors).toBeUndefined();
    expect(res.data!.discountCodeInfo.isApplicable).toBe(true);
    expect(res.data!.discountCodeInfo.flow.status).toBe('COMPLETED');
    expect(String(res.data!.discountCodeInfo.flow.steps[0]!.output.predicateSkipped)).toMatch(
      /lineItemTotal/,
    );
  });

  it('answers inactive, expired, not-yet-valid and amount codes not applicable', async () => {
    const key = fresh('off');
    const past = new Date(Date.now() - 86_400_000).toISOString();
    const future = new Date(Date.now() + 86_400_000).toISOString();
    catalog().seed({
      cartDiscounts: [
        { key, permyriad: 2_000, requiresDiscountCode: true },
        { key: `${key}-inactive`, permyriad: 2_000, requiresDiscountCode: true, isActive: false },
        { key: `${key}-amount`, amountCents: 1_000, requiresDiscountCode: true },
      ],
      discountCodes: [
        { code: `${key}-A`, cartDiscount: key, isActive: false },
        { code: `${key}-B`, cartDiscount: key, validUntil: past },
        { code: `${key}-C`, cartDiscount: key, validFrom: future },
        { code: `${key}-D`, cartDiscount: `${key}-inactive` },
        { code: `${key}-E`, cartDiscount: `${key}-amount` },
        { code: `${key}-OK`, cartDiscount: key, validFrom: past, validUntil: future },
      ],
    });
    for (const suffix of ['A', 'B', 'C', 'D'])
      expect((await codeInfo(`${key}-${suffix}`, courses.demo.courseId)).body, suffix).toEqual({
        is_applicable: false,
        discount_percentage: 0.2,
      });
    expect((await codeInfo(`${key}-E`, courses.demo.courseId)).body).toEqual({
      is_applicable: false,
      discount_percentage: 0,
    });
    expect((await codeInfo(`${key}-OK`, courses.demo.courseId)).body).toEqual({
      is_applicable: true,
      discount_percentage: 0.2,
    });
  });

  it('refuses an anonymous caller 401, and answers 503 when order management is down', async () => {
    const anonymous = await cc.request(`/lms/discount-code-info/?code=WELCOME25&course_run_key=x`);
    expect(anonymous.status).toBe(401);
    cc.services.orderManagement.failNext(1, 503, '/edx-commerce/discount-codes');
    const down = await codeInfo(DEMO_PRICING.welcomeCode, courses.demo.courseId);
    expect(down.status).toBe(503);
    expect(down.body.code).toBe('SERVICE_UNAVAILABLE');
  });

  it('never splices the code into the query: a predicate-looking code is just an unknown code', async () => {
    const { status, body } = await codeInfo('x" or code is defined or code = "y', courses.demo.courseId);
    expect(status).toBe(400);
    expect(body.message).toBe('Discount code not found');
  });
});

describe('first-time discount eligibility (POST /lms/first-time-discount-eligible/)', () => {
  it('answers not eligible for a customer who redeemed the code on a completed order, eligible otherwise', async () => {
    expect(await firstTime({ email: DEMO.learners.ada.email, code: DEMO_PRICING.firstOrderCode })).toEqual({
      status: 200,
      body: { is_eligible: false },
    });
    expect(
      (await firstTime({ email: DEMO.learners.bob.email, code: DEMO_PRICING.firstOrderCode })).body,
    ).toEqual({
      is_eligible: true,
    });
    expect((await firstTime({ email: DEMO.learners.ada.email, code: 'OTHERCODE' })).body).toEqual({
      is_eligible: true,
    });
    // Staff too, and a form post as Django accepted it.
    const form = await cc.request('/lms/first-time-discount-eligible/', {
      method: 'POST',
      token: cc.tokens.staff,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        email: DEMO.learners.ada.email,
        code: DEMO_PRICING.firstOrderCode,
      }).toString(),
    });
    expect(await form.json()).toEqual({ is_eligible: false });
  });

  it('fails open when order management is down: eligible, and the record says it was not checked', async () => {
    cc.services.orderManagement.failNext(1, 503, '/edx-commerce/orders', 'GET');
    expect(await firstTime({ email: DEMO.learners.ada.email, code: DEMO_PRICING.firstOrderCode })).toEqual({
      status: 200,
      body: { is_eligible: true },
    });
    const res = await cc.graphql<{
      firstTimeDiscountEligibility: {
        isEligible: boolean;
        flow: { steps: Array<{ output: Record<string, unknown> }> };
      };
    }>(`query { recent: flows(limit: 5) { name steps { output } } }`, {}, cc.tokens.staff);
    const recent = (
      res.data as unknown as {
        recent: Array<{ name: string; steps: Array<{ output: Record<string, unknown> }> }>;
      }
    ).recent.find((f) => f.name === 'discount.first-time-eligibility.requested.v1');
    expect(recent?.steps[0]?.output).toMatchObject({ isEligible: true, checked: false });
  });

  it('refuses learners 403 and anonymous callers 401', async () => {
    const learner = await firstTime({ email: DEMO.learners.ada.email, code: 'X' }, cc.tokens.ada);
    expect(learner.status).toBe(403);
    expect(learner.body.code).toBe('FORBIDDEN');
    expect((await firstTime({ email: DEMO.learners.ada.email, code: 'X' }, null)).status).toBe(401);
    const graphql = await cc.graphql(
      `query { firstTimeDiscountEligibility(input: { email: "ada@example.com", code: "X" }) { isEligible } }`,
      {},
      cc.tokens.ada,
    );
    expect(graphql.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it('answers invalid input 400: no email, a malformed email, no code, a body that is not JSON', async () => {
    for (const body of [
      { code: 'X' },
      { email: 'not-an-email', code: 'X' },
      { email: DEMO.learners.ada.email },
      { email: DEMO.learners.ada.email, code: 42 },
      '{not json',
      '[1,2]',
    ]) {
      const res = await firstTime(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.code).toBe('BAD_USER_INPUT');
    }
  });
});

describe('program price (GET /lms/program-price-info/<bundle_key>/)', () => {
  it('sums the standalone prices of the entitlements the learner lacks, minus the program offer, in dollars and cents', async () => {
    const all = PROGRAM_COURSES.reduce((sum, c) => sum + c.priceCents, 0);
    const { status, body } = await programPrice(
      bundle.bundleKey,
      PROGRAM_COURSES.map((c) => c.courseKey),
    );
    expect(status).toBe(200);
    expect(body).toEqual({
      total_incl_tax_excl_discounts: all / 100,
      total_incl_tax: (all - DEMO_PRICING.programOfferCents) / 100,
      currency: 'USD',
      total_incl_tax_excl_discounts_cents: all,
      total_incl_tax_cents: all - DEMO_PRICING.programOfferCents,
    });
    const one = await programPrice(bundle.bundleKey, [PROGRAM_COURSES[1]!.courseKey]);
    expect(one.body).toMatchObject({
      total_incl_tax_excl_discounts_cents: PROGRAM_COURSES[1]!.priceCents,
      total_incl_tax_cents: PROGRAM_COURSES[1]!.priceCents - DEMO_PRICING.programOfferCents,
    });
  });

  it('applies a permyriad offer (the default program offer) and never goes below zero', async () => {
    // Program keys are UUIDs: a variant key is `<program>+<course key>`.
    const relative = randomUUID();
    const cheap = randomUUID();
    catalog().seed({
      products: [
        {
          key: relative,
          name: 'Relative offer program',
          variants: [
            { sku: relative },
            { sku: `${relative}-a`, key: `${relative}+Org+A`, entitlementSku: `${relative}-ENT-A` },
            { sku: `${relative}-b`, key: `${relative}+Org+B`, entitlementSku: `${relative}-ENT-B` },
          ],
        },
        {
          key: cheap,
          name: 'Cheap program',
          variants: [
            { sku: cheap },
            { sku: `${cheap}-a`, key: `${cheap}+Org+A`, entitlementSku: `${cheap}-ENT-A` },
          ],
        },
      ],
      standalonePrices: [
        { sku: `${relative}-ENT-A`, centAmount: 10_001 },
        { sku: `${relative}-ENT-B`, centAmount: 5_000 },
        { sku: `${cheap}-ENT-A`, centAmount: 3_000 },
      ],
      cartDiscounts: [
        { key: fresh('big-offer'), amountCents: 10_000, cartPredicate: `custom.bundleId = "${cheap}"` },
      ],
    });
    // 10 % of 150.01 is 15.001: to the cent, 135.01.
    const { body } = await programPrice(relative, ['Org+A', 'Org+B', 'Org+Unknown']);
    expect(body).toEqual({
      total_incl_tax_excl_discounts: 150.01,
      total_incl_tax: 135.01,
      currency: 'USD',
      total_incl_tax_excl_discounts_cents: 15_001,
      total_incl_tax_cents: 13_501,
    });
    const floor = await programPrice(cheap, ['Org+A']);
    expect(floor.body).toMatchObject({
      total_incl_tax_excl_discounts: 30,
      total_incl_tax: 0,
      total_incl_tax_cents: 0,
    });
  });

  it('answers no course keys 400, an unknown program 404, course keys outside the program 400', async () => {
    const none = await programPrice(bundle.bundleKey, []);
    expect(none.status).toBe(400);
    expect(none.body.code).toBe('BAD_USER_INPUT');
    const unknown = await programPrice('no-such-program', ['edX+DemoX']);
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe('NOT_FOUND');
    const outside = await programPrice(bundle.bundleKey, ['Other+Course']);
    expect(outside.status).toBe(400);
  });

  it('refuses anonymous callers 401, a malformed bundle segment 400, and answers through GraphQL the same', async () => {
    expect((await programPrice(bundle.bundleKey, ['edX+DemoX'], null)).status).toBe(401);
    const bad = await cc.request(`/lms/program-price-info/a%2Fb/?course_key=edX+DemoX`, {
      token: cc.tokens.ada,
    });
    expect(bad.status).toBe(400);
    const res = await cc.graphql<{
      programPrice: { totalInclTaxCents: number; currency: string; offerKey: string };
    }>(
      `query($input: ProgramPriceInput!) { programPrice(input: $input) { totalInclTaxCents totalInclTax currency offerKey } }`,
      { input: { bundleKey: bundle.bundleKey, courseKeys: ['edX+DemoX'] } },
      cc.tokens.ada,
    );
    expect(res.errors).toBeUndefined();
    expect(res.data!.programPrice).toMatchObject({
      totalInclTaxCents: DEMO_PRICING.programCourses.demo.priceCents - DEMO_PRICING.programOfferCents,
      currency: 'USD',
      offerKey: 'program-offer-data-science',
    });
  });

  it('picks the program offer as the reference does: the one naming the program, else the default unless it excludes it', () => {
    const offer = (key: string, cartPredicate: string) => ({
      id: key,
      key,
      cartPredicate,
      isActive: true,
      value: { type: 'relative', permyriad: 1000 },
    });
    const fallback = offer(
      'relative-1000-program-offer',
      'custom.bundleId is defined and custom.bundleId != "p2"',
    );
    const named = offer('p1-offer', 'custom.bundleId = "p1"');
    expect(programOfferOf([fallback, named], 'p1')?.key).toBe('p1-offer');
    expect(programOfferOf([fallback, named], 'p3')?.key).toBe('relative-1000-program-offer');
    expect(programOfferOf([fallback, named], 'p2')).toBeUndefined();
    expect(programOfferOf([named], 'p3')).toBeUndefined();
  });
});

describe('credit checkout (GET /lms/credit/checkout/<course_run_key>/)', () => {
  it('redirects to the payment page with the credit variant SKU, which then runs the payment page flow', async () => {
    const res = await cc.request(`/lms/credit/checkout/${courses.demo.courseId}/`, { token: cc.tokens.ada });
    expect(res.status).toBe(302);
    const location = res.headers.get('location')!;
    expect(location).toBe(`/lms/payment_page_redirect/?course_run_key=${DEMO_PRICING.creditSku}`);
    const page = await cc.request(location, { token: cc.tokens.ada });
    expect(page.status).toBe(303);
    expect(new URL(page.headers.get('location')!).searchParams.get('course_run_key')).toBe(
      DEMO_PRICING.creditSku,
    );
    // Encoded as a browser may send it: the same.
    const encoded = await cc.request(`/lms/credit/checkout/${encodeURIComponent(courses.demo.courseId)}/`, {
      token: cc.tokens.ada,
    });
    expect(encoded.headers.get('location')).toBe(location);
  });

  it('answers 400 for a course run without a credit variant', async () => {
    const { status, body } = await json(
      await cc.request(`/lms/credit/checkout/${courses.cs50.courseId}/`, { token: cc.tokens.ada }),
    );
    expect(status).toBe(400);
    expect(body).toMatchObject({
      code: 'BAD_USER_INPUT',
      message: `No credit variant found for course_run_key=${courses.cs50.courseId}`,
    });
    const quote = await cc.request(`/lms/credit/checkout/${encodeURIComponent('x" or "1')}/`, {
      token: cc.tokens.ada,
    });
    expect(quote.status).toBe(400);
  });

  it('sends an anonymous browser to the LMS login, and answers an API client 401', async () => {
    const path = `/lms/credit/checkout/${courses.demo.courseId}/`;
    const browser = await cc.request(path, { headers: { accept: 'text/html' } });
    expect(browser.status).toBe(302);
    const login = new URL(browser.headers.get('location')!);
    expect(`${login.origin}${login.pathname}`).toBe(LOGIN);
    expect(login.searchParams.get('next')).toBe(`${PUBLIC}${path}`);
    expect((await cc.request(path, { headers: { accept: 'application/json' } })).status).toBe(401);
  });
});
