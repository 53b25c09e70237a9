import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { z } from 'zod';

/**
 * The admin HTTP API every Service stand-in serves under `/_admin/` (a prefix no real Service uses, so
 * the Plugins' paths behave as before): seed what the Service owns, inject faults into the next matching
 * requests, and read the journal of what it received. Each stand-in passes its seed schema and the real
 * Service's error body; everything else lives here, once. See services/README.md.
 */

export const ADMIN_PREFIX = '/_admin/';

/** The stable `error.code` of an admin answer that is not a success. */
export const AdminErrorCode = {
  /** The body is not JSON. */
  INVALID_JSON: 'INVALID_JSON',
  /** The body (or query) is JSON but not what the endpoint takes; `issues` says where. */
  INVALID_INPUT: 'INVALID_INPUT',
  /** The seed is valid but contradicts what the stand-in holds (an id taken, say). */
  SEED_REJECTED: 'SEED_REJECTED',
  /** No admin endpoint at this method and path. */
  UNKNOWN_ENDPOINT: 'UNKNOWN_ENDPOINT',
} as const;
export type AdminErrorCode = (typeof AdminErrorCode)[keyof typeof AdminErrorCode];

/** What a fault does to each matching request, instead of (or before) the real answer. */
export const FaultSchema = z
  .object({
    /** Upper-case HTTP method to match; any when absent. */
    method: z
      .string()
      .min(1)
      .transform((m) => m.toUpperCase())
      .optional(),
    /** Matches requests whose path starts with this; any when absent. */
    path: z.string().startsWith('/').optional(),
    /** How many matching requests it affects. */
    times: z.number().int().positive().default(1),
    /** Answers this status with the real Service's error body (or `body`). */
    status: z.number().int().min(400).max(599).optional(),
    /** Replaces the Service's error body for `status`. */
    body: z.unknown().optional(),
    /** Holds the request this long first (then answers `status`, resets, or handles it as usual). */
    delayMs: z.number().int().min(0).max(60_000).optional(),
    /** Drops the connection without an answer. */
    reset: z.boolean().optional(),
  })
  .strict()
  .refine((f) => !(f.reset && f.status !== undefined), {
    message: 'a fault either resets or answers a status',
  })
  .refine((f) => f.reset || f.status !== undefined || f.delayMs !== undefined, {
    message: 'a fault needs status, delayMs or reset',
  });
export type Fault = z.input<typeof FaultSchema>;

const JournalQuery = z
  .object({
    method: z
      .string()
      .transform((m) => m.toUpperCase())
      .optional(),
    /** Path prefix. */
    path: z.string().optional(),
  })
  .strict();

/** One request a stand-in received. */
export interface JournalEntry {
  method: string;
  path: string;
  query: string;
  /** The headers that say what a caller meant (idempotency, content), not its credentials. */
  headers: Record<string, string>;
  /** Parsed JSON, or the raw text (form bodies, say); absent without a body. */
  body?: unknown;
  /** The status answered; absent while in flight or when the connection was dropped. */
  status?: number;
  /** The fault applied to it, if any. */
  fault?: boolean;
}

const JOURNAL_HEADERS = [
  'idempotency-key',
  'paypal-request-id',
  'prefer',
  'content-type',
  'x-correlation-id',
];

export interface AdminOptions<Seed> {
  /** Validates `POST /_admin/seed`. */
  seed: z.ZodType<Seed>;
  /** Applies a valid seed; its return value is the answer's `seeded`. */
  applySeed(seed: Seed): unknown;
  /** The real Service's answer to a request to `path` failing with `status`. */
  errorAnswer(status: number, path: string): { body: unknown; contentType?: string };
}

/** A stand-in's admin state, for in-process use as well as over HTTP. */
export interface Admin {
  journal(filter?: { method?: string; path?: string }): JournalEntry[];
  resetJournal(): void;
  injectFault(fault: Fault): void;
  clearFaults(): void;
  /** Wraps the stand-in's own listener: admin endpoints, the journal and faults before it. */
  listener(service: RequestListener): RequestListener;
}

type ActiveFault = z.output<typeof FaultSchema> & { remaining: number };

class AdminAnswer {
  constructor(
    readonly status: number,
    readonly body?: unknown,
  ) {}
}

const STATUS_OF: Record<AdminErrorCode, number> = {
  INVALID_JSON: 400,
  INVALID_INPUT: 400,
  SEED_REJECTED: 409,
  UNKNOWN_ENDPOINT: 404,
};

const invalid = (code: AdminErrorCode, message: string, issues?: unknown) =>
  new AdminAnswer(STATUS_OF[code], { error: { code, message, issues } });

/** Applies a valid seed; a stand-in's refusal (an Error) is the caller's conflict, not a 500. */
function applySeed<Seed>(options: AdminOptions<Seed>, seed: Seed): unknown {
  try {
    return options.applySeed(seed);
  } catch (error) {
    throw invalid(AdminErrorCode.SEED_REJECTED, error instanceof Error ? error.message : String(error));
  }
}

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (!result.success) {
    throw invalid(
      AdminErrorCode.INVALID_INPUT,
      result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; '),
      result.error.issues.map((i) => ({ path: i.path, message: i.message })),
    );
  }
  return result.data;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const text = (await readRequestBody(req)).toString('utf8');
  try {
    return JSON.parse(text || '{}');
  } catch {
    throw invalid(AdminErrorCode.INVALID_JSON, 'the body is not JSON');
  }
}

function parseBody(raw: Buffer, contentType: string | undefined): unknown {
  const text = raw.toString('utf8');
  if (contentType?.includes('json')) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

export function createAdmin<Seed>(options: AdminOptions<Seed>): Admin {
  const entries: JournalEntry[] = [];
  let faults: ActiveFault[] = [];

  const journal = (filter: { method?: string; path?: string } = {}) =>
    entries.filter(
      (e) =>
        (!filter.method || e.method === filter.method.toUpperCase()) && e.path.startsWith(filter.path ?? ''),
    );
  const injectFault = (fault: Fault) =>
    void faults.push({ ...parse(FaultSchema, fault), remaining: fault.times ?? 1 });
  const clearFaults = () => void (faults = []);
  const resetJournal = () => void entries.splice(0);

  const admin = async (req: IncomingMessage, url: URL): Promise<AdminAnswer> => {
    const route = `${req.method} ${url.pathname.slice(ADMIN_PREFIX.length - 1)}`;
    switch (route) {
      case 'POST /seed':
        return new AdminAnswer(201, { seeded: applySeed(options, parse(options.seed, await readJson(req))) });
      case 'GET /journal':
        return new AdminAnswer(200, {
          requests: journal(parse(JournalQuery, Object.fromEntries(url.searchParams))),
        });
      case 'DELETE /journal':
        resetJournal();
        return new AdminAnswer(204);
      case 'GET /faults':
        return new AdminAnswer(200, { faults });
      case 'POST /faults': {
        const fault = parse(FaultSchema, await readJson(req));
        faults.push({ ...fault, remaining: fault.times });
        return new AdminAnswer(201, { fault });
      }
      case 'DELETE /faults':
        clearFaults();
        return new AdminAnswer(204);
      default:
        throw invalid(AdminErrorCode.UNKNOWN_ENDPOINT, `no admin endpoint ${route}`);
    }
  };

  const send = (res: ServerResponse, answer: AdminAnswer) => {
    if (answer.body === undefined) return void res.writeHead(answer.status).end();
    res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
  };

  return {
    journal,
    resetJournal,
    injectFault,
    clearFaults,
    listener: (service) => (req, res) => {
      const url = new URL(req.url ?? '/', 'http://stand-in');
      if (url.pathname.startsWith(ADMIN_PREFIX)) {
        admin(req, url).then(
          (answer) => send(res, answer),
          (error: unknown) => send(res, error instanceof AdminAnswer ? error : new AdminAnswer(500)),
        );
        return;
      }
      const entry = record(req, url, entries);
      res.on('finish', () => (entry.status = res.statusCode));
      const method = req.method ?? 'GET';
      const fault = faults.find(
        (f) => (!f.method || f.method === method) && url.pathname.startsWith(f.path ?? ''),
      );
      if (!fault) return service(req, res);
      // A spent fault is gone: GET /_admin/faults lists only what will still happen.
      if (--fault.remaining === 0) faults = faults.filter((f) => f !== fault);
      entry.fault = true;
      void (async () => {
        if (fault.delayMs) await new Promise((resolve) => setTimeout(resolve, fault.delayMs));
        if (fault.reset) return void req.socket.destroy();
        if (fault.status === undefined) return service(req, res);
        // Drain the body first, so the caller reads the answer rather than a reset.
        await readRequestBody(req);
        const answer = options.errorAnswer(fault.status, url.pathname);
        const body = fault.body ?? answer.body;
        const html = typeof body === 'string';
        res
          .writeHead(fault.status, {
            'content-type': answer.contentType ?? (html ? 'text/html; charset=utf-8' : 'application/json'),
          })
          .end(html ? body : JSON.stringify(body));
      })().catch(() => {
        // The caller gave up during the delay (its timeout): there is nobody to answer.
        res.destroy();
      });
    },
  };
}

/** The journal entry of each request in flight, so the body is recorded where the stand-in reads it. */
const entryOf = new WeakMap<IncomingMessage, JournalEntry>();

/**
 * Reads a request's body, and records it on the request's journal entry. Every stand-in reads bodies
 * through this, so the journal holds exactly what the Service's handler saw, without tapping the stream.
 */
export async function readRequestBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const raw = Buffer.concat(chunks);
  const entry = entryOf.get(req);
  if (entry && raw.length > 0) entry.body = parseBody(raw, entry.headers['content-type']);
  return raw;
}

function record(req: IncomingMessage, url: URL, entries: JournalEntry[]): JournalEntry {
  const headers: Record<string, string> = {};
  for (const name of JOURNAL_HEADERS) {
    const value = req.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  const entry: JournalEntry = { method: req.method ?? 'GET', path: url.pathname, query: url.search, headers };
  entries.push(entry);
  entryOf.set(req, entry);
  return entry;
}

/**
 * The error answer of a Django REST framework Service (the LMS, legacy ecommerce): Django's HTML page
 * for a 5xx, DRF's `{ detail }` otherwise.
 */
export function djangoErrorAnswer(status: number): { body: unknown } {
  return { body: status >= 500 ? `<h1>Server Error (${status})</h1>` : { detail: `Injected ${status}.` } };
}
