import { ErrorCode, routeError, unfinishedFilterAnswer, type Route } from '@commerce-coordinator/plugin-sdk';
import type { HistoryEntry } from './history.js';

const decimal = (cents: number) => (cents / 100).toFixed(2);

/** A history entry in the legacy ecommerce order JSON the order history page renders. */
function legacyShape(entry: HistoryEntry) {
  return {
    number: entry.orderNumber,
    date_placed: entry.placedAt,
    status: 'Complete',
    currency: entry.currency,
    total_excl_tax: decimal(entry.totalCents),
    lines: entry.lines.map((line) => ({
      title: line.title,
      quantity: line.quantity,
      line_price_excl_tax: decimal(line.priceCents),
    })),
    // The page links every order to its receipt through the Coordinator, whichever system holds it.
    receipt_url: `/orders/unified/order_receipt/?order_number=${encodeURIComponent(entry.orderNumber)}`,
    system: entry.system,
  };
}

/**
 * The order history page's call to the reference system (GET /orders/unified/order_history/): the
 * order history flow, answered in the legacy paginated shape `{ count, next, previous, results }`.
 * Staff may name the learner with `?username=`.
 */
export const orderHistoryRoute: Route = {
  method: 'GET',
  path: '/orders/unified/order_history/',
  async handle(request, runtime) {
    if (!request.principal) return routeError(ErrorCode.UNAUTHENTICATED, 'Sign in to see your orders');
    const username = request.query.get('username');
    const result = await runtime.runFilter('order.history.requested.v1', username ? { username } : {}, {
      principal: request.principal,
    });
    const refusal = unfinishedFilterAnswer(result);
    if (refusal) return refusal;
    const history = (result.output?.history ?? []) as HistoryEntry[];
    return {
      status: 200,
      headers: { 'cache-control': 'no-store' },
      body: { count: history.length, next: null, previous: null, results: history.map(legacyShape) },
    };
  },
};
