import autocannon from 'autocannon';
import {
  cpuSeconds,
  gatewayNodeFlags,
  memory,
  sampleTreeRss,
  spawnNode,
  type NodeChild,
} from '../lib/processes.js';
import { barChart, percentile, table, writeResults } from '../lib/report.js';
import { referenceResponse } from './reference.js';
import { scenario } from './scenario.js';

export const GATEWAYS = [
  'coordinator',
  'coordinator-workers',
  'apollo',
  'hive',
  'hive-router-runtime',
] as const;
/**
 * The Coordinator before a lever, to measure it: its plans on executeQueryPlan (before the compiled
 * executor); its subgraph fetches on make-fetch-happen, then Node's fetch (before the fetch levers);
 * and the Coordinator on node:cluster workers.
 */
export type GatewayName =
  | (typeof GATEWAYS)[number]
  | 'coordinator-apollo-executor'
  | 'coordinator-apollo-fetcher'
  | 'coordinator-node-fetch';
/**
 * A gateway to measure: a name, or `<name>@<node flags>` to run it with those Node flags instead of its
 * usual ones (`npm start`'s for the Coordinator), e.g. `coordinator@--max-semi-space-size=32`;
 * `coordinator@` runs it with Node's defaults.
 */
export type GatewayEntry = GatewayName | `${GatewayName}@${string}`;
/**
 * What `npm run bench -- federation` compares. The workers run with a 32 MiB young generation each:
 * two at `npm start`'s 64 MiB hold more than Hive Gateway + router-runtime at its peak
 * (bench/results/federation-workers.json).
 */
export const DEFAULT_GATEWAYS: readonly GatewayEntry[] = [
  'coordinator',
  'coordinator-workers@--max-semi-space-size=32',
  'apollo',
  'hive',
  'hive-router-runtime',
];
const LABELS: Record<GatewayName, string> = {
  'coordinator-apollo-executor': 'Coordinator, executeQueryPlan',
  'coordinator-apollo-fetcher': 'Coordinator, make-fetch-happen',
  'coordinator-node-fetch': 'Coordinator, Node fetch',
  coordinator: 'Coordinator (FederatedExecutor, compiled plans)',
  'coordinator-workers': 'Coordinator on node:cluster workers',
  apollo: '@apollo/gateway (Apollo Server 5)',
  hive: 'Hive Gateway (JS)',
  'hive-router-runtime': 'Hive Gateway + router-runtime (Rust planner)',
};

function parseEntry(entry: GatewayEntry): { name: GatewayName; flags?: string[] } {
  const at = entry.indexOf('@');
  const name = (at < 0 ? entry : entry.slice(0, at)) as GatewayName;
  if (!(name in LABELS))
    throw new Error(`unknown gateway '${name}' (known: ${Object.keys(LABELS).join(', ')})`);
  return at < 0
    ? { name }
    : {
        name,
        flags: entry
          .slice(at + 1)
          .split(/\s+/)
          .filter(Boolean),
      };
}

export interface FederationOptions {
  gateways?: readonly GatewayEntry[];
  /** @default 50 */
  connections?: number;
  /** Warm-up per gateway before measuring. @default 100 requests, as the published benchmark */
  warmupRequests?: number;
  /** Measured rounds; each gateway gets one slice per round, in alternating order. @default 3 */
  rounds?: number;
  /** @default 10 */
  secondsPerRound?: number;
  /** The load generator alone against a static server, to show its headroom. @default 3; 0 skips */
  headroomSeconds?: number;
  /** Extra node flags for one gateway's process (e.g. --cpu-prof). */
  nodeArgs?: Partial<Record<GatewayName, string[]>>;
  /** Write each Coordinator gateway process's CPU profile (node --cpu-prof) into this directory. */
  cpuProfileDir?: string;
  /** The workers of `coordinator-workers`. @default 2 */
  workers?: number;
  /** Extra environment for the gateway processes. */
  env?: Partial<Record<GatewayName, NodeJS.ProcessEnv>>;
  /** Label gateways differently in the output (e.g. to compare a variant). */
  labels?: Partial<Record<GatewayName, string>>;
  /** Write bench/results/<name>.json and .svg. @default 'federation'; false writes nothing */
  write?: string | false;
  log?: (line: string) => void;
}

export interface LoadSample {
  requests: number;
  seconds: number;
  latenciesMs: number[];
  correct: number;
  incorrect: number;
  /** The first incorrect response, status and the start of its body: what went wrong. */
  firstIncorrect?: string;
  errors: number;
  /** CPU seconds the load generator (this process) used. */
  loadGeneratorCpu: number;
}

export interface GatewayResult {
  gateway: string;
  label: string;
  requestsPerSecond: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  requests: number;
  correct: number;
  incorrect: number;
  firstIncorrect?: string;
  errors: number;
  /** The gateway's processes' peaks summed (an upper bound of their peak together). */
  peakRssMiB: number;
  /** Each process's peak, the gateway's first (its workers after it, for `coordinator-workers`). */
  processPeakRssMiB: number[];
  /** The largest total RSS of the gateway's processes sampled at once (every 250 ms) while measured. */
  sampledPeakRssMiB: number;
  /** The gateway process's (and its workers') CPU use while measured, in cores (1 = one core busy). */
  cpuCores: number;
  /** The subgraphs process's CPU use while this gateway was measured, in cores. */
  subgraphsCpuCores: number;
  /** The load generator's CPU use while this gateway was measured, in cores. */
  loadGeneratorCpuCores: number;
}

export interface FederationResult {
  machine: { cpus: number; node: string; date: string };
  settings: Required<
    Pick<FederationOptions, 'connections' | 'warmupRequests' | 'rounds' | 'secondsPerRound'>
  >;
  gateways: GatewayResult[];
  unavailable: Array<{ gateway: string; reason: string }>;
  headroom?: { requestsPerSecond: number; loadGeneratorCpuCores: number; incorrect: number };
  ratios: Record<string, number>;
}

const expectedBody = JSON.stringify(referenceResponse());
const requestBody = JSON.stringify({ query: scenario.query });

/** Drives `url` with the scenario's query and checks every response body against the reference. */
export async function drive(
  url: string,
  options: { connections: number; seconds?: number; amount?: number },
): Promise<LoadSample> {
  const latenciesMs: number[] = [];
  let correct = 0;
  let incorrect = 0;
  let firstIncorrect: string | undefined;
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  let instance!: autocannon.Instance;
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    instance = autocannon(
      {
        url,
        connections: options.connections,
        ...(options.amount ? { amount: options.amount } : { duration: options.seconds ?? 10 }),
        timeout: 30,
        requests: [
          {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: requestBody,
            onResponse: (status, body) => {
              // Apollo Server ends its JSON with a newline; the bytes are otherwise compared exactly.
              if (status === 200 && body.trimEnd() === expectedBody) correct++;
              else {
                incorrect++;
                firstIncorrect ??= `${status} ${body.slice(0, 300)}`;
              }
            },
          },
        ],
      },
      (error, result) => (error ? reject(error) : resolve(result)),
    );
  });
  instance.on('response', (_client, _status, _bytes, responseTime) => latenciesMs.push(responseTime));
  const result = await done;
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return {
    requests: latenciesMs.length,
    seconds,
    latenciesMs,
    correct,
    incorrect,
    ...(firstIncorrect ? { firstIncorrect } : {}),
    errors: result.errors + result.timeouts,
    loadGeneratorCpu: (cpu.user + cpu.system) / 1e6,
  };
}

export async function runFederation(options: FederationOptions = {}): Promise<FederationResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const settings = {
    connections: options.connections ?? 50,
    warmupRequests: options.warmupRequests ?? 100,
    rounds: options.rounds ?? 3,
    secondsPerRound: options.secondsPerRound ?? 10,
  };
  const names = options.gateways ?? DEFAULT_GATEWAYS;
  const label = (entry: GatewayEntry) => {
    const { name, flags } = parseEntry(entry);
    if (options.labels?.[name]) return options.labels[name];
    return flags ? `${LABELS[name]}, ${flags.length ? flags.join(' ') : 'Node defaults'}` : LABELS[name];
  };
  const started: Array<NodeChild<unknown>> = [];
  const unavailable: FederationResult['unavailable'] = [];
  try {
    const subgraphs = await spawnNode<{ base: string }>('bench/federation/subgraphs-process.ts');
    started.push(subgraphs);
    log(`subgraphs at ${subgraphs.ready.base}/{accounts,inventory,products,reviews}`);

    let headroom: FederationResult['headroom'];
    if ((options.headroomSeconds ?? 3) > 0) {
      const target = await spawnNode<{ url: string }>('bench/federation/static-process.ts');
      started.push(target);
      const sample = await drive(target.ready.url, {
        connections: settings.connections,
        seconds: options.headroomSeconds ?? 3,
      });
      headroom = {
        requestsPerSecond: sample.requests / sample.seconds,
        loadGeneratorCpuCores: sample.loadGeneratorCpu / sample.seconds,
        incorrect: sample.incorrect,
      };
      await target.stop();
      log(
        `load generator headroom: ${headroom.requestsPerSecond.toFixed(0)} checked requests/s against a static server ` +
          `(autocannon at ${(headroom.loadGeneratorCpuCores * 100).toFixed(0)} % of a core)`,
      );
    }

    const gateways: Array<{ name: GatewayEntry; process: NodeChild<{ url: string }> }> = [];
    for (const name of names) {
      try {
        const { name: kind, flags } = parseEntry(name);
        const gateway = await spawnNode<{ url: string }>(
          kind === 'coordinator-workers'
            ? 'bench/federation/workers-process.mjs'
            : 'bench/federation/gateway-process.ts',
          kind === 'coordinator-workers' ? [subgraphs.ready.base] : [kind, subgraphs.ready.base],
          {
            // Ours as `npm start` runs it; the others with their defaults.
            nodeArgs: [
              ...(flags ?? (kind.startsWith('coordinator') ? gatewayNodeFlags() : [])),
              ...(options.nodeArgs?.[kind] ?? []),
              ...(options.cpuProfileDir && kind.startsWith('coordinator')
                ? // One directory per gateway, Node naming each thread's file: tsx's loader runs in a
                  // thread of its own, whose profile a fixed name would keep instead of the gateway's.
                  ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}/${kind}`]
                : []),
            ],
            env: {
              ...(kind === 'coordinator-workers'
                ? { COORDINATOR_WORKERS: String(options.workers ?? 2) }
                : {}),
              ...options.env?.[kind],
            },
          },
        );
        started.push(gateway);
        const warm = await drive(gateway.ready.url, {
          connections: settings.connections,
          amount: settings.warmupRequests,
        });
        if (warm.incorrect || warm.errors)
          throw new Error(`${warm.incorrect} incorrect responses and ${warm.errors} errors during warm-up`);
        gateways.push({ name, process: gateway });
        log(`${label(name)} at ${gateway.ready.url} (pid ${gateway.ready.pid}), warmed up`);
      } catch (error) {
        unavailable.push({ gateway: name, reason: (error as Error).message.split('\n')[0]! });
        log(`${label(name)}: unavailable — ${(error as Error).message.split('\n')[0]}`);
      }
    }

    const totals = new Map(
      gateways.map((g) => [
        g.name,
        { samples: [] as LoadSample[], cpu: 0, subgraphsCpu: 0, seconds: 0, loadCpu: 0, sampledPeakRss: 0 },
      ]),
    );
    for (let round = 0; round < settings.rounds; round++) {
      const order = round % 2 === 0 ? gateways : [...gateways].reverse();
      for (const g of order) {
        const total = totals.get(g.name)!;
        const cpu0 = cpuSeconds(g.process.ready.pid);
        const sub0 = cpuSeconds(subgraphs.ready.pid);
        const rss = sampleTreeRss(g.process.ready.pid);
        const sample = await drive(g.process.ready.url, {
          connections: settings.connections,
          seconds: settings.secondsPerRound,
        });
        total.sampledPeakRss = Math.max(total.sampledPeakRss, rss.stop());
        total.cpu += cpuSeconds(g.process.ready.pid) - cpu0;
        total.subgraphsCpu += cpuSeconds(subgraphs.ready.pid) - sub0;
        total.seconds += sample.seconds;
        total.loadCpu += sample.loadGeneratorCpu;
        total.samples.push(sample);
        log(
          `round ${round + 1}/${settings.rounds} ${label(g.name)}: ${(sample.requests / sample.seconds).toFixed(0)} req/s, ` +
            `${sample.incorrect} incorrect, ${sample.errors} errors` +
            (sample.firstIncorrect ? ` (first incorrect: ${sample.firstIncorrect})` : ''),
        );
      }
    }

    const results: GatewayResult[] = gateways.map((g) => {
      const total = totals.get(g.name)!;
      const latencies = total.samples.flatMap((s) => s.latenciesMs);
      const sum = (f: (s: LoadSample) => number) => total.samples.reduce((a, s) => a + f(s), 0);
      const firstIncorrect = total.samples.find((s) => s.firstIncorrect)?.firstIncorrect;
      return {
        gateway: g.name,
        label: label(g.name),
        requestsPerSecond: sum((s) => s.requests) / total.seconds,
        p50Ms: percentile(latencies, 50),
        p95Ms: percentile(latencies, 95),
        p99Ms: percentile(latencies, 99),
        requests: sum((s) => s.requests),
        correct: sum((s) => s.correct),
        incorrect: sum((s) => s.incorrect),
        ...(firstIncorrect ? { firstIncorrect } : {}),
        errors: sum((s) => s.errors),
        ...peaks(g.process.ready.pid),
        sampledPeakRssMiB: total.sampledPeakRss,
        cpuCores: total.cpu / total.seconds,
        subgraphsCpuCores: total.subgraphsCpu / total.seconds,
        loadGeneratorCpuCores: total.loadCpu / total.seconds,
      };
    });

    const ratios: Record<string, number> = {};
    // The Coordinator in one process and on workers, each against every gateway that is not ours.
    const oursNames = new Set<string>(['coordinator', 'coordinator-workers']);
    const isOurs = (r: GatewayResult) => oursNames.has(parseEntry(r.gateway as GatewayEntry).name);
    for (const ours of results.filter(isOurs)) {
      for (const other of results.filter((r) => r !== ours && !(isOurs(r) && r.gateway > ours.gateway))) {
        const pair = `${ours.gateway}/${other.gateway}`;
        ratios[`requestsPerSecond ${pair}`] = ours.requestsPerSecond / other.requestsPerSecond;
        ratios[`p99 ${pair}`] = ours.p99Ms / other.p99Ms;
        ratios[`peakRss ${pair}`] = ours.peakRssMiB / other.peakRssMiB;
        ratios[`sampledPeakRss ${pair}`] = ours.sampledPeakRssMiB / other.sampledPeakRssMiB;
      }
    }
    const result: FederationResult = {
      machine: {
        cpus: (await import('node:os')).availableParallelism(),
        node: process.version,
        date: new Date().toISOString(),
      },
      settings,
      gateways: results,
      unavailable,
      headroom,
      ratios,
    };

    log('');
    log(
      table(
        [
          'gateway',
          'req/s',
          'p50 ms',
          'p95 ms',
          'p99 ms',
          'peak RSS MiB',
          'CPU cores',
          'incorrect',
          'errors',
          'requests',
        ],
        results.map((r) => [
          r.label,
          r.requestsPerSecond,
          r.p50Ms,
          r.p95Ms,
          r.p99Ms,
          r.peakRssMiB,
          r.cpuCores,
          r.incorrect,
          r.errors,
          r.requests,
        ]),
      ),
    );
    log(
      `(while measured, the load generator used ${results.map((r) => `${(r.loadGeneratorCpuCores * 100).toFixed(0)} %`).join(' / ')} ` +
        `of a core and the subgraphs ${results.map((r) => `${(r.subgraphsCpuCores * 100).toFixed(0)} %`).join(' / ')})`,
    );
    for (const r of results)
      log(
        `${r.label}: ${((r.cpuCores * 1000) / r.requestsPerSecond).toFixed(2)} ms of gateway CPU per request; ` +
          `peak RSS per process ${r.processPeakRssMiB.join(' / ')} MiB, ` +
          `largest total sampled at once ${r.sampledPeakRssMiB.toFixed(0)} MiB`,
      );
    for (const [name, value] of Object.entries(ratios)) log(`${name}: ${value.toFixed(2)}`);

    if (options.write !== false) {
      const name = options.write ?? 'federation';
      const svg = barChart(
        `Federation benchmark, ${settings.connections} connections (${result.machine.date.slice(0, 10)}, ${result.machine.cpus} CPUs)`,
        [
          {
            title: 'Throughput',
            unit: 'requests/s, higher is better',
            bars: results.map((r) => ({ label: r.gateway, value: r.requestsPerSecond })),
          },
          {
            title: 'p99 latency',
            unit: 'ms, lower is better',
            bars: results.map((r) => ({ label: r.gateway, value: r.p99Ms })),
          },
          {
            title: 'Peak RSS',
            unit: 'MiB, lower is better',
            bars: results.map((r) => ({ label: r.gateway, value: r.peakRssMiB })),
          },
        ],
      );
      for (const file of writeResults(name, result, svg)) log(`wrote ${file}`);
    }
    return result;
  } finally {
    for (const child of started.reverse()) await child.stop();
  }
}

function peaks(pid: number): Pick<GatewayResult, 'peakRssMiB' | 'processPeakRssMiB'> {
  const { peakRssMiB, processes } = memory(pid);
  return { peakRssMiB, processPeakRssMiB: processes.map((p) => Math.round(p.peakRssMiB)) };
}
