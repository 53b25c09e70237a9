import { Command } from 'commander';
import { CliError } from '../errors.js';
import { reason, withSource } from '../context.js';
import { brief, fields, print, table } from '../output.js';

interface Signal {
  id: string;
  name: string;
  payload: unknown;
  source: string;
  flowId: string | null;
  createdAt: string;
  publishedAt: string | null;
  receivers: Array<{
    receiver: string;
    run: {
      id: string;
      status: string;
      attempt: number;
      finishedAt: string | null;
      error: { code: string; message: string } | null;
    } | null;
    deadLetter: {
      id: string;
      attempts: number;
      deadAt: string;
      error: { code: string; message: string };
    } | null;
  }>;
}

const SIGNAL = /* GraphQL */ `
  id
  name
  payload
  source
  flowId
  createdAt
  publishedAt
  receivers {
    receiver
    run {
      id
      status
      attempt
      finishedAt
      error {
        code
        message
      }
    }
    deadLetter {
      id
      attempts
      deadAt
      error {
        code
        message
      }
    }
  }
`;

function describeSignal(signal: Signal): string {
  return [
    fields([
      ['signal', signal.id],
      ['name', signal.name],
      ['source', signal.source],
      ['created', signal.createdAt],
      ['published', signal.publishedAt ?? 'not yet (waiting in the outbox)'],
      ['payload', brief(signal.payload, 100)],
    ]),
    '',
    'receivers:',
    table(
      ['RECEIVER', 'RUN', 'STATUS', 'ATTEMPT', 'DEAD LETTER', 'ERROR'],
      signal.receivers.map((r) => {
        const error = r.deadLetter?.error ?? r.run?.error;
        return [
          r.receiver,
          r.run?.id,
          r.run?.status ?? 'not started',
          r.run?.attempt,
          r.deadLetter?.id,
          error && brief(`${error.code}: ${error.message}`, 50),
        ];
      }),
    ),
  ].join('\n');
}

export function signalsCommand(): Command {
  const signals = new Command('signals').description('Signals of the outbox: show, redeliver');

  signals
    .command('show')
    .description("A signal, with each receiver's run and dead letter")
    .argument('<id>', "the signal's id")
    .option('--json', 'print JSON')
    .action(async (id: string, _options: unknown, command: Command) =>
      withSource(command, 'read', async (source, output) => {
        const { signal } = await source.request<{ signal: Signal | null }>(
          `query Signal($id: ID!) { signal(id: $id) { ${SIGNAL} } }`,
          { id },
        );
        if (!signal) throw new CliError(`NOT_FOUND: No signal ${id}`, { code: 'NOT_FOUND' });
        print(output, signal, () => describeSignal(signal));
      }),
    );

  signals
    .command('redeliver')
    .description(
      'Deliver a signal to one receiver again (its dead letter, or the signal from the outbox); refused when its run completed',
    )
    .argument('<id>', "the signal's id")
    .requiredOption('--receiver <name>', 'the receiver to deliver it to')
    .requiredOption('--reason <text>', 'why (recorded with the action)', reason)
    .option('--json', 'print JSON')
    .action(async (id: string, options: { receiver: string; reason: string }, command: Command) =>
      withSource(command, 'write', async (source, output) => {
        const { redeliverSignal } = await source.request<{ redeliverSignal: boolean }>(
          `mutation Redeliver($id: ID!, $receiver: String!, $reason: String!) {
            redeliverSignal(signalId: $id, receiver: $receiver, reason: $reason)
          }`,
          { id, receiver: options.receiver, reason: options.reason },
        );
        print(
          output,
          { signalId: id, receiver: options.receiver, delivered: redeliverSignal },
          () => `Signal ${id} handed to receiver ${options.receiver} again.`,
        );
      }),
    );

  return signals;
}
