import { readFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serialized } from '../../gateway/federation/reload.js';
import { createLogger } from '../../gateway/log.js';
import {
  REQUEST_REFUND,
  fixture,
  startTestCoordinator,
  type TestCoordinator,
} from '../support/coordinator.js';
import { createDeferred, waitFor } from '../support/wait.js';

/**
 * The configuration reloaded without a restart: the connections file watched, re-read and
 * re-validated; a valid edit replaces the running configuration, a broken one is logged and the
 * running one kept.
 */

const lines: Array<Record<string, unknown>> = [];
const logger = createLogger({
  destination: new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  }),
});
const refusals = () => lines.filter((l) => String(l.msg).startsWith('configuration not reloaded'));

let dir: string;
let connections: string;
let original: string;
let t: TestCoordinator;

const readyz = async () =>
  (await (await fetch(`${t.url}/readyz`)).json()) as { config: { hash: string; loadedAt: string } };
const refundSteps = async (orderId: string) => {
  const { data, errors } = await t.graphql<{
    requestRefund: { flow: { status: string; steps: Array<{ action: string }> } };
  }>(REQUEST_REFUND, { input: { orderId, amount: 10 } });
  expect(errors).toBeUndefined();
  expect(data!.requestRefund.flow.status).toBe('COMPLETED');
  return data!.requestRefund.flow.steps.map((s) => s.action);
};
const ECHO_AGAIN = /* GraphQL */ `
  query {
    echoCallerAgain(input: { channel: WEB }) {
      callerKind
      flow {
        status
      }
    }
  }
`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cc-reload-'));
  connections = join(dir, 'connections.yaml');
  await copyFile(fixture('connections.yaml'), connections);
  original = readFileSync(connections, 'utf8');
  t = await startTestCoordinator('reload', {
    overrides: { connectionsFile: connections, logger, watchConfig: { debounceMs: 50 } },
  });
});
afterAll(async () => {
  await t?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a change to the connections file', () => {
  it('takes effect without a restart: a step removed, a filter added; /readyz shows the new hash', async () => {
    const before = await readyz();
    expect(before.config.hash).toMatch(/^[0-9a-f]{16}$/);
    expect(lines.find((l) => l.msg === 'configuration loaded')?.configHash).toBe(before.config.hash);
    expect(await refundSteps('reload-1')).toEqual([
      'haltIfLegacy',
      'createReturn',
      'refundPayment',
      'recordRefund',
    ]);
    expect((await t.graphql(ECHO_AGAIN)).errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');

    const edited = original
      .replace('      - action: recordRefund\n', '')
      .replace(
        'filters:\n',
        'filters:\n  caller.echo.again.v1:\n    query: echoCallerAgain\n    input: EchoInput\n    steps:\n      - action: whoCalls\n    result:\n      callerKind: String\n',
      );
    await writeFile(connections, edited);
    const after = await waitFor(
      async () => {
        const now = await readyz();
        expect(now.config.hash).not.toBe(before.config.hash);
        return now;
      },
      { what: 'the edited connections to be loaded' },
    );
    expect(lines.find((l) => l.msg === 'configuration reloaded')?.configHash).toBe(after.config.hash);
    expect(await refundSteps('reload-2')).toEqual(['haltIfLegacy', 'createReturn', 'refundPayment']);
    expect((await t.graphql(ECHO_AGAIN)).data).toEqual({
      echoCallerAgain: { callerKind: 'anonymous', flow: { status: 'COMPLETED' } },
    });
  });

  it('keeps the running configuration when the edit is broken, and logs one line naming the file', async () => {
    const running = (await readyz()).config.hash;
    for (const [broken, problem] of [
      ['filters: [unclosed\n', /not valid YAML|YAML/],
      [original.replace('action: refundPayment', 'action: refundEverything'), /refundEverything/],
    ] as const) {
      const seen = refusals().length;
      await writeFile(connections, broken);
      const refusal = await waitFor(() => refusals()[seen] ?? false, { what: 'the refusal to be logged' });
      expect(refusal).toMatchObject({ level: 50, file: connections, configHash: running });
      expect(String(refusal.msg)).toContain(connections);
      expect(String(refusal.msg)).toMatch(problem);
      expect((await readyz()).config.hash).toBe(running);
      // The running configuration still serves: the step the earlier edit removed stays removed.
      expect(await refundSteps(`reload-broken-${seen}`)).toEqual([
        'haltIfLegacy',
        'createReturn',
        'refundPayment',
      ]);
    }
  });

  it('reloads on demand (what SIGHUP does), and two racing reloads both end on the file as it is', async () => {
    await writeFile(connections, original);
    const [first, second] = await Promise.all([t.coordinator.reload(), t.coordinator.reload()]);
    expect(first).toMatchObject({ reloaded: true });
    expect(second).toMatchObject({ reloaded: true, hash: first.hash });
    expect((await readyz()).config.hash).toBe(first.hash);
    expect(await refundSteps('reload-3')).toEqual([
      'haltIfLegacy',
      'createReturn',
      'refundPayment',
      'recordRefund',
    ]);
  });
});

describe('a reload while a flow runs', () => {
  it('lets the flow finish on the filter it started with; the next flow runs the new one', async () => {
    const orderId = 'reload-in-flight';
    // Step 2 (refundPayment) is held at the ledger while the configuration changes.
    t.ledger.fault({ kind: 'refund', orderId, delayMs: 1_000 });
    const inFlight = refundSteps(orderId);
    await waitFor(() => t.ledger.operations().some((o) => o.kind === 'return' && o.orderId === orderId), {
      what: 'the flow to reach its held step',
    });
    await writeFile(connections, original.replace('      - action: recordRefund\n', ''));
    expect(await t.coordinator.reload()).toMatchObject({ reloaded: true });
    expect(await refundSteps('reload-after-swap')).toEqual(['haltIfLegacy', 'createReturn', 'refundPayment']);
    expect(await inFlight).toEqual(['haltIfLegacy', 'createReturn', 'refundPayment', 'recordRefund']);
  });
});

describe('a filter removed while one of its flows is running', () => {
  it('fails the recorded flow clearly when it is recovered, naming the filter', async () => {
    const withEcho = original.replace(
      'filters:\n',
      'filters:\n  caller.echo.again.v1:\n    query: echoCallerAgain\n    input: EchoInput\n    steps:\n      - action: whoCalls\n    result:\n      callerKind: String\n',
    );
    await writeFile(connections, withEcho);
    expect(await t.coordinator.reload()).toMatchObject({ reloaded: true });
    const { data } = await t.graphql<{ echoCallerAgain: { flow: { id: string } } }>(
      'query { echoCallerAgain(input: { channel: WEB }) { flow { id } } }',
    );
    const flowId = data!.echoCallerAgain.flow.id;
    await writeFile(connections, original);
    expect(await t.coordinator.reload()).toMatchObject({ reloaded: true });

    // What a gateway that died mid-flow leaves: the flow running, its lease long expired.
    const db = new pg.Client({ connectionString: t.database.url });
    await db.connect();
    try {
      await db.query(
        `UPDATE "FlowRun" SET "status" = 'running', "owner" = 'a-dead-gateway', "heartbeatAt" = now() - interval '1 hour' WHERE "id" = $1`,
        [flowId],
      );
      // Recovery runs in the background of a sweep.
      await waitFor(
        async () => {
          await t.coordinator.components.leases.sweep();
          const { rows } = await db.query<{ status: string; errorMessage: string }>(
            `SELECT "status", "errorMessage" FROM "FlowRun" WHERE "id" = $1`,
            [flowId],
          );
          expect(rows).toEqual([
            { status: 'failed', errorMessage: "The filter 'caller.echo.again.v1' is no longer configured" },
          ]);
        },
        { what: 'the flow of the removed filter to be recovered' },
      );
    } finally {
      await db.end();
    }
  });
});

describe('serialized reloads', () => {
  it('never overlap, and the triggers during one run are served by a single next run', async () => {
    let active = 0;
    let runs = 0;
    const gates = [createDeferred(), createDeferred()];
    const reload = serialized(async () => {
      active += 1;
      expect(active).toBe(1);
      const run = runs++;
      await gates[run]!.promise;
      active -= 1;
      return run;
    });
    const first = reload();
    const queued = [reload(), reload(), reload()];
    gates[0]!.resolve();
    expect(await first).toBe(0);
    gates[1]!.resolve();
    expect(await Promise.all(queued)).toEqual([1, 1, 1]);
    expect(runs).toBe(2);
  });
});
