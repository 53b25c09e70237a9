import { gatewayNodeFlags, memory, spawnNode } from '../lib/processes.js';
import { soak, type SoakOptions, type SoakResult } from '../lib/soak.js';
import { drive } from './run.js';

/** The federation load on the Coordinator's gateway (a process of its own) for `minutes`. */
export async function runFederationSoak(
  options: SoakOptions & { connections?: number } = {},
): Promise<SoakResult> {
  const connections = options.connections ?? 50;
  const seconds = options.sampleSeconds ?? 60;
  const subgraphs = await spawnNode<{ base: string }>('bench/federation/subgraphs-process.ts');
  const gateway = await spawnNode<{ url: string }>(
    'bench/federation/gateway-process.ts',
    ['coordinator', subgraphs.ready.base],
    { nodeArgs: gatewayNodeFlags() },
  );
  try {
    return await soak({
      load: 'federation',
      minutes: options.minutes ?? 10,
      settings: { connections },
      write: options.write,
      log: options.log ?? ((line) => console.log(line)),
      rssMiB: () => memory(gateway.ready.pid).rssMiB,
      minute: async () => {
        const sample = await drive(gateway.ready.url, { connections, seconds });
        return {
          operations: sample.requests,
          incorrect: sample.incorrect + sample.errors,
          summary: `${(sample.requests / sample.seconds).toFixed(0)} req/s`,
        };
      },
    });
  } finally {
    await gateway.stop();
    await subgraphs.stop();
  }
}
