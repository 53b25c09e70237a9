import { Command, InvalidArgumentError, Option } from 'commander';
import { CliError } from '../errors.js';
import { integer, isoTime, reason, withSource } from '../context.js';
import { brief, fields, print, table } from '../output.js';

const FLOW_STATUSES = ['RUNNING', 'COMPLETED', 'HALTED', 'FAILED', 'COMPENSATED'];

const SUMMARY = /* GraphQL */ `
  id
  kind
  name
  receiver
  status
  orderId
  attempt
  startedAt
  finishedAt
  error {
    code
    message
  }
`;

const WHOLE = /* GraphQL */ `
  ${SUMMARY}
  idempotencyKey
  startedBy
  input
  output
  haltedAt
  error {
    details
  }
  steps {
    index
    action
    status
    attempt
    implementation
    idempotencyKey
    compensates
    startedAt
    finishedAt
    error {
      code
      message
    }
  }
  signals {
    id
    name
    publishedAt
    receivers {
      receiver
      run {
        id
        status
      }
      deadLetter {
        id
      }
    }
  }
  operatorActions {
    id
    action
    status
    actor
    reason
    at
    outcome
  }
`;

export interface FlowSummary {
  id: string;
  kind: string;
  name: string;
  receiver: string | null;
  status: string;
  orderId: string | null;
  attempt: number;
  startedAt: string;
  finishedAt: string | null;
  error: { code: string; message: string; details?: unknown } | null;
}

interface FlowStep {
  index: number;
  action: string;
  status: string;
  attempt: number;
  implementation: string | null;
  idempotencyKey: string;
  compensates: number | null;
  error: { code: string; message: string } | null;
}

interface Flow extends FlowSummary {
  steps: FlowStep[];
  signals: Array<{
    id: string;
    name: string;
    publishedAt: string | null;
    receivers: Array<{
      receiver: string;
      run: { id: string; status: string } | null;
      deadLetter: { id: string } | null;
    }>;
  }>;
  operatorActions: Array<{
    id: string;
    action: string;
    status: string;
    actor: { kind?: string; username?: string; service?: string } | null;
    reason: string;
    at: string;
    outcome: unknown;
  }>;
}

const flowName = (f: FlowSummary) => (f.receiver ? `${f.name} → ${f.receiver}` : f.name);

export const flowsTable = (flows: readonly FlowSummary[]) =>
  table(
    ['ID', 'FLOW', 'STATUS', 'ORDER', 'ATTEMPT', 'STARTED', 'ERROR'],
    flows.map((f) => [
      f.id,
      flowName(f),
      f.status,
      f.orderId,
      f.attempt,
      f.startedAt,
      f.error && brief(`${f.error.code}: ${f.error.message}`, 50),
    ]),
  );

const actorName = (actor: Flow['operatorActions'][number]['actor']) =>
  actor ? `${actor.kind ?? '?'}:${actor.username ?? actor.service ?? '?'}` : '-';

/** A flow as people read it: its fields, steps, signals and what operators did to it. */
export function describeFlow(flow: Flow): string {
  const parts = [
    fields([
      ['flow', flow.id],
      ['name', flowName(flow)],
      ['status', flow.status],
      ['order', flow.orderId],
      ['attempt', flow.attempt],
      ['started', flow.startedAt],
      ['finished', flow.finishedAt],
      ['error', flow.error && `${flow.error.code}: ${flow.error.message}`],
    ]),
    '',
    'steps:',
    table(
      ['#', 'ACTION', 'STATUS', 'ATTEMPT', 'IMPLEMENTATION', 'IDEMPOTENCY KEY', 'UNDOES', 'ERROR'],
      flow.steps.map((s) => [
        s.index,
        s.action,
        s.status,
        s.attempt,
        s.implementation,
        s.idempotencyKey,
        s.compensates,
        s.error && brief(`${s.error.code}: ${s.error.message}`, 50),
      ]),
    ),
  ];
  if (flow.signals.length)
    parts.push(
      '',
      'signals:',
      table(
        ['SIGNAL', 'NAME', 'PUBLISHED', 'RECEIVERS'],
        flow.signals.map((s) => [
          s.id,
          s.name,
          s.publishedAt,
          s.receivers
            .map((r) => `${r.receiver}: ${r.deadLetter ? 'DEAD LETTER' : (r.run?.status ?? 'not started')}`)
            .join(', '),
        ]),
      ),
    );
  if (flow.operatorActions.length)
    parts.push(
      '',
      'operator actions:',
      table(
        ['AT', 'ACTION', 'STATUS', 'BY', 'REASON', 'OUTCOME'],
        flow.operatorActions.map((a) => [
          a.at,
          a.action,
          a.status,
          actorName(a.actor),
          brief(a.reason, 40),
          brief(a.outcome, 50),
        ]),
      ),
    );
  return parts.join('\n');
}

export function flowsCommand(): Command {
  const flows = new Command('flows').description(
    'Purchase Flows and receiver runs: list, show, retry, cancel',
  );

  flows
    .command('list')
    .description('Flows newest first, by order, learner, name, status and time window')
    .option('--order <id>', "the order's id")
    .option('--learner <username|lmsUserId>', "the learner: the flow's caller, or named in its input")
    .option('--name <name>', "the filter's name, or the signal's for receiver runs")
    .addOption(
      new Option('--status <status>', `the status: ${FLOW_STATUSES.join(', ')}`).argParser((v) => {
        const status = v.toUpperCase();
        if (!FLOW_STATUSES.includes(status))
          throw new InvalidArgumentError(`expected one of ${FLOW_STATUSES.join(', ')}`);
        return status;
      }),
    )
    .option('--from <time>', 'started at or after (ISO 8601)', isoTime)
    .option('--to <time>', 'started before (ISO 8601)', isoTime)
    .option('--before <time>', 'started before (ISO 8601): the next page after the last shown', isoTime)
    .option('--limit <n>', 'at most this many (1-200)', integer(1, 200), 20)
    .option('--json', 'print JSON')
    .action(async (options: Record<string, string | number | undefined>, command: Command) =>
      withSource(command, 'read', async (source, output) => {
        const { flows: found } = await source.request<{ flows: FlowSummary[] }>(
          `query Flows($orderId: String, $learner: String, $name: String, $status: FlowStatus, $from: String,
                       $to: String, $limit: Int, $before: String) {
            flows(orderId: $orderId, learner: $learner, name: $name, status: $status, from: $from, to: $to,
                  limit: $limit, before: $before) { ${SUMMARY} }
          }`,
          {
            orderId: options.order,
            learner: options.learner,
            name: options.name,
            status: options.status,
            from: options.from,
            to: options.to,
            limit: options.limit,
            before: options.before,
          },
        );
        print(output, found, () => (found.length ? flowsTable(found) : 'No flows.'));
      }),
    );

  flows
    .command('show')
    .description('One flow: its steps (with idempotency keys), signals and operator actions')
    .argument('<id>', "the flow's id")
    .option('--json', 'print JSON')
    .action(async (id: string, _options: unknown, command: Command) =>
      withSource(command, 'read', async (source, output) => {
        const { flow } = await source.request<{ flow: Flow | null }>(
          `query Flow($id: ID!) { flow(id: $id) { ${WHOLE} } }`,
          { id },
        );
        if (!flow) throw new CliError(`NOT_FOUND: No flow ${id}`, { code: 'NOT_FOUND' });
        print(output, flow, () => describeFlow(flow));
      }),
    );

  flows
    .command('retry')
    .description(
      'Run a FAILED or COMPENSATED flow again from its first step not done (steps done keep their records and keys); exits 1 when it ends failed again',
    )
    .argument('<id>', "the flow's id")
    .requiredOption('--reason <text>', 'why (recorded with the action)', reason)
    .option('--json', 'print JSON')
    .action(async (id: string, options: { reason: string }, command: Command) =>
      withSource(command, 'write', async (source, output) => {
        const { retryFlow: flow } = await source.request<{ retryFlow: Flow }>(
          `mutation Retry($id: ID!, $reason: String!) { retryFlow(id: $id, reason: $reason) { ${WHOLE} } }`,
          { id, reason: options.reason },
        );
        print(output, flow, () => describeFlow(flow));
        if (flow.status === 'FAILED' || flow.status === 'COMPENSATED')
          throw new CliError(`The retried flow ended ${flow.status} again: ${flow.error?.message ?? ''}`);
      }),
    );

  flows
    .command('cancel')
    .description(
      'Stop a RUNNING flow that is stuck: fence the process running it, undo what ran; it ends COMPENSATED or FAILED (FLOW_CANCELLED)',
    )
    .argument('<id>', "the flow's id")
    .requiredOption('--reason <text>', 'why (recorded with the action and on the flow)', reason)
    .option('--json', 'print JSON')
    .action(async (id: string, options: { reason: string }, command: Command) =>
      withSource(command, 'write', async (source, output) => {
        const { cancelFlow: flow } = await source.request<{ cancelFlow: Flow }>(
          `mutation Cancel($id: ID!, $reason: String!) { cancelFlow(id: $id, reason: $reason) { ${WHOLE} } }`,
          { id, reason: options.reason },
        );
        print(output, flow, () => describeFlow(flow));
      }),
    );

  return flows;
}
