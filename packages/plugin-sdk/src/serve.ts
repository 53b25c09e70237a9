import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { execute, parse, validate, type GraphQLError } from 'graphql';
import { z } from 'zod';
import { ConfigError, ErrorCode } from './errors.js';
import {
  CALL_ASSERTION_HEADER,
  createCallVerifier,
  signingSecretProblem,
  type ActionCall,
  type CallVerifier,
} from './call-assertion.js';
import {
  createActionContext,
  withPartialErrors,
  SIGNALS_EXTENSION,
  type EmittedSignal,
  type Plugin,
} from './plugin.js';

const requestSchema = z.object({
  query: z.string().min(1),
  variables: z.record(z.string(), z.unknown()).nullish(),
  operationName: z.string().nullish(),
});

export interface SubgraphServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

export interface ServeSubgraphOptions {
  /**
   * The secret the gateway signs its calls with (its SUBGRAPH_SIGNING_SECRET), at least 32 bytes.
   * Required: a subgraph serves only calls the gateway signed.
   */
  secret: string;
  /** The subgraph's name in the gateway's rover.yaml: calls must be addressed to it. @default plugin.name */
  name?: string;
  /** @default 0: a free port */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
}

/**
 * Serves one Plugin as a remote subgraph over HTTP (POST JSON, the GraphQL-over-HTTP shape the gateway
 * sends). Only calls the gateway signed are served: the ActionContext (caller, flow step) comes from
 * the verified assertion alone, and anything else answers 401 UNAUTHENTICATED before the body is read
 * as an operation. Signals its resolvers emit go back in the response's extensions, for the gateway
 * to commit.
 */
export async function serveSubgraph(plugin: Plugin, options: ServeSubgraphOptions): Promise<SubgraphServer> {
  const problem = signingSecretProblem(options?.secret);
  if (problem)
    throw new ConfigError(`serveSubgraph(${plugin.name})`, [
      `secret: ${problem}; pass the gateway's SUBGRAPH_SIGNING_SECRET`,
    ]);
  const verifier = createCallVerifier({ secret: options.secret, audience: options.name ?? plugin.name });
  const server = createServer(async (req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    const refuse = (status: number, code: ErrorCode, message: string) =>
      send(status, { errors: [{ message, extensions: { code } }] });
    if (req.method !== 'POST') return refuse(405, ErrorCode.METHOD_NOT_ALLOWED, 'POST a GraphQL request');
    let verified;
    try {
      verified = await verifiedCall(req, verifier);
    } catch (error) {
      if (error instanceof BodyTooLarge)
        return refuse(413, ErrorCode.PAYLOAD_TOO_LARGE, `Request body over ${MAX_BODY_BYTES} bytes`);
      // The body could not be read (the caller went away): there is no one to answer.
      return void res.destroy();
    }
    if (!verified.ok)
      return send(401, {
        errors: [
          {
            message: `This subgraph serves only calls signed by the Coordinator: ${verified.reason}`,
            extensions: { code: ErrorCode.UNAUTHENTICATED },
          },
        ],
      });
    let body: z.infer<typeof requestSchema>;
    try {
      body = requestSchema.parse(JSON.parse(verified.body.toString('utf8')));
    } catch {
      return refuse(400, ErrorCode.BAD_REQUEST, 'Body must be JSON { query, variables?, operationName? }');
    }
    let document;
    try {
      document = parse(body.query);
    } catch (error) {
      return refuse(400, ErrorCode.GRAPHQL_PARSE_FAILED, (error as GraphQLError).message);
    }
    const errors = validate(plugin.schema, document);
    if (errors.length)
      return send(400, {
        errors: errors.map((e) => ({
          ...e.toJSON(),
          extensions: { code: ErrorCode.GRAPHQL_VALIDATION_FAILED },
        })),
      });
    const emitted: EmittedSignal[] = [];
    const partial: GraphQLError[] = [];
    const { principal, step } = verified.call;
    const result = withPartialErrors(
      await execute({
        schema: plugin.schema,
        document,
        variableValues: body.variables ?? undefined,
        operationName: body.operationName ?? undefined,
        contextValue: createActionContext({ principal, ...step }, emitted, undefined, partial),
      }),
      partial,
    );
    send(
      200,
      emitted.length
        ? { ...result, extensions: { ...result.extensions, [SIGNALS_EXTENSION]: emitted } }
        : result,
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    server,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The request's verified call and its body; an unsigned request is refused before its body is read. */
async function verifiedCall(
  req: IncomingMessage,
  verifier: CallVerifier,
): Promise<{ ok: true; call: ActionCall; body: Buffer } | { ok: false; reason: string }> {
  const assertion = req.headers[CALL_ASSERTION_HEADER];
  if (typeof assertion !== 'string' || !assertion)
    return { ok: false, reason: `no ${CALL_ASSERTION_HEADER} header` };
  const body = await readBody(req);
  const verified = await verifier.verify(assertion, body);
  return verified.ok ? { ...verified, body } : verified;
}

/** As the gateway's own limit: no operation the gateway sends is larger. */
const MAX_BODY_BYTES = 1 << 20;

class BodyTooLarge extends Error {}

/** The whole body, refused past MAX_BODY_BYTES rather than held in memory whatever its size. */
async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new BodyTooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
