import { startFixtureCoordinator } from '../lib/fixture-coordinator.js';
import { cpuSeconds, spawnNode } from '../lib/processes.js';
import { profiled } from '../lib/profile.js';
import { barChart, percentile, table, writeResults } from '../lib/report.js';
import type { SourceReport } from './source-process.js';

process.env.APOLLO_TELEMETRY_DISABLED ??= '1';
const SIGNAL = 'bench.purchased.v1';

export interface SignalBenchOptions {
  /** graphql-ws subscribers, each on its own WebSocket. @default 100 */
  subscribers?: number;
  /** Signals committed per second (open loop). @default 100 */
  rate?: number;
  /** @default 5 */
  seconds?: number;
  /** Write a CPU profile of the Coordinator (this process) while the signals are sent, to this file. */
  cpuProfile?: string;
  /** @default 'signals'; false writes nothing */
  write?: string | false;
  log?: (line: string) => void;
}

interface Latencies {
  count: number;
  missing: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface SignalBenchResult {
  settings: Required<Omit<SignalBenchOptions, 'write' | 'log' | 'cpuProfile'>>;
  committed: number;
  /** Committed signals per second over the source's sending time; `settings.rate` was offered. */
  achievedRate: number;
  /** Webhooks answered more than 1 s after they were due. */
  lateCommits: number;
  /**
   * CPU per committed signal, in ms: the Coordinator (route, outbox, bus, receiver run, feed and
   * subscriptions) and the subscribers' process, measured from the first webhook to the last delivery.
   */
  cpuMsPerSignal: { coordinator: number; subscribers: number };
  failedCommits: number;
  /** Why the source's webhook requests failed, with how many of each. */
  failureReasons: Record<string, number>;
  receiverStart: Latencies;
  subscriberDelivery: Latencies & { errors: number };
}

/**
 * Commits `rate` signals/s (a Plugin route publishing `bench.purchased.v1`, as a PSP webhook does) to a
 * Coordinator on real Redis and PostgreSQL, and measures commit → the receiver's Action starting and
 * commit → arrival at each of N graphql-ws subscribers (in a process of their own).
 */
export async function runSignals(options: SignalBenchOptions = {}): Promise<SignalBenchResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const settings = {
    subscribers: options.subscribers ?? 100,
    rate: options.rate ?? 100,
    seconds: options.seconds ?? 5,
  };
  process.env.BENCH_SERVICE_URL ??= 'http://127.0.0.1:9';
  const { commitTimes, receiverStarts, clearTimes } =
    await import('../flows/fixture/subgraphs/shop/index.js');
  clearTimes();
  const bench = await startFixtureCoordinator('bench-signals', { outboxPollMs: 50 });
  let subscribers: Awaited<ReturnType<typeof spawnNode<unknown>>> | undefined;
  let source: Awaited<ReturnType<typeof spawnNode<unknown>>> | undefined;
  try {
    const { url } = bench;
    subscribers = await spawnNode<unknown>(
      'bench/signals/subscribers-process.ts',
      [url, SIGNAL, String(settings.subscribers)],
      { ipc: true, timeoutMs: 120_000 },
    );
    log(
      `${settings.subscribers} graphql-ws subscribers connected to ${url}; committing ${settings.rate} signals/s`,
    );

    // The webhook source in a process of its own: sharing the Coordinator's core, it fell behind its rate.
    source = await spawnNode<unknown>(
      'bench/signals/source-process.ts',
      [url, String(settings.rate), String(settings.seconds)],
      { ipc: true },
    );
    const sourceChild = source.child;
    const cpu0 = process.cpuUsage();
    const subscribersCpu0 = cpuSeconds(subscribers.ready.pid);
    const sending = new Promise<SourceReport>((resolve) =>
      sourceChild.once('message', (m) => resolve(m as never)),
    );
    const sourceReport = await profiled(options.cpuProfile, async () => {
      sourceChild.send({ type: 'start' });
      const report = await sending;
      // Let the last deliveries arrive.
      const deadline = performance.now() + 10_000;
      while (receiverStarts.size < commitTimes.size && performance.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 1_000));
      return report;
    });
    const cpu = process.cpuUsage(cpu0);
    const subscribersCpuMs = (cpuSeconds(subscribers.ready.pid) - subscribersCpu0) * 1000;
    const { failed: failedCommits, failureReasons } = sourceReport;
    const achievedRate = commitTimes.size / sourceReport.seconds;
    const perSignal = (ms: number) => (commitTimes.size ? ms / commitTimes.size : 0);
    const cpuMsPerSignal = {
      coordinator: perSignal((cpu.user + cpu.system) / 1000),
      subscribers: perSignal(subscribersCpuMs),
    };

    const receiverLatencies: number[] = [];
    for (const [orderId, committed] of commitTimes) {
      const startedAt = receiverStarts.get(orderId);
      if (startedAt !== undefined) receiverLatencies.push(startedAt - committed);
    }
    const receiverStart: Latencies = {
      count: receiverLatencies.length,
      missing: commitTimes.size - receiverLatencies.length,
      p50Ms: percentile(receiverLatencies, 50),
      p95Ms: percentile(receiverLatencies, 95),
      p99Ms: percentile(receiverLatencies, 99),
      maxMs: Math.max(...receiverLatencies),
    };
    const child = subscribers.child;
    const report = await new Promise<SignalBenchResult['subscriberDelivery'] & { deliveries: number }>(
      (resolve) => {
        child.once('message', (m) => resolve(m as never));
        child.send({ type: 'report', commits: Object.fromEntries(commitTimes) });
      },
    );
    const subscriberDelivery = { ...report, count: report.deliveries };
    const result: SignalBenchResult = {
      settings,
      committed: commitTimes.size,
      achievedRate,
      lateCommits: sourceReport.late,
      cpuMsPerSignal,
      failedCommits,
      failureReasons,
      receiverStart,
      subscriberDelivery,
    };
    log('');
    log(
      table(
        ['commit →', 'count', 'missing', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms'],
        [
          [
            'receiver Action start',
            receiverStart.count,
            receiverStart.missing,
            receiverStart.p50Ms,
            receiverStart.p95Ms,
            receiverStart.p99Ms,
            receiverStart.maxMs,
          ],
          [
            `delivery to ${settings.subscribers} subscribers`,
            subscriberDelivery.count,
            subscriberDelivery.missing,
            subscriberDelivery.p50Ms,
            subscriberDelivery.p95Ms,
            subscriberDelivery.p99Ms,
            subscriberDelivery.maxMs,
          ],
        ],
      ),
    );
    log(
      `${result.committed} signals committed at ${achievedRate.toFixed(0)}/s (offered ${settings.rate}/s), ${failedCommits} failed` +
        (failedCommits
          ? ` (${Object.entries(failureReasons)
              .map(([reason, n]) => `${n} × ${reason}`)
              .join(', ')})`
          : '') +
        `, ${sourceReport.late} answered > 1 s late`,
    );
    log(
      `CPU per signal: Coordinator ${cpuMsPerSignal.coordinator.toFixed(2)} ms, subscribers' process ${cpuMsPerSignal.subscribers.toFixed(2)} ms`,
    );
    if (options.write !== false) {
      const svg = barChart(
        `Signals: ${settings.rate}/s, ${settings.subscribers} subscribers (commit → ...)`,
        [
          {
            title: 'Receiver Action start',
            unit: 'ms',
            bars: [
              { label: 'p50', value: receiverStart.p50Ms },
              { label: 'p99', value: receiverStart.p99Ms },
            ],
          },
          {
            title: 'Subscriber delivery',
            unit: 'ms',
            bars: [
              { label: 'p50', value: subscriberDelivery.p50Ms },
              { label: 'p99', value: subscriberDelivery.p99Ms },
            ],
          },
        ],
      );
      for (const file of writeResults(options.write ?? 'signals', result, svg)) log(`wrote ${file}`);
    }
    return result;
  } finally {
    await source?.stop();
    await subscribers?.stop();
    await bench.stop();
  }
}
