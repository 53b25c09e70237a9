import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, startTestCoordinator, token, type TestCoordinator } from '../support/coordinator.js';
import { createTestDatabase } from '../support/database.js';
import { gatewayEnv, repoRoot } from '../support/gateway-process.js';
import { deleteNamespace, freePort, machineRedisUrl, testNamespace } from '../support/redis.js';
import { waitFor } from '../support/wait.js';
import { newOrder, operatorActions, refund } from '../operators/support.js';

/**
 * The operator CLI as operators run it: a child process (`node --import tsx cli/main.ts`, what
 * `npm run cc` and the `commerce-coordinator` bin run) against a real Coordinator, or against its
 * database when the Coordinator is down; asserted on its output and exit codes.
 */

let t: TestCoordinator;
let staff: string;
const keyPrefix = `${testNamespace('cli')}:`;

beforeAll(async () => {
  t = await startTestCoordinator('cli', {
    authenticated: true,
    overrides: { redis: { url: machineRedisUrl(), keyPrefix } },
  });
  staff = await token({ kind: 'staff', username: 'cli-operator' });
});
afterAll(async () => {
  await t?.stop();
  await deleteNamespace(machineRedisUrl(), keyPrefix);
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with `args`; its environment holds only what the test gives it (and PATH, HOME). */
function cli(args: readonly string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], {
    cwd: repoRoot,
    env: gatewayEnv({ CC_URL: t.url, CC_TOKEN: staff, ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

/** Runs `jobs` a few at a time: the machine has two cores. */
async function inTurns<T, R>(items: readonly T[], job: (item: T) => Promise<R>, width = 3): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await job(items[i]!);
      }
    }),
  );
  return results;
}

/** The environment that reads the fixture Coordinator's own configuration and record. */
const direct = () => ({
  DATABASE_URL: t.database.url,
  ROVER_CONFIG: fixture('rover.yaml'),
  CONNECTIONS_FILE: fixture('connections.yaml'),
  SUBGRAPHS_DIR: fixture('subgraphs'),
  REDIS_URL: machineRedisUrl(),
  REDIS_KEY_PREFIX: keyPrefix,
});

/** A refund whose PSP call fails on every attempt: COMPENSATED. */
async function compensated() {
  const orderId = newOrder('cli');
  t.ledger.fault({ kind: 'refund', orderId, status: 503, times: 3 });
  const { errors } = await refund(t, orderId);
  return String(errors![0]!.extensions!.flowId);
}

describe('the operator CLI', () => {
  it('answers --help on every command, exit 0', async () => {
    const commands = [
      [],
      ['flows'],
      ['flows', 'list'],
      ['flows', 'show'],
      ['flows', 'retry'],
      ['flows', 'cancel'],
      ['signals'],
      ['signals', 'show'],
      ['signals', 'redeliver'],
      ['dead-letters'],
      ['dead-letters', 'list'],
      ['dead-letters', 'replay'],
      ['config'],
      ['config', 'check'],
      ['migrate'],
    ];
    const runs = await inTurns(commands, (command) => cli([...command, '--help']));
    for (const [i, run] of runs.entries()) {
      expect(run.code, commands[i]!.join(' ')).toBe(0);
      expect(run.stdout).toContain(`Usage: commerce-coordinator ${commands[i]!.join(' ')}`.trimEnd());
    }
    expect(runs[0]!.stdout).toContain('Exit codes: 0 success, 1 failure, 2 usage.');
    expect(runs[4]!.stdout).toContain('--reason <text>');
  }, 120_000);

  it('exits 2 on usage errors, saying what is wrong', async () => {
    const [limit, reason, unknown, nothing] = await inTurns(
      [
        ['flows', 'list', '--limit', '0'],
        ['flows', 'retry', '00000000-0000-4000-8000-000000000001'],
        ['flows', 'rerun'],
        ['dead-letters', 'replay', '--reason', 'all'],
      ],
      (args) => cli(args),
    );
    expect([limit!.code, reason!.code, unknown!.code, nothing!.code]).toEqual([2, 2, 2, 2]);
    expect(limit!.stderr).toContain('expected a whole number from 1 to 200');
    expect(reason!.stderr).toContain("required option '--reason <text>' not specified");
    expect(unknown!.stderr).toContain("unknown command 'rerun'");
    expect(nothing!.stderr).toContain('Say what to replay');
  });

  it('lists flows as a table or JSON, and shows one with its steps and keys', async () => {
    const orderId = newOrder('cli-list');
    const { data } = await refund(t, orderId);
    const flowId = data!.requestRefund.flow.id;
    // The receivers of its signals have run too.
    await waitFor(async () =>
      expect(
        await t.coordinator.components.database.prisma.flowRun.count({
          where: { orderId, status: 'completed' },
        }),
      ).toBe(3),
    );

    const [list, json, show] = await inTurns(
      [
        ['flows', 'list', '--order', orderId, '--name', 'order.refund.requested.v1'],
        ['flows', 'list', '--order', orderId, '--status', 'completed', '--json'],
        ['flows', 'show', flowId],
      ],
      (args) => cli(args),
    );

    expect(list!.code).toBe(0);
    expect(list!.stderr).toContain(`via GraphQL at ${t.url}/graphql`);
    const [header, row, ...more] = list!.stdout.trim().split('\n');
    expect(header).toMatch(/^ID +FLOW +STATUS +ORDER +ATTEMPT +STARTED +ERROR$/);
    expect(row).toMatch(new RegExp(`^${flowId} +order.refund.requested.v1 +COMPLETED +${orderId} +1 `));
    expect(more).toEqual([]);
    // The order's flows: the refund, and the runs of the receivers of its signals.
    const listed = JSON.parse(json!.stdout) as Array<{ id: string; name: string; receiver: string | null }>;
    expect(listed.map((f) => f.receiver ?? f.name).sort()).toEqual([
      'order.refund.requested.v1',
      'record-psp-refund',
      'revoke-enrollment',
    ]);
    expect(listed).toContainEqual(expect.objectContaining({ id: flowId, status: 'COMPLETED', orderId }));
    expect(show!.code).toBe(0);
    expect(show!.stdout).toContain(`flow:     ${flowId}`);
    expect(show!.stdout).toMatch(new RegExp(`3 +recordRefund +COMPLETED +1 +orders +${flowId}:3`));
    expect(show!.stdout).toMatch(/signals:\n[^]*order\.refunded\.v1/);
  });

  it('retries a flow (exit 0), and fails with the Coordinator’s code on an unknown one (exit 1)', async () => {
    const flowId = await compensated();

    const [retried, unknown] = await inTurns(
      [
        ['flows', 'retry', flowId, '--reason', 'PSP back', '--json'],
        ['flows', 'retry', '00000000-0000-4000-8000-0000000000ff', '--reason', 'typo'],
      ],
      (args) => cli(args),
    );

    expect(retried!.code).toBe(0);
    expect(JSON.parse(retried!.stdout)).toMatchObject({
      id: flowId,
      status: 'COMPLETED',
      operatorActions: [{ action: 'RETRY_FLOW', status: 'DONE', reason: 'PSP back' }],
    });
    expect(unknown!.code).toBe(1);
    expect(unknown!.stderr).toContain('error: NOT_FOUND: No flow 00000000-0000-4000-8000-0000000000ff');
  });

  it('cancels a stuck flow', async () => {
    const orderId = newOrder('cli-cancel');
    t.ledger.fault({ kind: 'refund', orderId, delayMs: 1_500 });
    const calls = t.ledger.calls('/operations/refund');
    const stuck = refund(t, orderId);
    await waitFor(() => t.ledger.calls('/operations/refund') > calls);
    const { id } = await t.coordinator.components.database.prisma.flowRun.findFirstOrThrow({
      where: { orderId },
    });

    const run = await cli(['flows', 'cancel', id, '--reason', 'stuck at the PSP']);

    expect(run.code).toBe(0);
    expect(run.stdout).toContain('status:   COMPENSATED');
    expect(run.stdout).toContain('error:    FLOW_CANCELLED: Cancelled by an operator: stuck at the PSP');
    expect((await stuck).errors?.[0]?.extensions?.code).toBe('FLOW_CANCELLED');
  });

  it('lists dead letters and replays them in batches, each recorded', async () => {
    const flows = [];
    for (let i = 0; i < 3; i++) {
      const orderId = newOrder('cli-dead');
      t.ledger.fault({ kind: 'revoke', orderId, status: 503, times: 3 });
      flows.push((await refund(t, orderId)).data!.requestRefund.flow.id);
    }
    const signalIds = await Promise.all(
      flows.map(
        async (flowId) =>
          (
            await t.coordinator.components.database.prisma.outboxSignal.findFirstOrThrow({
              where: { flowId, name: 'order.refunded.v1' },
            })
          ).id,
      ),
    );
    const dead = async () =>
      (await t.coordinator.components.bus.deadLetters('revoke-enrollment')).filter((d) =>
        signalIds.includes(d.envelope!.id),
      );
    await waitFor(async () => expect(await dead()).toHaveLength(3), { what: 'three dead letters' });

    const list = await cli(['dead-letters', 'list', '--receiver', 'revoke-enrollment', '--json']);
    expect(list.code).toBe(0);
    const listed = JSON.parse(list.stdout) as Array<{ id: string; signalId: string }>;
    expect(listed.map((d) => d.signalId)).toEqual(expect.arrayContaining(signalIds));

    const replay = await cli([
      'dead-letters',
      'replay',
      '--receiver',
      'revoke-enrollment',
      '--reason',
      'the LMS is back',
      '--batch-size',
      '2',
    ]);

    expect(replay.code).toBe(0);
    expect(replay.stdout.trim()).toBe(
      `Replayed ${listed.length} of ${listed.length} dead letters in 2 batches.`,
    );
    expect(await dead()).toEqual([]);
    const replays = (await operatorActions(t)).filter((a) => a.action === 'REPLAY_DEAD_LETTERS');
    expect(replays.slice(0, 2)).toMatchObject([
      { status: 'DONE', reason: 'the LMS is back', actor: { username: 'cli-operator' } },
      { status: 'DONE', reason: 'the LMS is back' },
    ]);
  });

  it('shows a signal with its receivers, and refuses to redeliver one whose run completed (exit 1)', async () => {
    const { data } = await refund(t, newOrder('cli-signal'));
    const flowId = data!.requestRefund.flow.id;
    const prisma = t.coordinator.components.database.prisma;
    const signal = await prisma.outboxSignal.findFirstOrThrow({
      where: { flowId, name: 'order.refunded.v1' },
    });
    await waitFor(async () =>
      expect(await prisma.flowRun.findFirst({ where: { signalId: signal.id } })).toMatchObject({
        status: 'completed',
      }),
    );

    const [show, redeliver] = await inTurns(
      [
        ['signals', 'show', signal.id],
        ['signals', 'redeliver', signal.id, '--receiver', 'revoke-enrollment', '--reason', 'again'],
      ],
      (args) => cli(args),
    );

    expect(show!.code).toBe(0);
    expect(show!.stdout).toContain(`source:    flow:${flowId}`);
    expect(show!.stdout).toMatch(/revoke-enrollment +[0-9a-f-]{36} +COMPLETED +1/);
    expect(redeliver!.code).toBe(1);
    expect(redeliver!.stderr).toContain("error: CONFLICT: Receiver 'revoke-enrollment' already ran signal");
  });

  it('reads the database directly when the Coordinator is down, and says so; writes need it', async () => {
    const flowId = await compensated();
    const down = `http://127.0.0.1:${await freePort()}`;

    const [show, letters, retry] = await inTurns(
      [
        ['flows', 'show', flowId, '--json'],
        ['dead-letters', 'list'],
        ['flows', 'retry', flowId, '--reason', 'while down'],
      ],
      (args) => cli(args, { CC_URL: down, ...direct() }),
    );

    expect(show!.code).toBe(0);
    expect(show!.stderr).toContain(`via the database at ${t.database.url}`);
    expect(show!.stderr).toContain(`the Coordinator at ${down}/graphql did not answer: ECONNREFUSED`);
    expect(JSON.parse(show!.stdout)).toMatchObject({ id: flowId, status: 'COMPENSATED' });
    expect(letters!.code).toBe(0);
    expect(letters!.stderr).toContain('and the signal bus at REDIS_URL');
    expect(retry!.code).toBe(1);
    expect(retry!.stderr).toContain(`Cannot reach the Coordinator at ${down}/graphql`);
  });

  it('checks the configuration without starting the server: exit 0, or 1 naming each problem', async () => {
    const [ok, broken, plugins] = await inTurns(
      [
        { ...direct(), FLAGS_FILE: `${repoRoot}flags.json` },
        {
          ...direct(),
          CONNECTIONS_FILE: fixture('broken/connections/unknown-action.yaml'),
          PORT: 'eighty',
        },
        // The repository's own Plugins, configured for real Services with none of their variables.
        { SERVICES: 'configured', FLAGS_FILE: `${repoRoot}flags.json` },
      ],
      (env) => cli(['config', 'check'], env),
    );

    expect(ok!.code).toBe(0);
    expect(ok!.stdout).toContain('✓ environment');
    expect(ok!.stdout).toContain(`✓ supergraph: the connections against the composed supergraph`);
    expect(ok!.stdout).toContain('✓ plugin payments');
    expect(broken!.code).toBe(1);
    expect(broken!.stdout).toContain('✗ environment');
    expect(broken!.stdout).toContain('- PORT: ');
    expect(broken!.stdout).toMatch(/✗ supergraph[^\n]*\n\s+- [^\n]*refundPaymnet/);
    expect(broken!.stderr).toContain('checks failed: environment, supergraph');
    expect(plugins!.code).toBe(1);
    expect(plugins!.stdout).toContain('✗ plugin stripe');
    expect(plugins!.stdout).toContain('STRIPE_SECRET_KEY is not set');
    expect(plugins!.stdout).toContain('✓ plugin stripe-v2');
  }, 60_000);

  it('migrates the database at DATABASE_URL, and needs one (exit 2)', async () => {
    const fresh = await createTestDatabase('cli-migrate', { migrate: false });
    try {
      const [migrated, missing] = await inTurns(
        [{ DATABASE_URL: fresh.url }, { DATABASE_URL: undefined }],
        (env) => cli(['migrate'], env),
      );
      expect(migrated!.code).toBe(0);
      // Every migration, in order, whichever is the last.
      expect(migrated!.stdout).toMatch(/^Applied 20261125110946_init, .*_operator_actions\b.*\.$/m);
      expect(missing!.code).toBe(2);
      expect(missing!.stderr).toContain('migrate needs DATABASE_URL');
    } finally {
      await fresh.drop();
    }
  });
});
