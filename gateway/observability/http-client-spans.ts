import diagnosticsChannel from 'node:diagnostics_channel';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import type { Logger } from '../log.js';
import { Attr, recordThrown } from './span-attributes.js';
import type { TraceScope } from './trace-scope.js';

/**
 * A CLIENT span per HTTP call made inside a traced step (or fetch): the Plugins' Service calls through
 * their official SDKs. Node's diagnostics channels report both clients without patching a module —
 * undici's (fetch: commercetools', the LMS's clients, remote subgraphs) and node:http's (Stripe's and
 * PayPal's SDKs). undici requests also get the `traceparent` header; node:http has sent its headers when
 * it reports a request. Only the method, host, port and status are recorded: paths and queries name
 * learners.
 *
 * @opentelemetry/instrumentation-undici reads the same channels, but parents its spans with the global
 * context manager and sees every request of the process; this sees only this Coordinator's.
 */
export function observeHttpClients(scope: TraceScope, logger: Logger): () => void {
  const inFlight = new WeakMap<object, Span>();

  const start = (request: object, method: string, origin: URL) => {
    const span = scope.tracer.startSpan(
      method,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          [Attr.HTTP_METHOD]: method,
          [Attr.SERVER_ADDRESS]: origin.hostname.replace(/^\[|\]$/g, ''),
          [Attr.SERVER_PORT]: Number(origin.port) || (origin.protocol === 'https:' ? 443 : 80),
          [Attr.URL_SCHEME]: origin.protocol.replace(/:$/, ''),
        },
      },
      scope.active(),
    );
    inFlight.set(request, span);
    return span;
  };
  const answered = (request: object, status: number) => {
    const span = inFlight.get(request);
    if (!span) return;
    span.setAttribute(Attr.HTTP_STATUS, status);
    // A client span fails on 4xx too: the Service refused what the step asked.
    if (status >= 400) {
      span.setAttribute(Attr.ERROR_TYPE, String(status));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
  };
  const end = (request: object, error?: unknown) => {
    const span = inFlight.get(request);
    if (!span) return;
    inFlight.delete(request);
    if (error !== undefined) recordThrown(span, error);
    span.end();
  };

  const handlers: Record<string, (message: unknown) => void> = {
    'undici:request:create': (message) => {
      if (!scope.tracing()) return;
      const { request } = message as { request: UndiciRequest };
      const span = start(request, request.method, new URL(String(request.origin)));
      if (typeof request.addHeader !== 'function' || hasHeader(request, 'traceparent')) return;
      // The client span is the parent the Service sees.
      const sent = scope.inject(trace.setSpan(scope.active(), span));
      if (!sent) return;
      request.addHeader('traceparent', sent.traceparent);
      if (sent.tracestate) request.addHeader('tracestate', sent.tracestate);
    },
    'undici:request:headers': (message) => {
      const { request, response } = message as { request: object; response: { statusCode: number } };
      answered(request, response.statusCode);
    },
    'undici:request:trailers': (message) => end((message as { request: object }).request),
    'undici:request:error': (message) => {
      const { request, error } = message as { request: object; error: unknown };
      end(request, error);
    },
    'http.client.request.start': (message) => {
      if (!scope.tracing()) return;
      const { request } = message as { request: ClientRequest };
      const host = String(request.getHeader('host') ?? request.host);
      start(request, request.method, new URL(`${request.protocol}//${host}`));
      // Node 20 reports a failed request on http.client.request.error only from 20.20 on: 'close'
      // comes in every case (a listener of it changes nothing for the SDK that made the request).
      request.once('close', () => end(request, new Error('The request closed without a response')));
    },
    'http.client.response.finish': (message) => {
      const { request, response } = message as { request: ClientRequest; response: IncomingMessage };
      answered(request, response.statusCode ?? 0);
      // Ends when the answer's headers are in: the SDK may never read the body to its end.
      end(request);
    },
    'http.client.request.error': (message) => {
      const { request, error } = message as { request: ClientRequest; error: unknown };
      end(request, error);
    },
  };
  // A subscriber's exception would reach the process as an uncaught one: a span is not worth that.
  let reported = false;
  const subscribed = Object.entries(handlers).map(([name, handler]) => {
    const safe = (message: unknown) => {
      try {
        handler(message);
      } catch (err) {
        if (!reported) logger.warn({ err, channel: name }, 'an HTTP call could not be traced');
        reported = true;
      }
    };
    diagnosticsChannel.subscribe(name, safe);
    return [name, safe] as const;
  });
  return () => {
    for (const [name, safe] of subscribed) diagnosticsChannel.unsubscribe(name, safe);
  };
}

interface UndiciRequest {
  method: string;
  origin: string | URL;
  /** undici 6+ keeps `[name, value, name, value, …]`; older versions a header block. */
  headers: unknown;
  addHeader?(name: string, value: string): unknown;
}

function hasHeader(request: UndiciRequest, name: string): boolean {
  const { headers } = request;
  if (Array.isArray(headers))
    return headers.some((value, i) => i % 2 === 0 && String(value).toLowerCase() === name);
  return typeof headers === 'string' && new RegExp(`^${name}:`, 'im').test(headers);
}
