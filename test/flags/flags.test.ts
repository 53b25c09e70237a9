import { mkdtemp, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { TestData } from '@launchdarkly/node-server-sdk/integrations';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../gateway/errors.js';
import {
  createFlags,
  flagContext,
  parseFlagsFile,
  type Flags,
  type FlagsOptions,
} from '../../gateway/flags/flags.js';
import { silentLogger } from '../../gateway/log.js';

/** Polls `check` until it returns a value other than `undefined`, or fails after `timeoutMs`. */
async function waitFor<T>(
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 3_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`waitFor: condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

const learner = (id: string) => flagContext({ learnerId: id });
const open: Flags[] = [];
const start = async (options: FlagsOptions) => {
  const flags = await createFlags(options);
  open.push(flags);
  return flags;
};
afterEach(async () => {
  await Promise.all(open.splice(0).map((f) => f.close()));
});

describe('flagContext', () => {
  it('always names the Coordinator as the service, and adds the learner and order when known', () => {
    expect(flagContext()).toEqual({ kind: 'multi', service: { key: 'commerce-coordinator' } });
    expect(flagContext({ learnerId: '42', orderId: 'EDX-100', service: 'stripe' })).toEqual({
      kind: 'multi',
      service: { key: 'stripe' },
      user: { key: '42' },
      order: { key: 'EDX-100' },
    });
  });
});

describe('createFlags options', () => {
  it('accepts exactly one source', () => {
    const logger = silentLogger;
    // @ts-expect-error a flags file and an SDK key are mutually exclusive
    const both: FlagsOptions = { logger, sdkKey: 'k', flagsFile: 'flags.json' };
    // @ts-expect-error TestData and a flags file are mutually exclusive
    const other: FlagsOptions = { logger, testData: new TestData(), flagsFile: 'flags.json' };
    // @ts-expect-error one source is required
    const none: FlagsOptions = { logger };
    expect([both, other, none]).toHaveLength(3);
  });
});

describe('TestData source', () => {
  it('reports the value and LaunchDarkly reason kind of each decision', async () => {
    const td = new TestData();
    await td.update(
      td
        .flag('refunds.b')
        .booleanFlag()
        .variationForContext('user', 'alice', true)
        .fallthroughVariation(false),
    );
    await td.update(
      td
        .flag('orders.canary')
        .booleanFlag()
        .ifMatch('order', 'key', 'EDX-1')
        .thenReturn(true)
        .fallthroughVariation(false),
    );
    await td.update(td.flag('kill-switch').booleanFlag().on(false).offVariation(false));
    const flags = await start({ testData: td, logger: silentLogger });

    expect(flags.ready()).toBe(true);
    await expect(flags.evaluate('refunds.b', learner('alice'), false)).resolves.toEqual({
      flag: 'refunds.b',
      value: true,
      reason: 'TARGET_MATCH',
    });
    await expect(flags.evaluate('refunds.b', learner('bob'), true)).resolves.toEqual({
      flag: 'refunds.b',
      value: false,
      reason: 'FALLTHROUGH',
    });
    await expect(
      flags.evaluate('orders.canary', flagContext({ orderId: 'EDX-1' }), false),
    ).resolves.toMatchObject({
      value: true,
      reason: 'RULE_MATCH',
    });
    await expect(flags.evaluate('kill-switch', flagContext(), true)).resolves.toMatchObject({
      value: false,
      reason: 'OFF',
    });
  });

  it('serves the fallback with ERROR:FLAG_NOT_FOUND for an unknown flag', async () => {
    const flags = await start({ testData: new TestData(), logger: silentLogger });
    await expect(flags.evaluate('no.such.flag', flagContext(), true)).resolves.toEqual({
      flag: 'no.such.flag',
      value: true,
      reason: 'ERROR:FLAG_NOT_FOUND',
    });
    await expect(flags.evaluate('no.such.flag', flagContext(), false)).resolves.toMatchObject({
      value: false,
    });
  });

  it('applies updates at once and tells change listeners which flag changed', async () => {
    const td = new TestData();
    await td.update(td.flag('refunds.b').booleanFlag().variationForAll(false));
    const flags = await start({ testData: td, logger: silentLogger });
    const changed: string[] = [];
    const unsubscribe = flags.onChange((flag) => changed.push(flag));

    await td.update(td.flag('refunds.b').variationForAll(true));
    expect(changed).toEqual(['refunds.b']);
    await expect(flags.evaluate('refunds.b', learner('alice'), false)).resolves.toMatchObject({
      value: true,
    });

    unsubscribe();
    await td.update(td.flag('refunds.b').variationForAll(false));
    expect(changed).toEqual(['refunds.b']);
    await expect(flags.evaluate('refunds.b', learner('alice'), true)).resolves.toMatchObject({
      value: false,
    });
  });

  it('keeps other listeners running when one throws', async () => {
    const td = new TestData();
    const { logger, lines } = capturingLogger();
    const flags = await start({ testData: td, logger });
    const seen: string[] = [];
    flags.onChange(() => {
      throw new Error('listener bug');
    });
    flags.onChange((flag) => seen.push(flag));
    await td.update(td.flag('x').booleanFlag());
    expect(seen).toEqual(['x']);
    expect(lines.some((l) => l.msg === 'flags: a change listener threw')).toBe(true);
  });
});

describe('flags file source', () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cc-flags-'));
    file = join(dir, 'flags.json');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const write = (content: unknown, path = file) => writeFile(path, JSON.stringify(content, null, 2));
  const valueOf = async (flags: Flags, flag: string, fallback = false) =>
    (await flags.evaluate(flag, learner('alice'), fallback)).value;
  const fullFlag = (key: string, fallthrough: number, extra: Record<string, unknown> = {}) => ({
    key,
    on: true,
    variations: [true, false],
    offVariation: 1,
    fallthrough: { variation: fallthrough },
    ...extra,
  });

  it('loads the repository flags.json: the demo rollouts of the Transition-to-Coordinator flags', async () => {
    const flags = await start({
      flagsFile: resolve(import.meta.dirname, '../../flags.json'),
      logger: silentLogger,
    });
    expect(flags.ready()).toBe(true);
    await expect(
      flags.evaluate('transition.order-history.coordinator', flagContext(), false),
    ).resolves.toEqual({ flag: 'transition.order-history.coordinator', value: true, reason: 'FALLTHROUGH' });
    // Checkout moves learner 3 (ada of the demo data) only.
    const checkout = (learnerId: string) =>
      flags.evaluate('transition.checkout.coordinator', flagContext({ learnerId }), false);
    await expect(checkout('3')).resolves.toMatchObject({ value: true, reason: 'TARGET_MATCH' });
    await expect(checkout('4')).resolves.toMatchObject({ value: false, reason: 'FALLTHROUGH' });
  });

  it('decides from flagValues, flags and segments', async () => {
    await write({
      flagValues: { 'constant.on': true },
      flags: {
        'staff.only': fullFlag('staff.only', 1, {
          rules: [
            {
              clauses: [{ contextKind: 'user', attribute: 'key', op: 'segmentMatch', values: ['staff'] }],
              variation: 0,
            },
          ],
        }),
      },
      segments: { staff: { key: 'staff', included: ['alice'] } },
    });
    const flags = await start({ flagsFile: file, logger: silentLogger });
    await expect(flags.evaluate('constant.on', flagContext(), false)).resolves.toMatchObject({
      value: true,
      reason: 'FALLTHROUGH',
    });
    await expect(flags.evaluate('staff.only', learner('alice'), false)).resolves.toMatchObject({
      value: true,
      reason: 'RULE_MATCH',
    });
    await expect(flags.evaluate('staff.only', learner('bob'), true)).resolves.toMatchObject({
      value: false,
      reason: 'FALLTHROUGH',
    });
    await expect(flags.evaluate('missing', flagContext(), true)).resolves.toMatchObject({
      value: true,
      reason: 'ERROR:FLAG_NOT_FOUND',
    });
  });

  it('applies an edit without a restart and tells change listeners', async () => {
    await write({ flagValues: { 'refunds.b': false } });
    const flags = await start({ flagsFile: file, logger: silentLogger });
    const changed: string[] = [];
    flags.onChange((flag) => changed.push(flag));
    expect(await valueOf(flags, 'refunds.b', true)).toBe(false);

    await write({ flagValues: { 'refunds.b': true } });
    await waitFor(async () => ((await valueOf(flags, 'refunds.b')) ? true : undefined));
    await waitFor(() => (changed.includes('refunds.b') ? true : undefined));
  });

  it('raises a change event for an edited full flag even when its version was not bumped', async () => {
    await write({ flags: { 'refunds.b': fullFlag('refunds.b', 1, { version: 3 }) } });
    const flags = await start({ flagsFile: file, logger: silentLogger });
    const changed: string[] = [];
    flags.onChange((flag) => changed.push(flag));

    await write({ flags: { 'refunds.b': fullFlag('refunds.b', 0, { version: 3 }) } });
    await waitFor(() => (changed.includes('refunds.b') ? true : undefined));
    expect(await valueOf(flags, 'refunds.b')).toBe(true);
  });

  it('keeps following the file when it is replaced by rename or by unlink and create (editors, git)', async () => {
    await write({ flagValues: { a: false } });
    const flags = await start({ flagsFile: file, logger: silentLogger });

    await write({ flagValues: { a: true } }, `${file}.tmp`);
    await rename(`${file}.tmp`, file);
    await waitFor(async () => ((await valueOf(flags, 'a')) ? true : undefined));

    await unlink(file);
    await write({ flagValues: { a: false } });
    await waitFor(async () => ((await valueOf(flags, 'a', true)) ? undefined : true));

    await write({ flagValues: { a: true } });
    await waitFor(async () => ((await valueOf(flags, 'a')) ? true : undefined));
  });

  it('keeps the last valid flags on a malformed edit, logs why, and applies the next valid edit', async () => {
    await write({ flagValues: { a: true } });
    const { logger, lines } = capturingLogger();
    const flags = await start({ flagsFile: file, logger });
    const changed: string[] = [];
    flags.onChange((flag) => changed.push(flag));

    await writeFile(file, '{ "flagValues": { "a": fals');
    const logged = await waitFor(() => lines.find((l) => Array.isArray(l.problems)));
    expect(logged).toMatchObject({ level: 50, file });
    expect(String(logged.msg)).toContain(file);
    expect(await valueOf(flags, 'a')).toBe(true);

    await write({ flagValues: { a: false } });
    await waitFor(async () => ((await valueOf(flags, 'a', true)) ? undefined : true));
    await waitFor(() => (changed.includes('a') ? true : undefined));
  });

  it('serves the fallback with ERROR:FLAG_NOT_FOUND for an unknown flag', async () => {
    await write({ flagValues: {} });
    const flags = await start({ flagsFile: file, logger: silentLogger });
    await expect(flags.evaluate('nope', flagContext(), false)).resolves.toEqual({
      flag: 'nope',
      value: false,
      reason: 'ERROR:FLAG_NOT_FOUND',
    });
  });

  it.each([
    ['invalid JSON', '{ "flagValues": ', /is not valid JSON/],
    ['a misspelt top-level key', JSON.stringify({ flagValue: { a: true } }), /unknown key "flagValue"/],
    ['no section at all', '{}', /holds none of "flagValues", "flags" or "segments"/],
    [
      'a variation index out of range',
      JSON.stringify({ flags: { a: fullFlag('a', 2) } }),
      /flags\.a\.fallthrough\.variation is variation 2 but the flag has only 2/,
    ],
    [
      'a key that does not match its entry',
      JSON.stringify({ flags: { a: fullFlag('b', 0) } }),
      /flags\.a\.key is "b"/,
    ],
    [
      'an unknown clause operator',
      JSON.stringify({
        flags: {
          a: fullFlag('a', 0, {
            rules: [{ clauses: [{ attribute: 'key', op: 'equals', values: ['x'] }], variation: 0 }],
          }),
        },
      }),
      /flags\.a\.rules\.0\.clauses\.0\.op/,
    ],
    [
      'a missing prerequisite',
      JSON.stringify({ flags: { a: fullFlag('a', 0, { prerequisites: [{ key: 'b', variation: 0 }] }) } }),
      /names flag "b", which is not in this file/,
    ],
    [
      'a missing segment',
      JSON.stringify({
        flags: {
          a: fullFlag('a', 0, {
            rules: [{ clauses: [{ attribute: 'key', op: 'segmentMatch', values: ['staff'] }], variation: 0 }],
          }),
        },
      }),
      /segment "staff", which is not in this file/,
    ],
    [
      'a key in both flags and flagValues',
      JSON.stringify({ flagValues: { a: true }, flags: { a: fullFlag('a', 0) } }),
      /"a" is defined in both/,
    ],
  ])('refuses to start on %s, with a ConfigError naming the file', async (_name, content, problem) => {
    await writeFile(file, content);
    const error = await createFlags({ flagsFile: file, logger: silentLogger }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).file).toBe(file);
    expect((error as ConfigError).message).toContain(file);
    expect((error as ConfigError).problems.join('\n')).toMatch(problem);
  });

  it('refuses to start on a missing file or a non-JSON file', async () => {
    await expect(createFlags({ flagsFile: file, logger: silentLogger })).rejects.toThrow(ConfigError);
    await writeFile(join(dir, 'flags.yaml'), 'flagValues: {}');
    await expect(createFlags({ flagsFile: join(dir, 'flags.yaml'), logger: silentLogger })).rejects.toThrow(
      /must be a JSON file/,
    );
  });

  it('parseFlagsFile reports every problem, not only the first', () => {
    const result = parseFlagsFile(JSON.stringify({ flags: { a: fullFlag('b', 5) } }));
    expect(result.problems).toHaveLength(2);
  });
});

describe('LaunchDarkly service source (against a local stand-in)', () => {
  let server: Server | undefined;
  afterEach(async () => {
    // The client first, or it sees the stream drop and reconnects while the server closes.
    await Promise.all(open.splice(0).map((f) => f.close()));
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r) ?? r(undefined));
    server = undefined;
  });
  const standIn = async (onStream: (res: ServerResponse) => void) => {
    server = createServer((req, res) => {
      if (req.url?.startsWith('/all')) return onStream(res);
      res.writeHead(202).end();
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return { baseUri: uri, streamUri: uri, eventsUri: uri };
  };

  it('evaluates flags streamed by the service', async () => {
    const endpoints = await standIn((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const flag = {
        key: 'refunds.b',
        version: 1,
        on: true,
        variations: [true, false],
        fallthrough: { variation: 0 },
        offVariation: 1,
      };
      res.write(
        `event: put\ndata: ${JSON.stringify({ path: '/', data: { flags: { 'refunds.b': flag }, segments: {} } })}\n\n`,
      );
    });
    const flags = await start({ sdkKey: 'sdk-test', logger: silentLogger, __testing_endpoints: endpoints });
    expect(flags.ready()).toBe(true);
    await expect(flags.evaluate('refunds.b', flagContext(), false)).resolves.toMatchObject({
      value: true,
      reason: 'FALLTHROUGH',
    });
  });

  it('refuses to start when the service rejects the SDK key', async () => {
    const endpoints = await standIn((res) => res.writeHead(401).end());
    const error = await createFlags({
      sdkKey: 'sdk-wrong',
      logger: silentLogger,
      __testing_endpoints: endpoints,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).file).toBe('LAUNCHDARKLY_SDK_KEY');
  });

  it('starts anyway when the service does not answer in time, serving fallbacks until it does', async () => {
    const endpoints = await standIn(() => {
      // never answers
    });
    const { logger, lines } = capturingLogger();
    const flags = await start({
      sdkKey: 'sdk-slow',
      logger,
      initTimeoutMs: 100,
      __testing_endpoints: endpoints,
    });
    expect(flags.ready()).toBe(false);
    await expect(flags.evaluate('refunds.b', flagContext(), false)).resolves.toEqual({
      flag: 'refunds.b',
      value: false,
      reason: 'ERROR:CLIENT_NOT_READY',
    });
    expect(
      lines.some(
        (l) => l.level === 40 && l.msg === 'flags: no flag data yet; serving fallbacks until it arrives',
      ),
    ).toBe(true);
  });
});
