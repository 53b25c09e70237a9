import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signToken, subjectFromArgs } from '../../gateway/auth/tokens.js';
import { startCommerceCoordinator, type CommerceCoordinator } from '../support/commerce.js';
import { TEST_JWT_SECRET } from '../support/coordinator.js';
import { waitFor } from '../support/wait.js';

/**
 * README.md's example operations, run as written and in the README's order on the embedded default
 * (every Service stand-in with the demo data, the repository's flags.json): each must succeed.
 */
interface Example {
  kind: 'graphql' | 'http';
  title: string;
  token: string[];
  text: string;
}

function readmeExamples(): Example[] {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const examples: Example[] = [];
  for (const match of readme.matchAll(/```(graphql|http)\n([\s\S]*?)```/g)) {
    const [, kind, body] = match;
    const lines = body!.split('\n');
    const tokenLine = lines.find((l) => /^(# )?Token: /.test(l));
    if (!tokenLine) throw new Error(`A README ${kind} example has no "Token:" line:\n${body}`);
    const text = lines
      .filter((l) => l !== tokenLine)
      .join('\n')
      .trim();
    examples.push({
      kind: kind as Example['kind'],
      title: text.split('\n')[0]!,
      token: tokenLine.replace(/^(# )?Token: /, '').split(/\s+/),
      text,
    });
  }
  return examples;
}

const examples = readmeExamples();
/** Examples whose flow ends HALTED by design: a return settled without a PSP refund (settleReturn). */
const HALTING = new Set(['mutation RefundUnpaid {']);
let t: CommerceCoordinator;

beforeAll(async () => {
  t = await startCommerceCoordinator('readme', { flags: 'flags.json' });
});
afterAll(async () => t?.stop());

describe('README.md example operations', () => {
  it('has an example for each flow the README walks through', () => {
    expect(examples.map((e) => e.title)).toEqual([
      'query OrderHistory {',
      'query Receipt {',
      'GET /orders/unified/order_receipt/?order_number=2U-2026000002',
      'GET /lms/payment_page_redirect/?sku=8CF08E5&utm_source=lms',
      'mutation Refund {',
      'query Order {',
      'POST /order-management/fulfill',
      'POST /order-management/sanctioned',
      'query RecentFlows {',
      'mutation Retire {',
      'GET /orders/unified/order_history/',
      'query MobilePurchases {',
      'mutation ReportFulfillment {',
      'mutation RefundUnpaid {',
      'POST /iap/create-order/',
      'POST /lms/refund/',
      'GET /lms/discount-code-info/?code=WELCOME25&course_run_key=course-v1:edX%2BDemoX%2B2026',
      'POST /lms/first-time-discount-eligible/',
      'GET /lms/program-price-info/0f5b7c2e-4d1a-4a8e-9c3b-2d6f1e8a7b90/?course_key=edX%2BDemoX&course_key=HarvardX%2BCS50',
      'query ProgramPrice {',
      'GET /lms/credit/checkout/course-v1:edX+DemoX+2026/',
    ]);
  });

  it.each(examples.map((e, i) => [i, e.title, e] as const))('#%i %s', async (_i, _title, example) => {
    const subject = subjectFromArgs(example.token);
    expect(subject, `Token: ${example.token.join(' ')}`).toBeDefined();
    const token = await signToken(TEST_JWT_SECRET, subject!);
    if (example.kind === 'graphql') {
      type Answer = { status?: string; flow?: { status?: string } } & Record<string, unknown>;
      const { data, errors } = await t.graphql<Record<string, Answer>>(example.text, {}, token);
      expect(errors).toBeUndefined();
      for (const value of Object.values(data!)) {
        if (!value || Array.isArray(value)) continue;
        if (value.status) expect(value.status).toBe('COMPLETED');
        // A filter's answer: its flow completed, and every typed field it shows has a value.
        if (value.flow) {
          expect(value.flow.status).toBe(HALTING.has(example.title) ? 'HALTED' : 'COMPLETED');
          for (const [field, typed] of Object.entries(value)) expect(typed, field).not.toBeNull();
        }
      }
      return;
    }
    const [head, ...rest] = example.text.split('\n\n');
    const [requestLine, ...headerLines] = head!.split('\n');
    const [method, path] = requestLine!.split(' ');
    const headers = Object.fromEntries(
      headerLines.map((h) => [h.slice(0, h.indexOf(':')).toLowerCase(), h.slice(h.indexOf(':') + 1).trim()]),
    );
    const res = await t.request(path!, {
      method,
      token,
      headers,
      ...(rest.length ? { body: rest.join('\n\n') } : {}),
    });
    expect(res.status, await res.clone().text()).toBeLessThan(400);
  });

  it('did what the README says: the refund revoked the course, the payment page sent ada to the new checkout', async () => {
    // The revocation is a signal receiver's work: it may finish just after the refund answered.
    await waitFor(
      () =>
        t.services.lms
          .state()
          .enrollments.find((e) => e.username === 'ada' && e.courseId === 'course-v1:edX+DemoX+2026')
          ?.isActive === false,
    );
    const res = await t.request('/lms/payment_page_redirect/?sku=8CF08E5&utm_source=lms', {
      token: await signToken(TEST_JWT_SECRET, { kind: 'learner', lmsUserId: 3, username: 'ada' }),
    });
    expect(res.headers.get('location')).toBe(
      `${t.services.env.COMMERCE_FRONTEND_URL}?sku=8CF08E5&utm_source=lms`,
    );
  });
});
