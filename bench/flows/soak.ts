import { startFixtureCoordinator } from '../lib/fixture-coordinator.js';
import { spawnNode } from '../lib/processes.js';
import { ownRssMiB, soak, type SoakOptions, type SoakResult } from '../lib/soak.js';
import { load, MUTATION } from './run.js';

/**
 * The flows load for `minutes`: `concurrency` clients running the bench's Purchase Flow (four Action
 * calls to the Service stand-in, each step recorded) on one Coordinator, in this process.
 */
export async function runFlowsSoak(
  options: SoakOptions & { concurrency?: number; serviceLatencyMs?: number } = {},
): Promise<SoakResult> {
  const concurrency = options.concurrency ?? 10;
  const serviceLatencyMs = options.serviceLatencyMs ?? 5;
  const seconds = options.sampleSeconds ?? 60;
  const service = await spawnNode<{ url: string }>('bench/flows/service-process.ts', [
    String(serviceLatencyMs),
  ]);
  process.env.BENCH_SERVICE_URL = service.ready.url;
  const bench = await startFixtureCoordinator('bench-flows-soak').catch(async (error: unknown) => {
    await service.stop();
    throw error;
  });
  const url = `${bench.url}/graphql`;
  let seq = 0;
  const purchase = async () => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: MUTATION, variables: { input: { orderId: `soak-${++seq}` } } }),
    });
    const body = (await res.json()) as { data?: { benchPurchase: { flow: { status: string } } } };
    return body.data?.benchPurchase.flow.status === 'COMPLETED';
  };
  try {
    return await soak({
      load: 'flows',
      minutes: options.minutes ?? 10,
      settings: { concurrency, serviceLatencyMs },
      write: options.write,
      log: options.log ?? ((line) => console.log(line)),
      rssMiB: ownRssMiB,
      minute: async () => {
        const sample = await load(concurrency, seconds, purchase);
        return {
          operations: sample.latencies.length + sample.incorrect,
          incorrect: sample.incorrect,
          summary: `${(sample.latencies.length / sample.seconds).toFixed(0)} flows/s`,
        };
      },
    });
  } finally {
    await bench.stop();
    await service.stop();
  }
}
