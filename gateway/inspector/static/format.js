// @ts-check
// How times, durations, statuses and callers read on the page. Times are UTC, as the record keeps them.

/**
 * `2026-12-04 10:22:03.123`, from an ISO-8601 time.
 * @param {string | null | undefined} iso
 */
export function time(iso) {
  return iso ? iso.replace('T', ' ').replace(/Z$/, '') : '—';
}

/**
 * How long from one ISO time to another (or to now, for what still runs).
 * @param {string | null | undefined} from
 * @param {string | null | undefined} to
 */
export function duration(from, to) {
  if (!from) return '—';
  const ms = (to ? Date.parse(to) : Date.now()) - Date.parse(from);
  if (!Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** Of flows and steps, and of operator actions (DONE, REFUSED). */
const STATUSES = new Set([
  'RUNNING',
  'COMPLETED',
  'HALTED',
  'FAILED',
  'COMPENSATED',
  'SKIPPED',
  'DONE',
  'REFUSED',
]);

/**
 * The class of a status badge: one of the known statuses, never a class a record made up.
 * @param {string | null | undefined} status
 */
export function statusClass(status) {
  const upper = String(status ?? '').toUpperCase();
  return `status status-${STATUSES.has(upper) ? upper.toLowerCase() : 'other'}`;
}

/**
 * Who a recorded principal (a flow's caller, an operator) is, in a few words.
 * @param {unknown} principal
 */
export function who(principal) {
  if (!principal || typeof principal !== 'object') return 'anonymous';
  const p = /** @type {Record<string, unknown>} */ (principal);
  if (p.kind === 'service') return `service ${String(p.service ?? p.subject ?? '?')}`;
  const id = p.lmsUserId !== undefined ? ` (${String(p.lmsUserId)})` : '';
  return `${String(p.kind ?? '?')} ${String(p.username ?? p.subject ?? '?')}${id}`;
}

/**
 * An ISO-8601 UTC time from a `datetime-local` input, which holds no zone: the page shows UTC.
 * @param {string} value
 */
export function utcFromInput(value) {
  return value ? `${value}Z` : '';
}
