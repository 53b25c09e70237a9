import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { Route } from '../http/server.js';
import { Attr, recordThrown } from './span-attributes.js';
import type { TraceScope } from './trace-scope.js';

/**
 * A SERVER span per call of a Plugin's route (a Service's webhook), continuing the Service's trace when
 * it sends a `traceparent`, and active while the route runs: the flows it starts are its children and
 * the signals it commits carry its context, so their receivers' runs link back to the webhook.
 */
export function tracedRoute(scope: TraceScope, path: string, route: Route): Route {
  return async (req, res, body) => {
    const header = (name: string) => {
      const value = req.headers[name];
      return Array.isArray(value) ? value[0] : value;
    };
    const parent = scope.extract({ traceparent: header('traceparent'), tracestate: header('tracestate') });
    const span = scope.tracer.startSpan(
      `${req.method} ${path}`,
      {
        kind: SpanKind.SERVER,
        attributes: { [Attr.HTTP_METHOD]: req.method ?? '', [Attr.HTTP_ROUTE]: path },
      },
      parent,
    );
    try {
      await scope.withSpan(span, () => route(req, res, body), parent);
      span.setAttribute(Attr.HTTP_STATUS, res.statusCode);
      // A server span fails on 5xx only: a 4xx is the caller's problem, answered as it should be.
      if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    } catch (error) {
      recordThrown(span, error);
      throw error;
    } finally {
      span.end();
    }
  };
}
