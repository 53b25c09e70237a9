// @ts-check
// Live updates: a small client of graphql-ws's protocol (graphql-transport-ws) for one subscription,
// reconnecting with backoff and resuming after the last event's cursor, so nothing is missed between
// two connections (within what the gateway retains).

/**
 * @typedef {'connecting' | 'live' | 'reconnecting' | 'refused' | 'stopped'} LiveStatus
 * @typedef {{
 *   url: string | URL,
 *   query: string,
 *   connectionParams: () => Record<string, unknown>,
 *   onData: (data: any) => void,
 *   onStatus: (status: LiveStatus, detail?: string) => void,
 *   cursorOf: (data: any) => string | undefined,
 * }} LiveOptions
 */

/** Close codes after which connecting again cannot help (graphql-ws: 4401 unauthorized, 4403 forbidden). */
const REFUSED = new Set([4401, 4403]);

/**
 * Subscribes until `stop()`; `onStatus` says whether events are arriving.
 * @param {LiveOptions} options
 */
export function subscribeLive(options) {
  /** @type {WebSocket | undefined} */
  let socket;
  /** @type {string | undefined} */
  let cursor;
  let failures = 0;
  let stopped = false;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;

  /** @param {Record<string, unknown>} message */
  const send = (message) => socket?.send(JSON.stringify(message));

  const open = () => {
    options.onStatus(failures ? 'reconnecting' : 'connecting');
    const ws = new WebSocket(options.url, 'graphql-transport-ws');
    socket = ws;
    ws.onopen = () => send({ type: 'connection_init', payload: options.connectionParams() });
    ws.onmessage = (event) => {
      /** @type {{ type: string, id?: string, payload?: any }} */
      let message;
      try {
        message = JSON.parse(String(event.data));
      } catch {
        return;
      }
      switch (message.type) {
        case 'connection_ack':
          failures = 0;
          options.onStatus('live');
          send({
            id: 'events',
            type: 'subscribe',
            payload: { query: options.query, variables: { after: cursor } },
          });
          break;
        case 'next': {
          const data = message.payload?.data;
          if (!data) break;
          cursor = options.cursorOf(data) ?? cursor;
          options.onData(data);
          break;
        }
        case 'error':
          // A cursor the gateway no longer retains: start from now (the view reloads on reconnect).
          cursor = undefined;
          ws.close(1000, 'subscription refused');
          break;
        case 'complete':
          ws.close(1000, 'completed');
          break;
        case 'ping':
          send({ type: 'pong' });
          break;
      }
    };
    ws.onclose = (event) => {
      if (socket !== ws || stopped) return;
      if (REFUSED.has(event.code)) return options.onStatus('refused', event.reason);
      failures += 1;
      options.onStatus('reconnecting', event.reason);
      // Exponential backoff with jitter, as graphql-ws's own client retries.
      const wait = Math.min(10_000, 250 * 2 ** Math.min(failures, 6)) * (0.5 + Math.random() / 2);
      timer = setTimeout(open, wait);
    };
  };
  open();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      socket?.close(1000, 'stopped');
      options.onStatus('stopped');
    },
  };
}
