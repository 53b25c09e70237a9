import { table, writeResults } from './report.js';

export type SoakLoad = 'federation' | 'flows' | 'signals';
export const SOAK_LOADS: readonly SoakLoad[] = ['federation', 'flows', 'signals'];

export interface SoakResult {
  load: SoakLoad;
  minutes: number;
  /** What each minute's load was (connections, concurrency, rate…). */
  settings: Record<string, number>;
  /** Requests, flows or signals over the whole soak. */
  operations: number;
  /** Of those, answered wrongly, failed or (signals) not delivered. */
  incorrect: number;
  /** RSS of the Coordinator's process, sampled after each minute (MiB). */
  rssMiB: number[];
  /** Growth from the first minute's sample to the last, in %. */
  growthPercent: number;
}

/** What every load's soak takes. */
export interface SoakOptions {
  /** @default 10 */
  minutes?: number;
  /** Seconds of load between two RSS samples (a "minute"; shorter only for the smoke test). @default 60 */
  sampleSeconds?: number;
  /** @default `soak-<load>`; false writes nothing */
  write?: string | false;
  log?: (line: string) => void;
}

export interface SoakMinute {
  operations: number;
  incorrect: number;
  /** A line about the minute (its rate, say), logged with its RSS. */
  summary: string;
}

/**
 * The memory target's mechanism, one load at a time: `minute()` drives a minute of load on a
 * Coordinator that lives through the whole soak, then `rssMiB()` samples that Coordinator's RSS.
 * Growth is measured from the end of the first minute (after warm-up) to the end of the last.
 */
export async function soak(options: {
  load: SoakLoad;
  minutes: number;
  settings: Record<string, number>;
  minute: () => Promise<SoakMinute>;
  rssMiB: () => number;
  write?: string | false;
  log: (line: string) => void;
}): Promise<SoakResult> {
  const { log } = options;
  const rssMiB: number[] = [];
  let operations = 0;
  let incorrect = 0;
  for (let minute = 1; minute <= options.minutes; minute++) {
    const sample = await options.minute();
    operations += sample.operations;
    incorrect += sample.incorrect;
    rssMiB.push(options.rssMiB());
    log(`minute ${minute}: ${sample.summary}, RSS ${rssMiB.at(-1)!.toFixed(0)} MiB`);
  }
  const growthPercent = ((rssMiB.at(-1)! - rssMiB[0]!) / rssMiB[0]!) * 100;
  const result: SoakResult = {
    load: options.load,
    minutes: options.minutes,
    settings: options.settings,
    operations,
    incorrect,
    rssMiB,
    growthPercent,
  };
  log(
    table(
      ['minute', 'RSS MiB'],
      rssMiB.map((r, i) => [i + 1, r]),
    ),
  );
  log(
    `${options.load}: RSS growth after the first minute ${growthPercent.toFixed(1)} %; ${incorrect} incorrect of ${operations}`,
  );
  if (options.write !== false)
    for (const file of writeResults(options.write ?? `soak-${options.load}`, result)) log(`wrote ${file}`);
  return result;
}

/** This process's RSS in MiB: the flows and signals soaks run the Coordinator in the bench's process. */
export const ownRssMiB = () => process.memoryUsage().rss / 2 ** 20;
