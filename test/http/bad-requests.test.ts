import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../gateway/log.js';
import { startTestCoordinator, type TestCoordinator } from '../support/coordinator.js';
import { collect, subscriptionClient } from '../support/subscriptions.js';

type ErrorBody = { errors?: Array<{ message: string; extensions?: { code?: string } }> };

/** Every GraphQL request the gateway cannot run is refused with a 4xx and one of the public codes. */
describe('bad GraphQL requests over HTTP', () => {
  let t: TestCoordinator;
  /** What the Coordinator logged at error level. */
  const errorLines: Array<{ msg: string; code?: string }> = [];
  beforeAll(async () => {
    t = await startTestCoordinator('http-bad-requests', {
      redis: false,
      overrides: {
        logger: createLogger({
          level: 'error',
          destination: { write: (line: string) => void errorLines.push(JSON.parse(line) as never) },
        }),
      },
    });
  });
  afterAll(async () => t?.stop());

  const post = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const get = (params: Record<string, string>) =>
    fetch(`${t.url}/graphql?${new URLSearchParams(params)}`, {
      headers: { 'apollo-require-preflight': 'true' },
    });
  /** Each error's message and code (development answers add a stack trace). */
  const errorsOf = async (res: Response) =>
    ((await res.json()) as ErrorBody).errors?.map((e) => [e.message, e.extensions?.code]);
  const answer = async (res: Response) => ({
    status: res.status,
    codes: ((await res.json()) as ErrorBody).errors?.map((e) => e.extensions?.code),
  });

  it('answers an operationName the document lacks with 400 BAD_REQUEST, naming it', async () => {
    const res = await post({ query: 'query Flows { flows(limit: 1) { id } }', operationName: 'Other' });
    expect(res.status).toBe(400);
    expect(await errorsOf(res)).toEqual([['The document has no operation named "Other"', 'BAD_REQUEST']]);
  });

  it('answers an operationName for a document whose one operation is unnamed with 400 BAD_REQUEST', async () => {
    const res = await post({ query: '{ flows(limit: 1) { id } }', operationName: 'Flows' });
    expect(res.status).toBe(400);
    expect(await errorsOf(res)).toEqual([['The document has no operation named "Flows"', 'BAD_REQUEST']]);
  });

  it('answers a document of two operations without an operationName with 400 BAD_REQUEST', async () => {
    const res = await post({
      query: 'query A { flows(limit: 1) { id } } query B { flows(limit: 2) { id } }',
    });
    expect(res.status).toBe(400);
    expect(await errorsOf(res)).toEqual([
      ['The document has several operations: name the one to run in operationName', 'BAD_REQUEST'],
    ]);
  });

  it('answers two unnamed operations in one document with 400 GRAPHQL_VALIDATION_FAILED', async () => {
    expect(
      await answer(await post({ query: '{ flows(limit: 1) { id } } { flows(limit: 2) { id } }' })),
    ).toEqual({ status: 400, codes: ['GRAPHQL_VALIDATION_FAILED', 'GRAPHQL_VALIDATION_FAILED'] });
  });

  it('answers a subscription sent over POST with 400 BAD_REQUEST pointing to graphql-ws', async () => {
    const res = await post({ query: 'subscription { flowEvents { cursor } }' });
    expect(res.status).toBe(400);
    expect(await errorsOf(res)).toEqual([
      ['Subscriptions are served over graphql-ws (a WebSocket) at /graphql, not over HTTP', 'BAD_REQUEST'],
    ]);
  });

  it('answers a subscription sent over GET with a 4xx BAD_REQUEST', async () => {
    const { status, codes } = await answer(await get({ query: 'subscription { flowEvents { cursor } }' }));
    expect(status).toBeGreaterThanOrEqual(400);
    expect(status).toBeLessThan(500);
    expect(codes).toEqual(['BAD_REQUEST']);
  });

  it('answers a document with only fragments with 400 GRAPHQL_VALIDATION_FAILED', async () => {
    const { status, codes } = await answer(await post({ query: 'fragment F on FlowRun { id }' }));
    expect(status).toBe(400);
    expect(codes?.every((c) => c === 'GRAPHQL_VALIDATION_FAILED')).toBe(true);
  });

  it('answers a document with only a fragment the schema accepts and an unused operationName with 400', async () => {
    expect(
      await answer(await post({ query: 'fragment F on Query { __typename }', operationName: 'F' })),
    ).toEqual({
      status: 400,
      codes: ['GRAPHQL_VALIDATION_FAILED'],
    });
  });

  it('answers a mutation sent over GET with 405 BAD_REQUEST', async () => {
    const res = await get({ query: 'mutation { replayDeadLetters(receiver: "x", reason: "x") }' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
    expect((await answer(res)).codes).toEqual(['BAD_REQUEST']);
  });

  it.each([
    ['variables that are not an object', { query: '{ __typename }', variables: [1] }],
    ['variables as a JSON string', { query: '{ __typename }', variables: '{"a":1}' }],
    ['a query that is not a string', { query: 42 }],
    ['a query that is an object', { query: { kind: 'Document' } }],
    ['an operationName that is not a string', { query: '{ __typename }', operationName: 7 }],
    ['extensions that are not an object', { query: '{ __typename }', extensions: 'x' }],
    ['an empty object', {}],
    ['no query', { variables: {} }],
    ['an empty query', { query: '' }],
    ['a JSON string', '"{ __typename }"'],
    ['a JSON number', '42'],
    ['JSON null', 'null'],
    ['a batched array body', [{ query: '{ __typename }' }, { query: '{ __typename }' }]],
    ['an empty array body', []],
  ])('answers a POST body with %s with 400 BAD_REQUEST', async (_what, body) => {
    expect(await answer(await post(body))).toEqual({ status: 400, codes: ['BAD_REQUEST'] });
  });

  it('answers a POST without a JSON content type with 400 BAD_REQUEST', async () => {
    const res = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: '{ __typename }',
    });
    expect(await answer(res)).toEqual({ status: 400, codes: ['BAD_REQUEST'] });
  });

  it('answers variables of the wrong type with 400 BAD_USER_INPUT', async () => {
    const { status, codes } = await answer(
      await post({ query: 'query($l: Int) { flows(limit: $l) { id } }', variables: { l: 'many' } }),
    );
    expect({ status, codes }).toEqual({ status: 400, codes: ['BAD_USER_INPUT'] });
  });

  it('answers GET variables that are not JSON with 400 BAD_REQUEST', async () => {
    expect(await answer(await get({ query: '{ __typename }', variables: '{nope' }))).toEqual({
      status: 400,
      codes: ['BAD_REQUEST'],
    });
  });

  it('answers an unsupported HTTP method with 405', async () => {
    const res = await fetch(`${t.url}/graphql`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect(res.status).toBe(405);
    expect((await answer(res)).codes).toEqual(['BAD_REQUEST']);
  });

  // Apollo's APQ protocol: its clients send the query again on this answer, with status 200.
  it('answers a persisted query hash it does not know with 200 PERSISTED_QUERY_NOT_FOUND', async () => {
    const res = await post({ extensions: { persistedQuery: { version: 1, sha256Hash: 'a'.repeat(64) } } });
    expect(await answer(res)).toEqual({ status: 200, codes: ['PERSISTED_QUERY_NOT_FOUND'] });
  });

  it('logs no error for a mistake of the client it answers with a code', async () => {
    errorLines.length = 0;
    const hash = (v: string) => createHash('sha256').update(v).digest('hex');
    const query = '{ __typename }';
    const answers = await Promise.all([
      post({ query: 'query A { __typename }', operationName: 'B' }),
      post({ query: 'query A { __typename } query B { __typename }' }),
      post({ query, extensions: { persistedQuery: { version: 2, sha256Hash: hash(query) } } }),
      post({ query, extensions: { persistedQuery: { version: 1, sha256Hash: hash('another') } } }),
    ]);
    expect(answers.map((a) => a.status)).toEqual([400, 400, 400, 400]);
    expect(errorLines).toEqual([]);
  });

  it('still runs a document of several operations when operationName picks one', async () => {
    const res = await post({
      query: 'query A { flows(limit: 1) { id } } query B { __typename }',
      operationName: 'B',
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ data: { __typename: 'Query' } });
  });

  it('answers a query over the WebSocket that fails with its error, and the socket stays open', async () => {
    const client = subscriptionClient(t.url, { lazy: false, onNonLazyError: () => {} });
    const closes: unknown[] = [];
    client.on('closed', (event) => closes.push(event));
    const failing = collect(client, { query: '{ flow(id: "not-a-flow") { id } }' }, (d) => d);
    // The errors come back from Apollo Server already formatted: the socket must not close on them.
    await Promise.race([failing.completed.promise, failing.failed.promise]);
    expect(failing.failed.settled).toBe(false);
    expect(failing.resultErrors).toEqual([
      expect.objectContaining({
        message: "'not-a-flow' is not a flow id",
        extensions: expect.objectContaining({ code: 'BAD_USER_INPUT' }),
      }),
    ]);
    const next = collect(client, { query: '{ flows(limit: 1) { id } }' }, (d) => d);
    await next.completed.promise;
    expect(next.events).toEqual([{ flows: expect.any(Array) }]);
    expect(closes).toEqual([]);
    await client.dispose();
  });

  it('answers a query over the WebSocket with an unknown operationName with BAD_REQUEST', async () => {
    const client = subscriptionClient(t.url);
    const unknown = collect(client, { query: 'query A { __typename }', operationName: 'B' }, (d) => d);
    const errors = (await unknown.failed.promise) as Array<{ extensions?: { code?: string } }>;
    expect(errors.map((e) => e.extensions?.code)).toEqual(['BAD_REQUEST']);
    await client.dispose();
  });
});
