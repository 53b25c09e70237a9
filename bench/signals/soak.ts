import { startFixtureCoordinator } from '../lib/fixture-coordinator.js';
import { spawnNode } from '../lib/processes.js';
import { ownRssMiB, soak, type SoakOptions, type SoakResult } from '../lib/soak.js';
import type { SourceReport } from './source-process.js';

const SIGNAL = 'bench.purchased.v1';

/**
 * The signals load for `minutes`: `rate` webhooks/s committing `bench.purchased.v1` (from a process of
 * their own) on one Coordinator in this process, each run by its receiver and delivered to
 * `subscribers` graphql-ws subscribers (a process of their own). A signal counts as incorrect when it
 * was not committed or its receiver had not started 10 s after the minute's last commit.
 */
export async function runSignalsSoak(
  options: SoakOptions & { rate?: number; subscribers?: number } = {},
): Promise<SoakResult> {
  const rate = options.rate ?? 200;
  const subscriberCount = options.subscribers ?? 100;
  const seconds = options.sampleSeconds ?? 60;
  process.env.BENCH_SERVICE_URL ??= 'http://127.0.0.1:9';
  const { commitTimes, receiverStarts, clearTimes } =
    await import('../flows/fixture/subgraphs/shop/index.js');
  const bench = await startFixtureCoordinator('bench-signals-soak', { outboxPollMs: 50 });
  const started: Array<{ stop(): Promise<void> }> = [];
  try {
    const subscribers = await spawnNode<unknown>(
      'bench/signals/subscribers-process.ts',
      [bench.url, SIGNAL, String(subscriberCount)],
      { ipc: true, timeoutMs: 120_000 },
    );
    started.push(subscribers);
    const source = await spawnNode<unknown>(
      'bench/signals/source-process.ts',
      [bench.url, String(rate), String(seconds)],
      { ipc: true },
    );
    started.push(source);
    let minute = 0;
    return await soak({
      load: 'signals',
      minutes: options.minutes ?? 10,
      settings: { rate, subscribers: subscriberCount },
      write: options.write,
      log: options.log ?? ((line) => console.log(line)),
      rssMiB: ownRssMiB,
      minute: async () => {
        // The bench's own records of each minute are dropped after it, so they do not count as growth.
        clearTimes();
        const report = await new Promise<SourceReport>((resolve) => {
          source.child.once('message', (m) => resolve(m as never));
          source.child.send({ type: 'start', prefix: `m${++minute}-` });
        });
        const deadline = performance.now() + 10_000;
        while (receiverStarts.size < commitTimes.size && performance.now() < deadline)
          await new Promise((r) => setTimeout(r, 100));
        const unreceived = commitTimes.size - receiverStarts.size;
        return {
          operations: report.sent,
          incorrect: report.failed + Math.max(0, unreceived),
          summary: `${(commitTimes.size / report.seconds).toFixed(0)} signals/s committed of ${rate} offered, ${unreceived} not yet received`,
        };
      },
    });
  } finally {
    for (const child of started.reverse()) await child.stop();
    await bench.stop();
  }
}
