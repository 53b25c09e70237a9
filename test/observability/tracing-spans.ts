import { randomBytes } from 'node:crypto';
import { SpanStatusCode, type AttributeValue } from '@opentelemetry/api';
import type { InMemorySpanExporter, ReadableSpan } from '@opentelemetry/sdk-trace-base';

/** Reading the spans a test's in-memory exporter received as trees. */

export interface SpanNode {
  readonly span: ReadableSpan;
  readonly name: string;
  readonly spanId: string;
  readonly traceId: string;
  readonly parentId?: string;
  readonly children: SpanNode[];
  attribute(name: string): AttributeValue | undefined;
}

export interface SpanForest {
  readonly all: SpanNode[];
  /** The one span matching, failing the test (with the names seen) when there is none or several. */
  one(predicate: (node: SpanNode) => boolean, what: string): SpanNode;
  /** Every span below `node`, depth first. */
  descendants(node: SpanNode): SpanNode[];
  /** The chain of names from `node` up to its trace's root. */
  ancestry(node: SpanNode): string[];
}

export function spanForest(exporter: InMemorySpanExporter): SpanForest {
  const nodes = exporter.getFinishedSpans().map((span): SpanNode => ({
    span,
    name: span.name,
    spanId: span.spanContext().spanId,
    traceId: span.spanContext().traceId,
    parentId: span.parentSpanContext?.spanId,
    children: [],
    attribute: (name) => span.attributes[name],
  }));
  const byId = new Map(nodes.map((node) => [node.spanId, node]));
  for (const node of nodes) if (node.parentId) byId.get(node.parentId)?.children.push(node);
  const descendants = (node: SpanNode): SpanNode[] =>
    node.children.flatMap((child) => [child, ...descendants(child)]);
  return {
    all: nodes,
    one(predicate, what) {
      const found = nodes.filter(predicate);
      if (found.length !== 1)
        throw new Error(
          `expected one span ${what}, found ${found.length} among: ${nodes.map((n) => n.name).join(', ')}`,
        );
      return found[0]!;
    },
    descendants,
    ancestry(node) {
      const names: string[] = [];
      for (let at: SpanNode | undefined = node; at; at = at.parentId ? byId.get(at.parentId) : undefined)
        names.push(at.name);
      return names;
    },
  };
}

/** The only child of `node` named `name`. */
export function child(node: SpanNode, name: string): SpanNode {
  const found = node.children.filter((c) => c.name === name);
  if (found.length !== 1)
    throw new Error(
      `expected one child '${name}' of '${node.name}', found ${found.length} among: ${node.children.map((c) => c.name).join(', ')}`,
    );
  return found[0]!;
}

export const failed = (node: SpanNode) => node.span.status.code === SpanStatusCode.ERROR;

/** A W3C traceparent of a caller's own span, as a client that traces would send it. */
export function callerTraceparent(): { traceparent: string; traceId: string; spanId: string } {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { traceparent: `00-${traceId}-${spanId}-01`, traceId, spanId };
}
