// @ts-check
// What every view of the page offers the router.

/**
 * @typedef {{ cursor: string, type: string, flowId: string, name: string, status?: string | null, stepIndex?: number | null }} FlowEvent
 * @typedef {{
 *   show(root: HTMLElement, params: URLSearchParams): Promise<void>,
 *   refresh(): Promise<void>,
 *   wants(event: FlowEvent): boolean,
 * }} View
 * @typedef {{ notify(message: string, kind?: 'ok' | 'error'): void, navigate(hash: string): void }} ViewContext
 */

export {};
