import {
  httpStatusOf,
  isErrorCode,
  type FilterResult,
  type Route,
  type RouteResponse,
} from '@commerce-coordinator/plugin-sdk';

/**
 * The LMS's REST calls before a purchase, at the reference's paths and with its answers (snake_case,
 * dollars), each running its filter of connections.yaml as a recorded flow: discount code info,
 * first-time discount eligibility, program price, and the credit checkout link.
 */

const unauthenticated = (message: string): RouteResponse => ({
  status: 401,
  body: { code: 'UNAUTHENTICATED', message },
});
const badRequest = (message: string): RouteResponse => ({
  status: 400,
  body: { code: 'BAD_USER_INPUT', message },
});

/** The flow's error with its HTTP status, or undefined when it answered. */
function failureOf(result: FilterResult): RouteResponse | undefined {
  if (result.error) {
    const { code, message } = result.error;
    return {
      status: isErrorCode(code) ? httpStatusOf(code) : 400,
      body: { code, message, flowId: result.flowId },
    };
  }
  if (!result.output)
    return { status: 404, body: { code: 'NOT_FOUND', message: 'No answer', flowId: result.flowId } };
  return undefined;
}

/** A JSON object body (the LMS sends JSON; a form post as Django accepted it works too). */
function bodyOf(request: {
  headers: Record<string, unknown>;
  rawBody: Buffer;
}): Record<string, unknown> | undefined {
  const type = String(request.headers['content-type'] ?? '');
  const text = request.rawBody.toString('utf8');
  if (type.includes('application/x-www-form-urlencoded'))
    return Object.fromEntries(new URLSearchParams(text));
  try {
    const parsed: unknown = JSON.parse(text || '{}');
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

const text = (value: unknown) => (typeof value === 'string' ? value : undefined);

export const pricingRoutes: readonly Route[] = [
  {
    // The reference's DiscountCodeInfoView: any signed-in caller (the LMS forwards the learner's JWT).
    method: 'GET',
    path: '/lms/discount-code-info/',
    async handle(request, runtime) {
      if (!request.principal) return unauthenticated('Sign in to check a discount code');
      const code = request.query.get('code');
      const courseRunKey = request.query.get('course_run_key');
      if (!code || !courseRunKey) return badRequest('code and course_run_key are required');
      const result = await runtime.runFilter(
        'discount.code-info.requested.v1',
        { code, courseRunKey },
        { principal: request.principal },
      );
      const failure = failureOf(result);
      if (failure) return failure;
      return {
        status: 200,
        body: {
          is_applicable: result.output!.isApplicable,
          discount_percentage: result.output!.discountPercentage,
        },
      };
    },
  },
  {
    // The reference's FirstTimeDiscountEligibleView: staff and Services (the filter's callers).
    method: 'POST',
    path: '/lms/first-time-discount-eligible/',
    async handle(request, runtime) {
      if (!request.principal) return unauthenticated('Sign in to check a first-time discount');
      const body = bodyOf(request);
      const email = text(body?.email);
      const code = text(body?.code);
      if (!email || !code) return badRequest('email and code are required');
      const result = await runtime.runFilter(
        'discount.first-time-eligibility.requested.v1',
        { email, code },
        { principal: request.principal },
      );
      return failureOf(result) ?? { status: 200, body: { is_eligible: result.output!.isEligible } };
    },
  },
  {
    // The reference's ProgramPriceView: the learner's program page, for the courses still to buy.
    method: 'GET',
    path: '/lms/program-price-info/:bundleKey/',
    async handle(request, runtime) {
      if (!request.principal) return unauthenticated('Sign in to see a program price');
      const courseKeys = request.query.getAll('course_key').filter(Boolean);
      if (!courseKeys.length) return badRequest('No course keys provided (course_key)');
      const result = await runtime.runFilter(
        'program.price.requested.v1',
        { bundleKey: request.params?.bundleKey ?? '', courseKeys },
        { principal: request.principal },
      );
      const failure = failureOf(result);
      if (failure) return failure;
      const out = result.output!;
      return {
        status: 200,
        body: {
          total_incl_tax_excl_discounts: out.totalInclTaxExclDiscounts,
          total_incl_tax: out.totalInclTax,
          currency: out.currency,
          total_incl_tax_excl_discounts_cents: out.totalInclTaxExclDiscountsCents,
          total_incl_tax_cents: out.totalInclTaxCents,
        },
      };
    },
  },
  {
    // The reference's CreditCheckoutView: a browser link; an anonymous browser is sent to sign in.
    method: 'GET',
    path: '/lms/credit/checkout/:courseRunKey/',
    async handle(request, runtime) {
      if (!request.principal) return unauthenticated('Sign in to check out');
      const result = await runtime.runFilter(
        'checkout.credit.requested.v1',
        { courseRunKey: request.params?.courseRunKey ?? '' },
        { principal: request.principal },
      );
      const failure = failureOf(result);
      if (failure) return failure;
      // Relative to this Coordinator, whatever Host the request named: then the payment page flow.
      const query = new URLSearchParams({ course_run_key: String(result.output!.creditSku) });
      return { status: 302, headers: { location: `/lms/payment_page_redirect/?${query}` } };
    },
  },
];
