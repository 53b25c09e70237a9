import {
  definePlugin,
  DomainError,
  ErrorCode,
  requirePrincipal,
  type ActionContext,
  type Plugin,
} from '@commerce-coordinator/plugin-sdk';
import {
  LegacyEcommerceClient,
  LegacyEcommerceRejectedError,
  LegacyEcommerceUnavailableError,
  type LegacyOrderJson,
} from './client.js';
import { legacyEcommerceConfig, type Env, type LegacyEcommerceConfig } from './config.js';

/**
 * The legacy ecommerce Service Plugin (a Third Party Service here): a learner's order history from
 * before the Coordinator, and the receipt page of a legacy order.
 */

/** Legacy order numbers, as CC's DetermineActiveOrderManagementSystemByOrderNumber recognises them. */
export const LEGACY_ORDER_NUMBER = /^EDX-\d{1,6}$/;

/** A decimal amount ("149.00") in minor units of `currency`, rounded half up past its precision. */
export function toMinorUnits(amount: string, currency: string): number {
  const match = /^\s*(-)?(\d*)(?:\.(\d*))?\s*$/.exec(amount);
  if (!match || (!match[2] && !match[3])) throw new Error(`not a decimal amount: ${JSON.stringify(amount)}`);
  const [, sign, whole = '', fraction = ''] = match;
  let digits = 2;
  try {
    digits =
      new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ??
      2;
  } catch {
    // An unknown currency code: keep two digits.
  }
  const scale = 10n ** BigInt(digits);
  let units = BigInt(whole || '0') * scale + BigInt((fraction + '0'.repeat(digits)).slice(0, digits) || '0');
  if (Number(fraction[digits] ?? '0') >= 5) units += 1n;
  return Number(sign ? -units : units);
}

const attribute = (line: LegacyOrderJson['lines'][number], code: string) => {
  const value = line.product?.attribute_values?.find((a) => (a.code ?? a.name) === code)?.value;
  return typeof value === 'string' ? value : null;
};

async function reading<T>(work: Promise<T>, ctx: ActionContext): Promise<T> {
  try {
    return await work;
  } catch (error) {
    // In a flow step an outage stays a plain (retryable) error: the flow engine never retries a step
    // that failed with a public code, nor continues past it (`onError: continue` of the order history
    // filter), so SERVICE_UNAVAILABLE there made a legacy outage fail the whole history at once.
    if (error instanceof LegacyEcommerceUnavailableError && ctx.flowId !== undefined) throw error;
    if (error instanceof LegacyEcommerceUnavailableError)
      throw new DomainError(
        ErrorCode.SERVICE_UNAVAILABLE,
        `Legacy ecommerce is unavailable: ${error.message}`,
      );
    if (error instanceof LegacyEcommerceRejectedError)
      throw new DomainError(ErrorCode.BAD_USER_INPUT, error.message, { legacyStatus: error.status });
    throw error;
  }
}

export interface LegacyEcommercePluginOptions {
  /** Where the configuration is read (lazily) from. @default process.env */
  env?: Env;
}

export function createLegacyEcommercePlugin(options: LegacyEcommercePluginOptions = {}): Plugin {
  const env = options.env ?? process.env;
  let state: { config: LegacyEcommerceConfig; client: LegacyEcommerceClient } | undefined;
  const service = () => {
    if (!state) {
      const config = legacyEcommerceConfig(env);
      state = { config, client: new LegacyEcommerceClient(config) };
    }
    return state;
  };
  const receiptUrl = (orderNumber: string) =>
    `${service().config.LEGACY_ECOMMERCE_RECEIPT_URL_BASE}${encodeURIComponent(orderNumber)}`;

  const toOrder = (o: LegacyOrderJson) => {
    const currency = o.currency ?? 'USD';
    return {
      number: o.number,
      datePlaced: new Date(o.date_placed).toISOString(),
      status: o.status ?? 'Complete',
      currency,
      totalExclTaxCents: toMinorUnits(o.total_excl_tax, currency),
      discountCents: o.discount ? toMinorUnits(o.discount, currency) : 0,
      paymentProcessor: o.payment_processor ?? null,
      username: o.user.username,
      email: o.user.email ?? null,
      receiptUrl: receiptUrl(o.number),
      lines: o.lines.map((line) => ({
        title: line.title,
        quantity: line.quantity ?? 1,
        status: line.status ?? null,
        linePriceExclTaxCents: toMinorUnits(line.line_price_excl_tax, currency),
        courseKey: attribute(line, 'course_key'),
        certificateType: attribute(line, 'certificate_type'),
        productClass: line.product?.product_class ?? null,
      })),
    };
  };

  return definePlugin({
    name: 'legacy-ecommerce',
    schemaFile: new URL('./schema.graphql', import.meta.url),
    // A learner reads their own legacy orders (checked); the receipt URL is the receipt flow's step.
    access: {
      Query: { legacyOrders: ['learner', 'staff', 'service'], legacyReceiptUrl: ['staff', 'service'] },
      // The receiver of unmatched Apple refunds.
      Mutation: { forwardIosRefund: ['staff', 'service'] },
    },
    resolvers: {
      Query: {
        legacyOrders: async (
          _: unknown,
          { username, since }: { username: string; since?: string | null },
          ctx: ActionContext,
        ) => {
          const caller = requirePrincipal(ctx.principal);
          if (caller.kind === 'learner' && caller.username !== username)
            throw new DomainError(ErrorCode.FORBIDDEN, 'A learner may read only their own orders');
          const cutoff = since ? Date.parse(since) : undefined;
          if (cutoff !== undefined && Number.isNaN(cutoff))
            throw new DomainError(ErrorCode.BAD_USER_INPUT, `since is not an ISO 8601 date: ${since}`);
          const { config, client } = service();
          const orders: LegacyOrderJson[] = [];
          // Ecommerce pages start at 1 and list newest first: stop at the first page reaching the cutoff.
          for (let page = 1; page <= config.LEGACY_ECOMMERCE_MAX_PAGES; page++) {
            const result = await reading(
              client.ordersPage(username, page, config.LEGACY_ECOMMERCE_PAGE_SIZE),
              ctx,
            );
            let reachedCutoff = false;
            for (const order of result.results) {
              if (cutoff !== undefined && Date.parse(order.date_placed) < cutoff) reachedCutoff = true;
              else orders.push(order);
            }
            if (reachedCutoff || !result.next) break;
          }
          return orders.sort((a, b) => Date.parse(b.date_placed) - Date.parse(a.date_placed)).map(toOrder);
        },
        legacyReceiptUrl: (_: unknown, { orderNumber }: { orderNumber: string }, ctx: ActionContext) => {
          requirePrincipal(ctx.principal);
          if (!LEGACY_ORDER_NUMBER.test(orderNumber))
            throw new DomainError(
              ErrorCode.NOT_FOUND,
              `${orderNumber} is not a legacy ecommerce order number`,
            );
          return { url: receiptUrl(orderNumber) };
        },
      },
      Mutation: {
        forwardIosRefund: async (
          _: unknown,
          { input }: { input: { refundId: string; legacyPayload: string } },
          ctx: ActionContext,
        ) => {
          requirePrincipal(ctx.principal);
          if (!input.legacyPayload.trim())
            throw new DomainError(ErrorCode.BAD_USER_INPUT, 'legacyPayload is empty: nothing to forward');
          try {
            return { status: await service().client.forwardIosRefund(input.legacyPayload) };
          } catch (error) {
            // In the receiver an outage stays a plain error: the signal bus retries it, then dead-letters it.
            if (error instanceof LegacyEcommerceUnavailableError && ctx.flowId === undefined)
              throw new DomainError(
                ErrorCode.SERVICE_UNAVAILABLE,
                `Legacy ecommerce is unavailable: ${error.message}`,
              );
            if (error instanceof LegacyEcommerceRejectedError)
              throw new DomainError(
                ErrorCode.CONFLICT,
                `Legacy ecommerce refused the Apple refund ${input.refundId}: ${error.message}`,
                { legacyStatus: error.status },
              );
            throw error;
          }
        },
      },
    },
    config: [() => legacyEcommerceConfig(env)],
    health: { service: 'legacy-ecommerce', check: () => service().client.check() },
  });
}

export default createLegacyEcommercePlugin();
