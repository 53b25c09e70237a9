import pg from 'pg';
import type { FlowPlugin } from '../../gateway/flows/hooks.js';
import { machinePostgresUrl } from '../../test/support/database.js';
import { startFixtureCoordinator, type FixtureCoordinator } from '../lib/fixture-coordinator.js';
import { cpuSeconds, gatewayNodeFlags, spawnNode, type NodeChild } from '../lib/processes.js';
import { profiled } from '../lib/profile.js';
import { barChart, percentile, table, writeResults } from '../lib/report.js';

process.env.APOLLO_TELEMETRY_DISABLED ??= '1';

export interface FlowBenchOptions {
  /** @default [1, 10, 100] */
  concurrency?: readonly number[];
  /** Each Service call's fixed latency. @default 5 ms */
  serviceLatencyMs?: number;
  /** Measured rounds per concurrency, each mode once per round, alternating. @default 2 */
  rounds?: number;
  /** @default 5 */
  secondsPerRound?: number;
  /** @default 1 */
  warmupSeconds?: number;
  /** PostgreSQL single-row insert commit rate, measured for this long. @default 3 s */
  commitSeconds?: number;
  /**
   * Run the Coordinator in a process of its own on this many node:cluster workers
   * (bench/flows/coordinator-process.ts) instead of in this process beside the load. Its CPU is then
   * counted too (the process and its workers), beside this process's.
   */
  workers?: number;
  /** Write a CPU profile of the Coordinator's measured load (this process) to this file. */
  cpuProfile?: string;
  /** @default 'flows'; false writes nothing */
  write?: string | false;
  log?: (line: string) => void;
}

export interface ModeResult {
  mode: 'coordinator' | 'direct';
  concurrency: number;
  flowsPerSecond: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  flows: number;
  incorrect: number;
  /**
   * CPU use while measured, in cores: this process (the load, and the Coordinator or the direct
   * script), plus the Coordinator's own processes when it runs on workers.
   */
  cpuCores: number;
  /** The Coordinator's processes' share of `cpuCores`, when it runs on workers. */
  coordinatorCpuCores?: number;
}

export interface FlowBenchResult {
  settings: Required<Omit<FlowBenchOptions, 'write' | 'log' | 'cpuProfile' | 'workers'>> & {
    workers?: number;
  };
  results: ModeResult[];
  ratios: Array<{ concurrency: number; latencyP50: number; latencyP99: number; throughput: number }>;
  postgres: { commitsPerSecond1Connection: number; commitsPerSecond10Connections: number };
  durability: { completedFlows: number; recordedCompletedFlows: number; recordedCompletedSteps: number };
}

export const MUTATION = /* GraphQL */ `
  mutation Purchase($input: BenchPurchaseInput!) {
    benchPurchase(input: $input) {
      flow {
        id
        status
        steps {
          action
          status
        }
      }
    }
  }
`;

/** Runs `flow` from `concurrency` workers for `seconds`; returns each completed flow's latency. */
export async function load(
  concurrency: number,
  seconds: number,
  flow: () => Promise<boolean>,
): Promise<{ latencies: number[]; incorrect: number; seconds: number; cpuSeconds: number }> {
  const latencies: number[] = [];
  const cpu0 = process.cpuUsage();
  let incorrect = 0;
  const started = performance.now();
  const until = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        const ok = await flow().catch(() => false);
        if (ok) latencies.push(performance.now() - t0);
        else incorrect++;
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  return {
    latencies,
    incorrect,
    seconds: (performance.now() - started) / 1000,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

/** Single-row insert transactions per second on `url` from `connections` clients. */
async function commitRate(url: string, connections: number, seconds: number): Promise<number> {
  const clients = await Promise.all(
    Array.from({ length: connections }, async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      return client;
    }),
  );
  try {
    await clients[0]!.query('create table if not exists bench_commit (id bigserial primary key, body text)');
    let commits = 0;
    const started = performance.now();
    const until = started + seconds * 1000;
    await Promise.all(
      clients.map(async (client) => {
        while (performance.now() < until) {
          // One statement outside a transaction block: its own transaction, committed (fsync) alone.
          await client.query('insert into bench_commit (body) values ($1)', ['x']);
          commits++;
        }
      }),
    );
    return commits / ((performance.now() - started) / 1000);
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
}

export async function runFlows(options: FlowBenchOptions = {}): Promise<FlowBenchResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const settings = {
    concurrency: options.concurrency ?? [1, 10, 100],
    serviceLatencyMs: options.serviceLatencyMs ?? 5,
    rounds: options.rounds ?? 2,
    secondsPerRound: options.secondsPerRound ?? 5,
    warmupSeconds: options.warmupSeconds ?? 1,
    commitSeconds: options.commitSeconds ?? 3,
    ...(options.workers ? { workers: options.workers } : {}),
  };
  const service = await spawnNode<{ url: string }>('bench/flows/service-process.ts', [
    String(settings.serviceLatencyMs),
  ]);
  process.env.BENCH_SERVICE_URL = service.ready.url;
  const { serviceCall } = await import('./fixture/subgraphs/shop/index.js');
  let completedFlows = 0;
  const counter: FlowPlugin = {
    name: 'bench-counter',
    flowWillStart: (p) => (end) => {
      if (p.kind === 'filter' && end.status === 'completed') completedFlows++;
    },
  };
  let bench: FixtureCoordinator | undefined;
  let ownProcess: NodeChild<{ url: string; databaseUrl: string; redisUrl: string }> | undefined;
  try {
    if (options.workers) {
      ownProcess = await spawnNode('bench/flows/coordinator-process.ts', [], {
        nodeArgs: gatewayNodeFlags(),
        env: { COORDINATOR_WORKERS: String(options.workers) },
      });
    } else {
      bench = await startFixtureCoordinator('bench-flows', { flowPlugins: [counter] });
    }
    const database = bench?.database ?? { url: ownProcess!.ready.databaseUrl };
    const redisUrl = bench?.redisUrl ?? ownProcess!.ready.redisUrl;
    const url = `${bench?.url ?? ownProcess!.ready.url}/graphql`;
    /** The Coordinator's processes' CPU seconds so far; 0 in this process (counted with the load). */
    const coordinatorCpu = () => (ownProcess ? cpuSeconds(ownProcess.ready.pid) : 0);
    log(
      `Coordinator at ${url} (${ownProcess ? `pid ${ownProcess.ready.pid} on ${options.workers} workers` : 'in this process'}, ` +
        `PostgreSQL ${database.url.replace(/\/\/[^@]*@/, '//')}, Redis ${redisUrl}); Service stand-in ` +
        `at ${service.ready.url} answering after ${settings.serviceLatencyMs} ms`,
    );
    let seq = 0;
    const viaCoordinator = async () => {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: MUTATION, variables: { input: { orderId: `o-${++seq}` } } }),
      });
      const body = (await res.json()) as {
        data?: { benchPurchase: { flow: { status: string; steps: Array<{ status: string }> } } };
      };
      const flow = body.data?.benchPurchase.flow;
      const completed =
        flow?.status === 'COMPLETED' &&
        flow.steps.length === 4 &&
        flow.steps.every((s) => s.status === 'COMPLETED');
      // In this process the counter Flow Plugin counts them; on workers, their answers do.
      if (completed && ownProcess) completedFlows++;
      return completed;
    };
    const direct = async () => {
      const orderId = `d-${++seq}`;
      const { id: reservationId } = await serviceCall('reserve', { orderId }, `${orderId}:0`);
      const { id: chargeId } = await serviceCall('charge', { orderId, reservationId }, `${orderId}:1`);
      const { id: fulfilmentId } = await serviceCall('fulfil', { orderId, chargeId }, `${orderId}:2`);
      const { id } = await serviceCall('notify', { orderId, fulfilmentId }, `${orderId}:3`);
      return typeof id === 'string';
    };
    const modes = { coordinator: viaCoordinator, direct } as const;
    const profileFile = (concurrency: number, round: number) =>
      options.cpuProfile?.replace(/(\.cpuprofile)?$/, `-${concurrency}-${round}.cpuprofile`);

    const commitsPerSecond1Connection = await commitRate(database.url, 1, settings.commitSeconds);
    const commitsPerSecond10Connections = await commitRate(database.url, 10, settings.commitSeconds);
    log(
      `PostgreSQL single-row insert commits: ${commitsPerSecond1Connection.toFixed(0)}/s (1 connection), ` +
        `${commitsPerSecond10Connections.toFixed(0)}/s (10 connections)`,
    );

    const results: ModeResult[] = [];
    for (const concurrency of settings.concurrency) {
      const samples = { coordinator: [] as number[], direct: [] as number[] };
      const incorrect = { coordinator: 0, direct: 0 };
      const seconds = { coordinator: 0, direct: 0 };
      const cpu = { coordinator: 0, direct: 0 };
      const ownCpu = { coordinator: 0, direct: 0 };
      for (const mode of ['coordinator', 'direct'] as const)
        await load(concurrency, settings.warmupSeconds, modes[mode]);
      for (let round = 0; round < settings.rounds; round++) {
        const order =
          round % 2 === 0 ? (['coordinator', 'direct'] as const) : (['direct', 'coordinator'] as const);
        for (const mode of order) {
          const measure = () => load(concurrency, settings.secondsPerRound, modes[mode]);
          const cpu0 = coordinatorCpu();
          const r = await (mode === 'coordinator' && !ownProcess
            ? profiled(profileFile(concurrency, round), measure)
            : measure());
          const used = coordinatorCpu() - cpu0;
          ownCpu[mode] += used;
          r.cpuSeconds += used;
          samples[mode].push(...r.latencies);
          incorrect[mode] += r.incorrect;
          seconds[mode] += r.seconds;
          cpu[mode] += r.cpuSeconds;
        }
      }
      for (const mode of ['coordinator', 'direct'] as const) {
        results.push({
          mode,
          concurrency,
          flowsPerSecond: samples[mode].length / seconds[mode],
          p50Ms: percentile(samples[mode], 50),
          p95Ms: percentile(samples[mode], 95),
          p99Ms: percentile(samples[mode], 99),
          flows: samples[mode].length,
          incorrect: incorrect[mode],
          cpuCores: cpu[mode] / seconds[mode],
          ...(ownProcess ? { coordinatorCpuCores: ownCpu[mode] / seconds[mode] } : {}),
        });
      }
      log(`${concurrency} concurrent flows measured`);
    }
    const ratios = settings.concurrency.map((concurrency) => {
      const c = results.find((r) => r.mode === 'coordinator' && r.concurrency === concurrency)!;
      const d = results.find((r) => r.mode === 'direct' && r.concurrency === concurrency)!;
      return {
        concurrency,
        latencyP50: c.p50Ms / d.p50Ms,
        latencyP99: c.p99Ms / d.p99Ms,
        throughput: d.flowsPerSecond / c.flowsPerSecond,
      };
    });
    // Every flow the Coordinator completed is durably recorded: its run and its four steps.
    await bench?.coordinator.components.dispatcher.flush().catch(() => {});
    const db = new pg.Client({ connectionString: database.url });
    await db.connect();
    const recorded = await db.query<{ flows: string; steps: string }>(
      `select count(distinct r.id) as flows, count(s.id) as steps from "FlowRun" r join "FlowStep" s on s."flowId" = r.id
       where r.kind = 'filter' and r.status = 'completed' and s.status = 'completed'`,
    );
    await db.end();
    const durability = {
      completedFlows,
      recordedCompletedFlows: Number(recorded.rows[0]!.flows),
      recordedCompletedSteps: Number(recorded.rows[0]!.steps),
    };
    const result: FlowBenchResult = {
      settings,
      results,
      ratios,
      postgres: { commitsPerSecond1Connection, commitsPerSecond10Connections },
      durability,
    };

    log('');
    log(
      table(
        [
          'mode',
          'concurrent',
          'flows/s',
          'p50 ms',
          'p95 ms',
          'p99 ms',
          'flows',
          'incorrect',
          'CPU cores',
          'CPU ms/flow',
        ],
        results.map((r) => [
          r.mode,
          r.concurrency,
          r.flowsPerSecond,
          r.p50Ms,
          r.p95Ms,
          r.p99Ms,
          r.flows,
          r.incorrect,
          r.cpuCores,
          (r.cpuCores * 1000) / r.flowsPerSecond,
        ]),
      ),
    );
    log(
      table(
        ['concurrent', 'p50 coord/direct', 'p99 coord/direct', 'flows/s direct/coord'],
        ratios.map((r) => [r.concurrency, r.latencyP50, r.latencyP99, r.throughput]),
      ),
    );
    log(
      `durability: ${durability.completedFlows} flows completed, ${durability.recordedCompletedFlows} recorded ` +
        `completed with ${durability.recordedCompletedSteps} completed steps; PostgreSQL at ${machinePostgresUrl().replace(/\/\/[^@]*@/, '//')}`,
    );
    if (options.write !== false) {
      const svg = barChart('Purchase Flow overhead: four Action steps, Coordinator vs direct calls', [
        {
          title: 'Throughput',
          unit: 'flows/s',
          bars: results.map((r) => ({ label: `${r.mode} ×${r.concurrency}`, value: r.flowsPerSecond })),
        },
        {
          title: 'p50 latency',
          unit: 'ms',
          bars: results.map((r) => ({ label: `${r.mode} ×${r.concurrency}`, value: r.p50Ms })),
        },
      ]);
      for (const file of writeResults(options.write ?? 'flows', result, svg)) log(`wrote ${file}`);
    }
    return result;
  } finally {
    await bench?.stop();
    await ownProcess?.stop();
    await service.stop();
  }
}
