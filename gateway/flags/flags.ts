import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, extname, resolve } from 'node:path';
import { format } from 'node:util';
import {
  init,
  type Filesystem,
  type LDClient,
  type LDClientContext,
  type LDContext,
  type LDEvaluationReason,
  type LDFeatureStore,
  type LDLogger,
  type LDMultiKindContext,
  type LDOptions,
} from '@launchdarkly/node-server-sdk';
import { FileDataSourceFactory, type TestData } from '@launchdarkly/node-server-sdk/integrations';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import type { Logger } from '../log.js';

/**
 * The result of one flag evaluation, kept on the flow record so a reader can see why an Action went
 * where it went.
 */
export interface FlagDecision {
  flag: string;
  value: boolean;
  /**
   * LaunchDarkly's reason kind: `OFF`, `FALLTHROUGH`, `TARGET_MATCH`, `RULE_MATCH`,
   * `PREREQUISITE_FAILED`, or `ERROR:<errorKind>` (`ERROR:FLAG_NOT_FOUND`, `ERROR:CLIENT_NOT_READY`,
   * `ERROR:WRONG_TYPE`, `ERROR:USER_NOT_SPECIFIED`, …) when the fallback was served.
   */
  reason: string;
}

export interface Flags {
  /**
   * Evaluates a boolean flag locally (no network call per evaluation). Never throws: on any problem the
   * fallback is returned with an `ERROR:…` reason.
   */
  evaluate(flag: string, context: LDContext, fallback: boolean): Promise<FlagDecision>;
  /**
   * Called with a flag's key when its configuration (or a prerequisite or segment it uses) changed.
   * It does not mean the value changed for any given context: re-evaluate to find out. A listener that
   * throws is logged and does not affect other listeners. Returns the function that unsubscribes.
   */
  onChange(listener: (flag: string) => void): () => void;
  /** True once flag data has been received; before that every evaluation serves the fallback. */
  ready(): boolean;
  /** Flushes analytics events (LaunchDarkly service only) and stops the data source. Idempotent. */
  close(): Promise<void>;
}

interface CommonFlagsOptions {
  logger: Logger;
  /**
   * How long `createFlags` waits for the first flag data.
   * @default 5000
   */
  initTimeoutMs?: number;
}

/**
 * The LaunchDarkly service. If it has not answered within `initTimeoutMs`, `createFlags` still resolves
 * (every evaluation serves its fallback — `false` means "old path", the safe direction for transition
 * flags — until data arrives); if it rejects the key, `createFlags` throws a `ConfigError`.
 */
export interface ServiceFlagsOptions extends CommonFlagsOptions {
  sdkKey: string;
  flagsFile?: undefined;
  testData?: undefined;
  /** Points the SDK at a local stand-in of LaunchDarkly's endpoints, for tests. */
  __testing_endpoints?: Pick<LDOptions, 'baseUri' | 'streamUri' | 'eventsUri'>;
}

/**
 * A flags file in LaunchDarkly's file data source format (JSON with top-level `flagValues`, `flags`
 * and/or `segments`), re-read on change. It is validated before the SDK starts and on every change;
 * an invalid edit is logged and the last valid flags stay in force.
 */
export interface FileFlagsOptions extends CommonFlagsOptions {
  flagsFile: string;
  sdkKey?: undefined;
  testData?: undefined;
  __testing_endpoints?: undefined;
}

/** LaunchDarkly's `TestData` source, for tests: `td.update(td.flag(key)…)` reaches the client at once. */
export interface TestDataFlagsOptions extends CommonFlagsOptions {
  testData: TestData;
  sdkKey?: undefined;
  flagsFile?: undefined;
  __testing_endpoints?: undefined;
}

export type FlagsOptions = ServiceFlagsOptions | FileFlagsOptions | TestDataFlagsOptions;

/** The context kind the gateway always sends, so system-level flags have a stable key to target. */
export const COORDINATOR_SERVICE_KEY = 'commerce-coordinator';

/**
 * The LaunchDarkly context the gateway evaluates flags with: a multi-kind context with a `service`
 * (the caller, or the Coordinator itself), plus the learner (`user`) and the `order` when known, so a
 * flag can target or roll out by any of them.
 */
export function flagContext(
  subject: { learnerId?: string; orderId?: string; service?: string } = {},
): LDMultiKindContext {
  return {
    kind: 'multi',
    service: { key: subject.service ?? COORDINATOR_SERVICE_KEY },
    ...(subject.learnerId !== undefined ? { user: { key: subject.learnerId } } : {}),
    ...(subject.orderId !== undefined ? { order: { key: subject.orderId } } : {}),
  };
}

export async function createFlags(options: FlagsOptions): Promise<Flags> {
  const { logger } = options;
  const initTimeoutMs = options.initTimeoutMs ?? 5_000;
  const ldLogger = toLDLogger(logger.child({ component: 'launchdarkly' }));

  let client: LDClient;
  let gate: FlagsFileGate | undefined;
  let source: string;
  if (options.testData) {
    source = 'TestData';
    // Never `offline: true` here: offline clients serve every fallback even with TestData attached.
    client = init('test-data', {
      updateProcessor: options.testData.getFactory(),
      sendEvents: false,
      logger: ldLogger,
    });
  } else if (options.flagsFile !== undefined) {
    source = options.flagsFile;
    gate = await openFlagsFileGate(options.flagsFile, logger);
    const files = new FileDataSourceFactory({
      paths: [gate.path],
      autoUpdate: true,
      logger: ldLogger,
    }).getFactory();
    const filesystem = gate.filesystem;
    // The SDK's FileDataSource reads through the gate, not the disk, so it only ever sees validated
    // content (see FlagsFileGate for what goes wrong otherwise).
    const updateProcessor = (
      context: LDClientContext,
      store: LDFeatureStore,
      onInit?: () => void,
      onError?: (error: Error) => void,
    ) =>
      files(
        { ...context, platform: { ...context.platform, fileSystem: filesystem } },
        store,
        onInit,
        onError,
      );
    client = init('flags-file', { updateProcessor, sendEvents: false, logger: ldLogger });
  } else {
    source = 'LaunchDarkly';
    if (!options.sdkKey.trim()) {
      throw new ConfigError('LAUNCHDARKLY_SDK_KEY', [
        'is empty; set it to the server-side SDK key of the environment',
      ]);
    }
    client = init(options.sdkKey, { logger: ldLogger, ...options.__testing_endpoints });
  }

  try {
    await client.waitForInitialization({ timeout: initTimeoutMs / 1000 });
  } catch (error) {
    if (!client.initialized() && isTimeout(error)) {
      // Fail open: the SDK keeps connecting in the background and evaluations serve fallbacks meanwhile.
      logger.warn({ source, initTimeoutMs }, 'flags: no flag data yet; serving fallbacks until it arrives');
    } else {
      client.close();
      gate?.close();
      if (options.testData) throw error;
      const message = error instanceof Error ? error.message : String(error);
      throw options.flagsFile !== undefined
        ? new ConfigError(options.flagsFile, [
            `LaunchDarkly's file data source could not load it: ${message}`,
          ])
        : new ConfigError('LAUNCHDARKLY_SDK_KEY', [
            `LaunchDarkly did not accept it (${message}); check that it is the server-side SDK key of the environment`,
          ]);
    }
  }
  logger.info({ source, ready: client.initialized() }, 'flags: started');

  let closed: Promise<void> | undefined;
  return {
    async evaluate(flag, context, fallback) {
      try {
        const detail = await client.boolVariationDetail(flag, context, fallback);
        return { flag, value: detail.value, reason: reasonOf(detail.reason) };
      } catch (error) {
        logger.error({ err: error, flag }, 'flags: evaluation failed; serving the fallback');
        return { flag, value: fallback, reason: 'ERROR:EXCEPTION' };
      }
    },
    onChange(listener) {
      const onUpdate = ({ key }: { key: string }) => {
        try {
          listener(key);
        } catch (error) {
          logger.error({ err: error, flag: key }, 'flags: a change listener threw');
        }
      };
      client.on('update', onUpdate);
      return () => void client.off('update', onUpdate);
    },
    ready: () => client.initialized(),
    close() {
      closed ??= (async () => {
        gate?.close();
        if (options.sdkKey !== undefined) {
          await client
            .flush()
            .catch((error: unknown) => logger.warn({ err: error }, 'flags: could not flush events'));
        }
        client.close();
      })();
      return closed;
    },
  };
}

function reasonOf(reason: LDEvaluationReason): string {
  return reason.kind === 'ERROR' ? `ERROR:${reason.errorKind ?? 'UNKNOWN'}` : reason.kind;
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && error.name === 'LaunchDarklyTimeoutError';
}

function toLDLogger(logger: Logger): LDLogger {
  return {
    // An unknown flag is the normal state of a Transition-to-Plugin label before anyone created its
    // flag: the fallback applies and the decision is recorded, so it is not an error worth a log line.
    error: (...args: unknown[]) => {
      const message = format(...args);
      if (message.startsWith('Unknown feature flag')) logger.debug(message);
      else logger.error(message);
    },
    warn: (...args: unknown[]) => logger.warn(format(...args)),
    info: (...args: unknown[]) => logger.info(format(...args)),
    debug: (...args: unknown[]) => logger.debug(format(...args)),
  };
}

// ---------------------------------------------------------------------------------------------------
// The flags file

const key = z.string().regex(/^[\w.-]+$/, 'a key may only hold letters, digits, ".", "_" and "-"');
const variationIndex = z.number().int().min(0);
const rollout = z.looseObject({
  variations: z
    .array(z.looseObject({ variation: variationIndex, weight: z.number().int().min(0).max(100_000) }))
    .min(1),
});
const servesOne = (v: { variation?: number | undefined; rollout?: unknown }) =>
  (v.variation === undefined) !== (v.rollout === undefined);
const servesOneMessage = 'needs exactly one of "variation" or "rollout"';
const clause = z.looseObject({
  contextKind: z.string().optional(),
  attribute: z.string().min(1),
  // An unknown operator would make the clause never match, silently.
  op: z.enum([
    'in',
    'endsWith',
    'startsWith',
    'matches',
    'contains',
    'lessThan',
    'lessThanOrEqual',
    'greaterThan',
    'greaterThanOrEqual',
    'before',
    'after',
    'segmentMatch',
    'semVerEqual',
    'semVerLessThan',
    'semVerGreaterThan',
  ]),
  values: z.array(z.json()),
  negate: z.boolean().optional(),
});
const flagDefinition = z.looseObject({
  key,
  version: z.number().int().min(0).optional(),
  on: z.boolean(),
  variations: z.array(z.json()).min(1),
  offVariation: variationIndex.optional(),
  fallthrough: z
    .looseObject({ variation: variationIndex.optional(), rollout: rollout.optional() })
    .refine(servesOne, servesOneMessage),
  targets: z.array(z.looseObject({ variation: variationIndex, values: z.array(z.string()) })).optional(),
  contextTargets: z
    .array(z.looseObject({ contextKind: z.string(), variation: variationIndex, values: z.array(z.string()) }))
    .optional(),
  rules: z
    .array(
      z
        .looseObject({
          clauses: z.array(clause),
          variation: variationIndex.optional(),
          rollout: rollout.optional(),
        })
        .refine(servesOne, servesOneMessage),
    )
    .optional(),
  prerequisites: z.array(z.looseObject({ key, variation: variationIndex })).optional(),
});
const segmentDefinition = z.looseObject({
  key,
  version: z.number().int().min(0).optional(),
  included: z.array(z.string()).optional(),
  excluded: z.array(z.string()).optional(),
  rules: z.array(z.looseObject({ clauses: z.array(clause) })).optional(),
});
const flagsFileSchema = z.strictObject({
  flagValues: z.record(key, z.json()).optional(),
  flags: z.record(key, flagDefinition).optional(),
  segments: z.record(key, segmentDefinition).optional(),
});
type FlagsFileContent = z.infer<typeof flagsFileSchema>;
type Versioned = { version?: number | undefined };

/** Parses and checks a flags file; returns the problems, each naming where in the file it is. */
export function parseFlagsFile(
  text: string,
): { content: FlagsFileContent; problems?: undefined } | { problems: string[] } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { problems: [`is not valid JSON: ${(error as Error).message}`] };
  }
  const parsed = flagsFileSchema.safeParse(json);
  if (!parsed.success) {
    return {
      problems: parsed.error.issues.map((issue) => {
        const at = issue.path.length ? issue.path.join('.') : 'the top level';
        return issue.code === 'unrecognized_keys'
          ? `${at}: unknown key ${issue.keys.map((k) => `"${k}"`).join(', ')}` +
              (issue.path.length ? '' : ' (a flags file holds only "flagValues", "flags" and "segments")')
          : `${at}: ${issue.message}`;
      }),
    };
  }
  const content = parsed.data;
  const problems: string[] = [];
  if (!content.flagValues && !content.flags && !content.segments) {
    problems.push(
      'holds none of "flagValues", "flags" or "segments"; add at least one (it may be empty: {"flagValues": {}})',
    );
  }
  const flagKeys = new Set([...Object.keys(content.flagValues ?? {}), ...Object.keys(content.flags ?? {})]);
  for (const k of Object.keys(content.flags ?? {})) {
    if (k in (content.flagValues ?? {}))
      problems.push(`"${k}" is defined in both "flags" and "flagValues"; keep one`);
  }
  for (const [k, flag] of Object.entries(content.flags ?? {})) {
    const at = `flags.${k}`;
    if (flag.key !== k) problems.push(`${at}.key is "${flag.key}" but must equal the entry's name "${k}"`);
    const count = flag.variations.length;
    const check = (index: number | undefined, where: string) => {
      if (index !== undefined && index >= count) {
        problems.push(`${at}.${where} is variation ${index} but the flag has only ${count} (0-${count - 1})`);
      }
    };
    check(flag.offVariation, 'offVariation');
    check(flag.fallthrough.variation, 'fallthrough.variation');
    flag.fallthrough.rollout?.variations.forEach((v, i) =>
      check(v.variation, `fallthrough.rollout.variations.${i}.variation`),
    );
    flag.targets?.forEach((t, i) => check(t.variation, `targets.${i}.variation`));
    flag.contextTargets?.forEach((t, i) => check(t.variation, `contextTargets.${i}.variation`));
    flag.rules?.forEach((rule, i) => {
      check(rule.variation, `rules.${i}.variation`);
      rule.rollout?.variations.forEach((v, j) =>
        check(v.variation, `rules.${i}.rollout.variations.${j}.variation`),
      );
    });
    flag.prerequisites?.forEach((p, i) => {
      if (!flagKeys.has(p.key))
        problems.push(`${at}.prerequisites.${i} names flag "${p.key}", which is not in this file`);
    });
  }
  const segmentKeys = new Set(Object.keys(content.segments ?? {}));
  for (const [k, segment] of Object.entries(content.segments ?? {})) {
    if (segment.key !== k)
      problems.push(`segments.${k}.key is "${segment.key}" but must equal the entry's name "${k}"`);
  }
  const checkSegmentRefs = (
    rules: Array<{ clauses: Array<z.infer<typeof clause>> }> | undefined,
    at: string,
  ) =>
    rules?.forEach((rule, i) =>
      rule.clauses.forEach((c, j) => {
        if (c.op !== 'segmentMatch') return;
        for (const value of c.values) {
          if (typeof value !== 'string' || !segmentKeys.has(value)) {
            problems.push(
              `${at}.rules.${i}.clauses.${j} matches segment ${JSON.stringify(value)}, which is not in this file`,
            );
          }
        }
      }),
    );
  for (const [k, flag] of Object.entries(content.flags ?? {})) checkSegmentRefs(flag.rules, `flags.${k}`);
  for (const [k, segment] of Object.entries(content.segments ?? {}))
    checkSegmentRefs(segment.rules, `segments.${k}`);
  return problems.length ? { problems } : { content };
}

/**
 * LaunchDarkly only reports a flag or segment as changed when its `version` grows, and people editing
 * a file rarely bump it. Give every edited entry a higher version than the one the SDK holds, so change
 * listeners fire. (`flagValues` entries are versioned by the SDK itself.)
 */
function withVersions(next: FlagsFileContent, served: FlagsFileContent | undefined): FlagsFileContent {
  const bump = <T extends Versioned>(
    items: Record<string, T> | undefined,
    before: Record<string, T> | undefined,
  ) => {
    if (!items) return undefined;
    const out: Record<string, T> = {};
    for (const [k, item] of Object.entries(items)) {
      const prev = before?.[k];
      const version =
        prev === undefined
          ? (item.version ?? 1)
          : sameExceptVersion(prev, item)
            ? (prev.version ?? 1)
            : Math.max(item.version ?? 0, (prev.version ?? 1) + 1);
      out[k] = { ...item, version };
    }
    return out;
  };
  return {
    ...(next.flagValues ? { flagValues: next.flagValues } : {}),
    ...(next.flags ? { flags: bump(next.flags, served?.flags) } : {}),
    ...(next.segments ? { segments: bump(next.segments, served?.segments) } : {}),
  };
}

function sameExceptVersion(a: Versioned, b: Versioned): boolean {
  return JSON.stringify({ ...a, version: 0 }) === JSON.stringify({ ...b, version: 0 });
}

/**
 * Stands between the flags file and the SDK's FileDataSource, whose own watching is unsafe for a file
 * people edit: it watches the file's inode, so after an editor's or git's replace-by-rename or
 * unlink-and-create it never sees another edit; a `stat` while the file is briefly absent is an
 * unhandled rejection that ends the process; and a malformed edit is only logged, then resets its
 * version bookkeeping so the next valid edit may raise no change event. The gate watches the directory,
 * validates each new content, and hands the SDK only valid content (as a `Filesystem` whose timestamp
 * is a generation number), so none of that reaches the SDK.
 */
interface FlagsFileGate {
  /** The absolute path the SDK is told to read. */
  path: string;
  filesystem: Filesystem;
  close(): void;
}

const SETTLE_MS = 25;

async function openFlagsFileGate(file: string, logger: Logger): Promise<FlagsFileGate> {
  const path = resolve(file);
  if (extname(path) !== '.json') {
    throw new ConfigError(file, [
      'must be a JSON file ending in ".json" (the format of LaunchDarkly\'s file data source)',
    ]);
  }
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(file, [
      `cannot be read (${(error as Error).message}); create it or point the gateway at another flags file`,
    ]);
  }
  const first = parseFlagsFile(text);
  if (first.problems) throw new ConfigError(file, first.problems);

  let served = withVersions(first.content, undefined);
  let servedText = JSON.stringify(served);
  let generation = 0;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let reloading = Promise.resolve();
  const listeners = new Set<(eventType: string, filename: string) => void>();

  const reload = async () => {
    if (closed) return;
    let current: string;
    try {
      current = await readFile(path, 'utf8');
    } catch (error) {
      // Absent for a moment while an editor or git replaces it; the next event brings the new file.
      logger.warn({ file, err: error }, 'flags: flags file unreadable; keeping the last valid flags');
      return;
    }
    const parsed = parseFlagsFile(current);
    if (parsed.problems) {
      const problem = new ConfigError(file, parsed.problems);
      logger.error(
        { file, problems: parsed.problems },
        `flags: keeping the last valid flags; ${problem.message}`,
      );
      return;
    }
    const next = withVersions(parsed.content, served);
    const nextText = JSON.stringify(next);
    if (nextText === servedText) return;
    served = next;
    servedText = nextText;
    generation += 1;
    logger.info({ file, generation }, 'flags: flags file changed');
    for (const listener of listeners) listener('change', path);
  };

  let watcher: FSWatcher;
  try {
    watcher = watch(dirname(path), { persistent: false }, (_event, name) => {
      if (closed || (name !== null && name !== basename(path))) return;
      clearTimeout(timer);
      // Writers truncate then write, or unlink then create: let the burst of events settle first.
      timer = setTimeout(() => {
        reloading = reloading.then(reload, reload);
      }, SETTLE_MS);
    });
  } catch (error) {
    throw new ConfigError(file, [`cannot be watched for changes (${(error as Error).message})`]);
  }
  watcher.on('error', (error) =>
    logger.error({ file, err: error }, 'flags: watching the flags file failed; edits no longer apply'),
  );

  return {
    path,
    filesystem: {
      getFileTimestamp: async () => generation,
      readFile: async () => servedText,
      watch: (_path, callback) => {
        listeners.add(callback);
        return { close: () => void listeners.delete(callback) };
      },
    },
    close() {
      closed = true;
      clearTimeout(timer);
      watcher.close();
      listeners.clear();
    },
  };
}
