import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { createAdmin, readRequestBody, type Admin } from '../admin.js';

/**
 * A stand-in for Braze's REST API, for what the Coordinator sends: Canvas messages through
 * `POST /canvas/trigger/send` (API-triggered Canvases), authenticated with `Authorization: Bearer
 * <REST API key>`. Braze's answers: `201 { dispatch_id, message: "success" }`; `401 { message:
 * "Invalid API key: …" }` for a missing or wrong key; `400 { message, errors }` for a malformed body or
 * an unknown Canvas. Every accepted send is kept (`sends()`, and the admin journal).
 */

const RecipientSchema = z
  .object({
    external_user_id: z.string().min(1),
    trigger_properties: z.record(z.string(), z.unknown()).optional(),
    canvas_entry_properties: z.record(z.string(), z.unknown()).optional(),
    send_to_existing_only: z.boolean().optional(),
    attributes: z.record(z.string(), z.unknown()).optional(),
  })
  .loose();

const CanvasTriggerSchema = z
  .object({
    canvas_id: z.string().min(1),
    recipients: z.array(RecipientSchema).min(1).max(50),
    canvas_entry_properties: z.record(z.string(), z.unknown()).optional(),
    broadcast: z.boolean().optional(),
  })
  .loose();

export type CanvasTrigger = z.infer<typeof CanvasTriggerSchema>;

/** One accepted Canvas send, as Braze would dispatch it. */
export interface BrazeSend extends CanvasTrigger {
  dispatchId: string;
}

/** `POST /_admin/seed`: the Canvases that exist (sends to other ids are refused). */
export const BrazeSeedSchema = z.object({ canvasIds: z.array(z.string().min(1)) }).strict();

export interface BrazeOptions {
  /** @default 0 (a free port) */
  port?: number;
  /** @default 'braze-standin-rest-api-key' */
  apiKey?: string;
  /** Canvas ids that exist; any id is accepted when none is seeded. */
  canvasIds?: string[];
}

export interface BrazeStandIn {
  url: string;
  apiKey: string;
  admin: Admin;
  /** Every accepted send, oldest first, for the Canvas given. */
  sends(canvasId?: string): BrazeSend[];
  close(): Promise<void>;
}

type Answer = { status: number; body: unknown };

export const DEFAULT_BRAZE_API_KEY = 'braze-standin-rest-api-key';

export async function startBraze(options: BrazeOptions = {}): Promise<BrazeStandIn> {
  const apiKey = options.apiKey ?? DEFAULT_BRAZE_API_KEY;
  const canvases = new Set(options.canvasIds ?? []);
  const sent: BrazeSend[] = [];
  const admin = createAdmin({
    seed: BrazeSeedSchema,
    applySeed: (seed) => {
      for (const id of seed.canvasIds) canvases.add(id);
      return { canvases: canvases.size };
    },
    errorAnswer: (status) => ({
      body: { message: status >= 500 ? 'Internal Server Error' : `Injected ${status}.` },
    }),
  });

  const route = async (req: IncomingMessage, url: URL): Promise<Answer> => {
    const raw = await readRequestBody(req);
    if (req.method !== 'POST' || url.pathname !== '/canvas/trigger/send')
      return { status: 404, body: { message: 'Not Found' } };
    const auth = req.headers.authorization ?? '';
    if (!auth.startsWith('Bearer ') || auth.slice('Bearer '.length) !== apiKey)
      return { status: 401, body: { message: 'Invalid API key: the key is missing or not valid' } };
    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch {
      return { status: 400, body: { message: 'Invalid JSON in request body', errors: [] } };
    }
    const parsed = CanvasTriggerSchema.safeParse(json);
    if (!parsed.success)
      return {
        status: 400,
        body: {
          message: 'Invalid request',
          errors: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
        },
      };
    if (canvases.size && !canvases.has(parsed.data.canvas_id))
      return { status: 400, body: { message: 'Invalid Canvas ID', errors: [parsed.data.canvas_id] } };
    const dispatchId = randomUUID().replaceAll('-', '');
    sent.push({ ...parsed.data, dispatchId });
    return { status: 201, body: { dispatch_id: dispatchId, message: 'success' } };
  };

  const send = (res: ServerResponse, answer: Answer) =>
    res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));

  const server = createServer(
    admin.listener((req, res) => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      route(req, url).then(
        (answer) => send(res, answer),
        () => send(res, { status: 500, body: { message: 'Internal Server Error' } }),
      );
    }),
  );
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    apiKey,
    admin,
    sends: (canvasId) => sent.filter((s) => canvasId === undefined || s.canvas_id === canvasId),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
