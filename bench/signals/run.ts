import { startFixtureCoordinator } from '../lib/fixture-coordinator.js';
import { spawnNode } from '../lib/processes.js';
import { barChart, percentile, table, writeResults } from '../lib/report.js';

process.env.APOLLO_TELEMETRY_DISABLED ??= '1';
const SIGNAL = 'bench.purchased.v1';

export interface SignalBenchOptions {
  /** graphql-ws subscribers, each on its own WebSocket. @default 100 */
  subscribers?: number;
  /** Signals committed per second (open loop). @default 100 */
  rate?: number;
  /** @default 5 */
  seconds?: number;
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
  settings: Required<Omit<SignalBenchOptions, 'write' | 'log'>>;
  committed: number;
  achievedRate: number;
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
  const { commitTimes, receiverStarts } = await import('../flows/fixture/subgraphs/shop/index.js');
  commitTimes.clear();
  receiverStarts.clear();
  const bench = await startFixtureCoordinator('bench-signals', { outboxPollMs: 50 });
  let subscribers: Awaited<ReturnType<typeof spawnNode<unknown>>> | undefined;
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

    // Open loop: every 10 ms, the signals due by then, whatever the previous ones are doing.
    let sent = 0;
    let failedCommits = 0;
    const failureReasons = new Map<string, number>();
    const fail = (reason: string) => {
      failedCommits++;
      failureReasons.set(reason, (failureReasons.get(reason) ?? 0) + 1);
    };
    const inflight = new Set<Promise<void>>();
    const started = performance.now();
    const total = settings.rate * settings.seconds;
    while (sent < total) {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * settings.rate));
      for (; sent < due; sent++) {
        const orderId = `s-${sent}`;
        const p = fetch(`${url}/shop/signal`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ orderId }),
        })
          .then(async (res) => {
            await res.arrayBuffer();
            if (!res.ok) fail(`HTTP ${res.status}`);
          })
          .catch((error: Error) => fail((error.cause as Error | undefined)?.message ?? error.message))
          .finally(() => inflight.delete(p));
        inflight.add(p);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    await Promise.all(inflight);
    const achievedRate = commitTimes.size / ((performance.now() - started) / 1000);
    // Let the last deliveries arrive.
    const deadline = performance.now() + 10_000;
    while (receiverStarts.size < commitTimes.size && performance.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 1_000));

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
      failedCommits,
      failureReasons: Object.fromEntries(failureReasons),
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
      `${result.committed} signals committed at ${achievedRate.toFixed(0)}/s (target ${settings.rate}/s), ${failedCommits} failed` +
        (failedCommits
          ? ` (${[...failureReasons].map(([reason, n]) => `${n} × ${reason}`).join(', ')})`
          : ''),
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
    await subscribers?.stop();
    await bench.stop();
  }
}
