import type { Logger } from '../log.js';
import type { FlowEngine } from './engine.js';
import type { FlowStore } from './store.js';

/**
 * Keeps the leases of the flows this process runs, and takes over flows whose owner stopped renewing
 * theirs (a crashed or killed gateway): each is resumed or failed, per its filter, so none stays
 * "running" forever. Several gateways may sweep at once; a claim is atomic, and it fences the previous
 * owner: a process that was only slow finds its next write refused and stops (FlowStore.record).
 */
export function startLeaseKeeper(options: {
  store: FlowStore;
  engine: FlowEngine;
  owner: string;
  /** A flow whose lease is older than this is taken over. @default 15 s */
  leaseMs?: number;
  logger: Logger;
}): { stop(): void; sweep(): Promise<void> } {
  const { store, engine, owner, logger } = options;
  const leaseMs = options.leaseMs ?? 15_000;
  let sweeping: Promise<void> | undefined;

  const heartbeat = setInterval(() => {
    store
      .heartbeat(owner, engine.activeFlows())
      .catch((err) => logger.warn({ err }, 'flow heartbeat failed'));
  }, leaseMs / 3);

  const sweep = () =>
    (sweeping ??= (async () => {
      const cutoff = new Date(Date.now() - leaseMs);
      // A flow this process runs is never taken over by it, however late its heartbeat: that would
      // run it twice at once. Only another process's (or a run of this one that died) is.
      for (const flow of await store.staleFlows(cutoff, engine.activeFlows())) {
        const claimed = await store.claim(flow.id, owner, cutoff);
        if (!claimed) continue;
        logger.warn(
          { flowId: flow.id, flow: flow.name, previousOwner: flow.owner, attempt: claimed.attempt },
          'recovering an interrupted flow',
        );
        // Recovery runs in the background: one slow flow must not hold up the others.
        engine
          .recover(claimed)
          .catch((err) => logger.error({ err, flowId: flow.id }, 'flow recovery failed'));
      }
    })()
      .catch((err) => logger.error({ err }, 'recovery sweep failed'))
      .finally(() => {
        sweeping = undefined;
      }));

  const sweeper = setInterval(() => void sweep(), leaseMs / 2);
  void sweep();
  return {
    sweep,
    stop() {
      clearInterval(heartbeat);
      clearInterval(sweeper);
    },
  };
}
