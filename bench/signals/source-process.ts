/**
 * The signals benchmark's webhook source, in a process of its own so that it does not share the
 * Coordinator's core: `source-process.ts <gateway http url> <rate> <seconds>`. Prints `{"pid": ...}`,
 * then on each `{"type":"start","prefix":"…"}` over IPC POSTs `rate` × `seconds` webhooks to /shop/signal, open loop
 * (every 10 ms, those due by then, whatever the earlier ones are doing), and answers with how many it
 * sent, how many failed and why, and how long sending took.
 */
const [url, rateArg, secondsArg] = process.argv.slice(2);
const rate = Number(rateArg);
const total = rate * Number(secondsArg);

export interface SourceReport {
  sent: number;
  failed: number;
  failureReasons: Record<string, number>;
  /** From the first request to the last answer. */
  seconds: number;
  /** Requests answered later than 1 s after they were due: the source (or the gateway) fell behind. */
  late: number;
}

async function run(prefix: string): Promise<SourceReport> {
  let sent = 0;
  let failed = 0;
  let late = 0;
  const failureReasons = new Map<string, number>();
  const fail = (reason: string) => {
    failed++;
    failureReasons.set(reason, (failureReasons.get(reason) ?? 0) + 1);
  };
  const inflight = new Set<Promise<void>>();
  const started = performance.now();
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
    for (; sent < due; sent++) {
      const dueAt = started + (sent / rate) * 1000;
      const p = fetch(`${url}/shop/signal`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ orderId: `${prefix}${sent}` }),
      })
        .then(async (res) => {
          await res.arrayBuffer();
          if (!res.ok) fail(`HTTP ${res.status}`);
          if (performance.now() - dueAt > 1_000) late++;
        })
        .catch((error: Error) => fail((error.cause as Error | undefined)?.message ?? error.message))
        .finally(() => inflight.delete(p));
      inflight.add(p);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await Promise.all(inflight);
  return {
    sent,
    failed,
    failureReasons: Object.fromEntries(failureReasons),
    seconds: (performance.now() - started) / 1000,
    late,
  };
}

process.on('message', (message: { type: string; prefix?: string }) => {
  if (message.type === 'start') void run(message.prefix ?? 's-').then((report) => process.send!(report));
});
process.stdout.write(`${JSON.stringify({ pid: process.pid })}\n`);
