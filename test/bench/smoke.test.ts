import { describe, expect, it } from 'vitest';
import { referenceResponse } from '../../bench/federation/reference.js';
import { runFederation } from '../../bench/federation/run.js';
import { runFlows } from '../../bench/flows/run.js';
import { runSignals } from '../../bench/signals/run.js';
import { runFlowsSoak } from '../../bench/flows/soak.js';
import { runSignalsSoak } from '../../bench/signals/soak.js';
import { clearTimes, receiverStarts } from '../../bench/flows/fixture/subgraphs/shop/index.js';

// The benchmarks stay out of `npm test`; this proves each still runs, for a couple of seconds each,
// and that every response it checked was correct.
const log = () => {};

describe('the benchmarks (smoke)', () => {
  it('federation: the five gateways answer the scenario query exactly as the reference', async () => {
    expect(JSON.stringify(referenceResponse()).length).toBeGreaterThan(80_000);
    const result = await runFederation({
      connections: 10,
      warmupRequests: 10,
      rounds: 1,
      secondsPerRound: 1,
      headroomSeconds: 0.5,
      write: false,
      log,
    });
    expect(result.unavailable).toEqual([]);
    expect(result.gateways.map((g) => g.gateway)).toEqual([
      'coordinator',
      'coordinator-workers@--max-semi-space-size=32',
      'apollo',
      'hive',
      'hive-router-runtime',
    ]);
    for (const gateway of result.gateways) {
      const why = `${gateway.gateway}: ${gateway.firstIncorrect ?? ''}`;
      expect(gateway.requests, why).toBeGreaterThan(0);
      expect(gateway.correct, why).toBe(gateway.requests);
      expect(gateway.incorrect, why).toBe(0);
      expect(gateway.errors, why).toBe(0);
      expect(gateway.peakRssMiB).toBeGreaterThan(0);
      expect(gateway.sampledPeakRssMiB).toBeGreaterThan(0);
      expect(gateway.sampledPeakRssMiB).toBeLessThanOrEqual(gateway.peakRssMiB + 1);
    }
    expect(result.headroom!.incorrect).toBe(0);
  }, 60_000);

  it('flow overhead: every flow completed and recorded, direct calls correct', async () => {
    const result = await runFlows({
      concurrency: [1, 4],
      rounds: 1,
      secondsPerRound: 0.5,
      warmupSeconds: 0.2,
      commitSeconds: 0.3,
      write: false,
      log,
    });
    for (const r of result.results) {
      expect(r.flows).toBeGreaterThan(0);
      expect(r.incorrect).toBe(0);
    }
    expect(result.postgres.commitsPerSecond1Connection).toBeGreaterThan(0);
    expect(result.durability.recordedCompletedFlows).toBe(result.durability.completedFlows);
    expect(result.durability.recordedCompletedSteps).toBe(4 * result.durability.completedFlows);
  }, 60_000);

  it('federation on node:cluster workers: both answer correctly and the bench counts every process', async () => {
    const result = await runFederation({
      gateways: ['coordinator-workers'],
      workers: 2,
      connections: 10,
      warmupRequests: 10,
      rounds: 1,
      secondsPerRound: 1,
      headroomSeconds: 0,
      write: false,
      log,
    });
    expect(result.unavailable).toEqual([]);
    const [gateway] = result.gateways;
    expect(gateway!.incorrect, gateway!.firstIncorrect).toBe(0);
    expect(gateway!.correct).toBe(gateway!.requests);
    // The primary and its two workers, each holding a Coordinator's gateway (well above the primary).
    expect(gateway!.processPeakRssMiB).toHaveLength(3);
    const [primary, ...workers] = gateway!.processPeakRssMiB;
    for (const worker of workers) expect(worker).toBeGreaterThan(primary!);
    expect(gateway!.peakRssMiB).toBeCloseTo(primary! + workers[0]! + workers[1]!, -1);
  }, 90_000);

  it('flow overhead with the Coordinator on two workers: every flow completed and recorded', async () => {
    const result = await runFlows({
      concurrency: [4],
      workers: 2,
      rounds: 1,
      secondsPerRound: 0.5,
      warmupSeconds: 0.2,
      commitSeconds: 0.3,
      write: false,
      log,
    });
    for (const r of result.results) {
      expect(r.flows).toBeGreaterThan(0);
      expect(r.incorrect).toBe(0);
    }
    const coordinator = result.results.find((r) => r.mode === 'coordinator')!;
    expect(coordinator.coordinatorCpuCores).toBeGreaterThan(0);
    expect(result.durability.completedFlows).toBeGreaterThan(0);
    expect(result.durability.recordedCompletedFlows).toBe(result.durability.completedFlows);
    expect(result.durability.recordedCompletedSteps).toBe(4 * result.durability.completedFlows);
  }, 90_000);

  it('signals: every committed signal reaches the receiver and every subscriber', async () => {
    const result = await runSignals({ subscribers: 5, rate: 20, seconds: 1, write: false, log });
    expect(result.committed).toBe(20);
    expect(result.achievedRate).toBeGreaterThan(0);
    expect(result.failedCommits).toBe(0);
    expect(result.cpuMsPerSignal.coordinator).toBeGreaterThan(0);
    expect(result.receiverStart.missing).toBe(0);
    expect(result.subscriberDelivery.missing).toBe(0);
    expect(result.subscriberDelivery.errors).toBe(0);
  }, 60_000);

  it('soaks: flows and signals each sample the Coordinator RSS after every "minute", all correct', async () => {
    clearTimes();
    const flows = await runFlowsSoak({ minutes: 2, sampleSeconds: 0.5, write: false, log });
    // Its purchases emit the signal the signals benchmark times; the bench keeps no record of them.
    expect(receiverStarts.size).toBe(0);
    const signals = await runSignalsSoak({
      minutes: 2,
      sampleSeconds: 1,
      rate: 20,
      subscribers: 5,
      write: false,
      log,
    });
    for (const result of [flows, signals]) {
      expect(result.rssMiB).toHaveLength(2);
      expect(result.rssMiB.every((rss) => rss > 0)).toBe(true);
      expect(result.operations).toBeGreaterThan(0);
      expect(result.incorrect).toBe(0);
      expect(Number.isFinite(result.growthPercent)).toBe(true);
    }
    expect(signals.operations).toBe(40);
  }, 90_000);
});
