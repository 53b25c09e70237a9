import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { createAdmin, readRequestBody, type Admin } from '../admin.js';

/**
 * A stand-in for Segment's HTTP tracking API, as @segment/analytics-node sends to it: `POST /v1/batch`
 * with `Authorization: Basic base64(<write key>:)` and `{ batch: [message…], sentAt }`. Answers `200
 * { success: true }`; `401` for a missing or unknown write key; `400` for a body that is not a batch.
 * Like Segment, it drops a message whose `messageId` it already received (the library retries a
 * batch whose answer it did not get). Keeps every accepted message (`events()`, the admin journal).
 */

const MessageSchema = z
  .object({
    type: z.enum(['track', 'identify', 'page', 'screen', 'group', 'alias']),
    messageId: z.string().min(1),
    event: z.string().optional(),
    userId: z.union([z.string(), z.number()]).optional(),
    anonymousId: z.string().optional(),
    properties: z.record(z.string(), z.unknown()).optional(),
    timestamp: z.string().optional(),
  })
  .loose();

const BatchSchema = z.object({ batch: z.array(MessageSchema).max(2500) }).loose();

export type SegmentMessage = z.infer<typeof MessageSchema>;

export interface SegmentOptions {
  /** @default 0 (a free port) */
  port?: number;
  /** @default 'segment-standin-write-key' */
  writeKey?: string;
}

export interface SegmentStandIn {
  url: string;
  writeKey: string;
  admin: Admin;
  /** Every accepted message (duplicates by messageId dropped), oldest first; `track` events by name. */
  events(name?: string): SegmentMessage[];
  close(): Promise<void>;
}

export const DEFAULT_SEGMENT_WRITE_KEY = 'segment-standin-write-key';

type Answer = { status: number; body: unknown };

export async function startSegment(options: SegmentOptions = {}): Promise<SegmentStandIn> {
  const writeKey = options.writeKey ?? DEFAULT_SEGMENT_WRITE_KEY;
  const expected = `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}`;
  const received: SegmentMessage[] = [];
  const seen = new Set<string>();
  const admin = createAdmin({
    seed: z.object({}).strict(),
    applySeed: () => ({}),
    errorAnswer: (status) => ({ body: { success: false, message: `Injected ${status}.` } }),
  });

  const route = async (req: IncomingMessage, url: URL): Promise<Answer> => {
    const raw = await readRequestBody(req);
    if (req.method !== 'POST' || url.pathname !== '/v1/batch')
      return { status: 404, body: { success: false, message: 'Not Found' } };
    if (req.headers.authorization !== expected)
      return { status: 401, body: { success: false, message: 'Invalid write key' } };
    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch {
      return { status: 400, body: { success: false, message: 'Invalid JSON' } };
    }
    const parsed = BatchSchema.safeParse(json);
    if (!parsed.success) return { status: 400, body: { success: false, message: 'Invalid batch' } };
    for (const message of parsed.data.batch) {
      if (seen.has(message.messageId)) continue;
      seen.add(message.messageId);
      received.push(message);
    }
    return { status: 200, body: { success: true } };
  };

  const send = (res: ServerResponse, answer: Answer) =>
    res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));

  const server = createServer(
    admin.listener((req, res) => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      route(req, url).then(
        (answer) => send(res, answer),
        () => send(res, { status: 500, body: { success: false } }),
      );
    }),
  );
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    writeKey,
    admin,
    events: (name) => received.filter((m) => name === undefined || (m.type === 'track' && m.event === name)),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
