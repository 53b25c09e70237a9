import { gatewayNodeFlags, memory, spawnNode } from '../lib/processes.js';
import { table, writeResults } from '../lib/report.js';
import { drive } from './run.js';

export interface SoakResult {
  minutes: number;
  connections: number;
  requests: number;
  incorrect: number;
  /** RSS of the Coordinator's gateway process, one sample per minute (MiB). */
  rssMiB: number[];
  /** Growth from the first minute's sample to the last, in %. */
  growthPercent: number;
}

/**
 * The memory target: the Coordinator's gateway under the federation load for `minutes`, its RSS
 * sampled after each minute. Growth is measured from the end of the first minute (after warm-up).
 */
export async function runSoak(
  options: {
    minutes?: number;
    connections?: number;
    write?: string | false;
    log?: (line: string) => void;
  } = {},
): Promise<SoakResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const minutes = options.minutes ?? 10;
  const connections = options.connections ?? 50;
  const subgraphs = await spawnNode<{ base: string }>('bench/federation/subgraphs-process.ts');
  const gateway = await spawnNode<{ url: string }>(
    'bench/federation/gateway-process.ts',
    ['coordinator', subgraphs.ready.base],
    { nodeArgs: gatewayNodeFlags() },
  );
  try {
    const rssMiB: number[] = [];
    let requests = 0;
    let incorrect = 0;
    for (let minute = 1; minute <= minutes; minute++) {
      const sample = await drive(gateway.ready.url, { connections, seconds: 60 });
      requests += sample.requests;
      incorrect += sample.incorrect + sample.errors;
      rssMiB.push(memory(gateway.ready.pid).rssMiB);
      log(
        `minute ${minute}: ${(sample.requests / sample.seconds).toFixed(0)} req/s, RSS ${rssMiB.at(-1)!.toFixed(0)} MiB`,
      );
    }
    const growthPercent = ((rssMiB.at(-1)! - rssMiB[0]!) / rssMiB[0]!) * 100;
    const result = { minutes, connections, requests, incorrect, rssMiB, growthPercent };
    log(
      table(
        ['minute', 'RSS MiB'],
        rssMiB.map((r, i) => [i + 1, r]),
      ),
    );
    log(
      `RSS growth after the first minute: ${growthPercent.toFixed(1)} %; ${incorrect} incorrect of ${requests}`,
    );
    if (options.write !== false)
      for (const file of writeResults(options.write ?? 'soak', result)) log(`wrote ${file}`);
    return result;
  } finally {
    await gateway.stop();
    await subgraphs.stop();
  }
}
