import type { ReceiverHandler, ReceiverRegistration } from '../signals/types.js';
import type { CoordinatorMetrics } from './metrics.js';

/**
 * A receiver's handler, measured: the delivery latency of each first attempt (from the signal's commit
 * to the outbox, its envelope's `time`, to the receiver's start) and every failed attempt.
 */
export function measuredReceiver(
  metrics: CoordinatorMetrics,
  registration: ReceiverRegistration,
  handler: ReceiverHandler,
): ReceiverHandler {
  const labels = { signal: registration.signal, receiver: registration.receiver };
  return async (delivery, signal) => {
    if (delivery.attempt === 1) {
      const committed = Date.parse(delivery.envelope.time);
      // Another process's clock may run a little ahead: never a negative latency.
      if (Number.isFinite(committed))
        metrics.deliveryLatency.observe(labels, Math.max(0, Date.now() - committed) / 1000);
    }
    try {
      await handler(delivery, signal);
    } catch (error) {
      metrics.receiverFailures.inc({ receiver: registration.receiver });
      throw error;
    }
  };
}
