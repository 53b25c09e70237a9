/** Order history: two systems' orders as one list, in the shape the order history page shows. */

export const HISTORY_CUTOFF_DAYS = 180;

interface NewOrder {
  orderNumber: string;
  createdAt: string;
  lineItems: Array<{ title: string; priceCents: number; currency: string }>;
  payment?: { amountCents: number; currency: string } | null;
}

interface LegacyOrder {
  number: string;
  datePlaced: string;
  currency: string;
  totalExclTaxCents: number;
  lines: Array<{ title: string; quantity: number; linePriceExclTaxCents: number }>;
}

export interface HistoryEntry {
  orderNumber: string;
  placedAt: string;
  system: 'COORDINATOR' | 'LEGACY';
  totalCents: number;
  currency: string;
  lines: Array<{ title: string; quantity: number; priceCents: number }>;
}

export function mergeHistory(
  orders: readonly NewOrder[],
  legacyOrders: readonly LegacyOrder[],
  since: Date,
): HistoryEntry[] {
  const entries: HistoryEntry[] = [
    ...orders.map((o) => ({
      orderNumber: o.orderNumber,
      placedAt: new Date(o.createdAt).toISOString(),
      system: 'COORDINATOR' as const,
      totalCents: o.payment?.amountCents ?? o.lineItems.reduce((sum, l) => sum + l.priceCents, 0),
      currency: o.payment?.currency ?? o.lineItems[0]?.currency ?? 'USD',
      lines: o.lineItems.map((l) => ({ title: l.title, quantity: 1, priceCents: l.priceCents })),
    })),
    ...legacyOrders.map((o) => ({
      orderNumber: o.number,
      placedAt: new Date(o.datePlaced).toISOString(),
      system: 'LEGACY' as const,
      totalCents: o.totalExclTaxCents,
      currency: o.currency,
      lines: o.lines.map((l) => ({
        title: l.title,
        quantity: l.quantity,
        priceCents: l.linePriceExclTaxCents,
      })),
    })),
  ];
  return entries
    .filter((e) => new Date(e.placedAt) >= since)
    .sort((a, b) => b.placedAt.localeCompare(a.placedAt) || a.orderNumber.localeCompare(b.orderNumber));
}
