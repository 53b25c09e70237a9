/**
 * `npm run bench [-- federation flows signals] [--quick] [...]`: the benchmarks of issue 4, side by side
 * on this machine; tables on stdout, JSON and SVG under bench/results/. Without names, all three run;
 * `soak [--load federation|flows|signals]` (10 minutes of each load, RSS per minute) runs only when named.
 */
import { parseArgs } from 'node:util';
import { runFederation, DEFAULT_GATEWAYS, type GatewayEntry } from './federation/run.js';
import { runFlows } from './flows/run.js';
import { runSignals } from './signals/run.js';
import { runFederationSoak } from './federation/soak.js';
import { runFlowsSoak } from './flows/soak.js';
import { runSignalsSoak } from './signals/soak.js';
import { SOAK_LOADS, type SoakLoad } from './lib/soak.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    gateways: { type: 'string' },
    /** The workers of the `coordinator-workers` gateway, or of the flows' Coordinator process. */
    workers: { type: 'string' },
    concurrency: { type: 'string' },
    latency: { type: 'string' },
    subscribers: { type: 'string' },
    rate: { type: 'string' },
    /** The results' file name under bench/results/, when one benchmark runs. */
    out: { type: 'string' },
    minutes: { type: 'string' },
    /** Soak only: federation, flows or signals (comma-separated); all three in sequence by default. */
    load: { type: 'string' },
    /**
     * Flows and signals: a CPU profile of the Coordinator's measured load, written to
     * <file>-<concurrency>-<round>. Federation: a directory for the Coordinator gateway processes' CPU
     * profiles (warm-up included).
     */
    'cpu-prof': { type: 'string' },
  },
});
const which = positionals.length ? positionals : ['federation', 'flows', 'signals'];
const measured = which.filter((name) => name !== 'soak');
if (values.out && measured.length !== 1)
  throw new Error(
    `--out names the results of one benchmark; ${measured.length} would run (${measured.join(', ')})`,
  );
const out = values.out ? { write: values.out } : {};
const num = (value: string | undefined, full: number, quick: number) =>
  value !== undefined ? Number(value) : values.quick ? quick : full;

if (which.includes('federation')) {
  console.log('== Federation benchmark ==');
  await runFederation({
    rounds: num(values.rounds, 3, 1),
    secondsPerRound: num(values.seconds, 10, 3),
    gateways: (values.gateways?.split(',') as GatewayEntry[] | undefined) ?? DEFAULT_GATEWAYS,
    ...(values.workers ? { workers: Number(values.workers) } : {}),
    ...out,
    ...(values['cpu-prof'] ? { cpuProfileDir: values['cpu-prof'] } : {}),
  });
}
if (which.includes('flows')) {
  console.log('\n== Purchase Flow overhead benchmark ==');
  await runFlows({
    rounds: num(values.rounds, 2, 1),
    secondsPerRound: num(values.seconds, 5, 2),
    concurrency: values.concurrency?.split(',').map(Number) ?? [1, 10, 100],
    serviceLatencyMs: num(values.latency, 5, 5),
    ...(values.workers ? { workers: Number(values.workers) } : {}),
    ...(values['cpu-prof'] ? { cpuProfile: values['cpu-prof'] } : {}),
    ...out,
  });
}
if (which.includes('signals')) {
  console.log('\n== Signals and subscriptions benchmark ==');
  await runSignals({
    subscribers: num(values.subscribers, 100, 20),
    rate: num(values.rate, 100, 50),
    seconds: num(values.seconds, 5, 2),
    ...(values['cpu-prof'] ? { cpuProfile: values['cpu-prof'] } : {}),
    ...out,
  });
}
if (which.includes('soak')) {
  // Not in the default set: 10 minutes of each load on one Coordinator, RSS per minute, for the memory target.
  const loads = (values.load?.split(',') as SoakLoad[] | undefined) ?? SOAK_LOADS;
  const unknown = loads.filter((load) => !SOAK_LOADS.includes(load));
  if (unknown.length) throw new Error(`Unknown soak load ${unknown.join(', ')}: ${SOAK_LOADS.join(', ')}`);
  const soaks = { federation: runFederationSoak, flows: runFlowsSoak, signals: runSignalsSoak };
  for (const load of loads) {
    console.log(`\n== ${load} soak (RSS over time) ==`);
    await soaks[load]({ minutes: num(values.minutes, 10, 1) });
  }
}
// Done: a benchmark's Coordinator can leave a handle open (a socket closing, a timer) that would keep
// this process, and with it the machine's benchmark lock, alive.
process.exit(0);
