import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { execute, parse, validate, type GraphQLError } from 'graphql';
import { z } from 'zod';
import { createActionContext, SIGNALS_EXTENSION, type EmittedSignal, type Plugin } from './plugin.js';

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

/**
 * Serves one Plugin as a remote subgraph over HTTP (POST JSON, the GraphQL-over-HTTP shape the gateway
 * sends). Signals its resolvers emit go back in the response's extensions, for the gateway to commit.
 */
export async function serveSubgraph(
  plugin: Plugin,
  options: { port?: number; host?: string } = {},
): Promise<SubgraphServer> {
  const server = createServer(async (req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (req.method !== 'POST') return send(405, { errors: [{ message: 'POST a GraphQL request' }] });
    let body: z.infer<typeof requestSchema>;
    try {
      body = requestSchema.parse(JSON.parse(await readBody(req)));
    } catch {
      return send(400, {
        errors: [
          {
            message: 'Body must be JSON { query, variables?, operationName? }',
            extensions: { code: 'BAD_REQUEST' },
          },
        ],
      });
    }
    let document;
    try {
      document = parse(body.query);
    } catch (error) {
      return send(400, {
        errors: [{ message: (error as GraphQLError).message, extensions: { code: 'GRAPHQL_PARSE_FAILED' } }],
      });
    }
    const errors = validate(plugin.schema, document);
    if (errors.length)
      return send(400, {
        errors: errors.map((e) => ({ ...e.toJSON(), extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } })),
      });
    const emitted: EmittedSignal[] = [];
    const header = (name: string) => {
      const value = req.headers[name];
      return Array.isArray(value) ? value[0] : value;
    };
    const result = await execute({
      schema: plugin.schema,
      document,
      variableValues: body.variables ?? undefined,
      operationName: body.operationName ?? undefined,
      contextValue: createActionContext(header, emitted),
    });
    send(
      200,
      emitted.length
        ? { ...result, extensions: { ...result.extensions, [SIGNALS_EXTENSION]: emitted } }
        : result,
    );
  });
  await new Promise<void>((resolve) =>
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve),
  );
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    server,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
