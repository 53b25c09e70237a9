import { Command } from 'commander';
import cliProgress from 'cli-progress';
import { usageError } from '../errors.js';
import { integer, reason, withSource } from '../context.js';
import type { Output } from '../output.js';
import { brief, print, table } from '../output.js';
import type { Source } from '../source.js';

interface DeadLetter {
  id: string;
  receiver: string;
  signalId: string;
  signal: string;
  attempts: number;
  deadAt: string;
  replayable: boolean;
  error: { code: string; message: string };
}

/** The most one listing asks for (the Coordinator's own limit). */
const PAGE = 1_000;

const LIST = /* GraphQL */ `
  query DeadLetters($receiver: String, $signal: String, $limit: Int) {
    deadLetters(receiver: $receiver, signal: $signal, limit: $limit) {
      id
      receiver
      signalId
      signal
      attempts
      deadAt
      replayable
      error {
        code
        message
      }
    }
  }
`;

const REPLAY = /* GraphQL */ `
  mutation Replay($receiver: String, $signal: String, $ids: [ID!], $reason: String!) {
    replayDeadLetters(receiver: $receiver, signal: $signal, ids: $ids, reason: $reason)
  }
`;

interface Selection {
  receiver?: string;
  signal?: string;
  ids?: string[];
}

/**
 * Replays in batches of `batchSize` ids, each its own recorded replay: the ids named, or those listed
 * for the receiver or signal (listed again after each page, until none is left to try).
 */
async function replayInBatches(
  source: Source,
  output: Output,
  selection: Selection,
  options: { reason: string; batchSize: number },
): Promise<{ selected: number; replayed: number; batches: number }> {
  const bar =
    process.stderr.isTTY && !output.json
      ? new cliProgress.SingleBar(
          { format: 'replaying [{bar}] {value}/{total} dead letters', stream: process.stderr },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
  const tried = new Set<string>();
  let replayed = 0;
  let batches = 0;
  const replay = async (ids: string[]) => {
    for (let i = 0; i < ids.length; i += options.batchSize) {
      const batch = ids.slice(i, i + options.batchSize);
      const { replayDeadLetters } = await source.request<{ replayDeadLetters: number }>(REPLAY, {
        receiver: selection.receiver,
        signal: selection.signal,
        ids: batch,
        reason: options.reason,
      });
      replayed += replayDeadLetters;
      batches += 1;
      bar?.increment(batch.length);
    }
  };
  try {
    if (selection.ids) {
      bar?.start(selection.ids.length, 0);
      selection.ids.forEach((id) => tried.add(id));
      await replay(selection.ids);
    } else {
      bar?.start(0, 0);
      for (;;) {
        const { deadLetters } = await source.request<{ deadLetters: DeadLetter[] }>(LIST, {
          receiver: selection.receiver,
          signal: selection.signal,
          limit: PAGE,
        });
        const fresh = deadLetters.filter((d) => d.replayable && !tried.has(d.id)).map((d) => d.id);
        if (!fresh.length) break;
        fresh.forEach((id) => tried.add(id));
        bar?.setTotal(tried.size);
        await replay(fresh);
        if (deadLetters.length < PAGE) break;
      }
    }
  } finally {
    bar?.stop();
  }
  return { selected: tried.size, replayed, batches };
}

export function deadLettersCommand(): Command {
  const deadLetters = new Command('dead-letters').description(
    'Signals that receivers failed for good: list, replay',
  );

  deadLetters
    .command('list')
    .description('Dead letters of every receiver, or of one receiver or one signal, newest first')
    .option('--receiver <name>', "one receiver's")
    .option('--signal <name>', "one signal's")
    .option('--limit <n>', 'at most this many (1-1000)', integer(1, PAGE), 100)
    .option('--json', 'print JSON')
    .action(async (options: { receiver?: string; signal?: string; limit: number }, command: Command) =>
      withSource(command, 'read', async (source, output) => {
        const { deadLetters: found } = await source.request<{ deadLetters: DeadLetter[] }>(LIST, options);
        print(output, found, () =>
          found.length
            ? table(
                ['ID', 'RECEIVER', 'SIGNAL', 'SIGNAL ID', 'ATTEMPTS', 'DEAD AT', 'ERROR'],
                found.map((d) => [
                  d.id,
                  d.receiver,
                  d.signal,
                  d.signalId,
                  d.attempts,
                  d.deadAt,
                  brief(`${d.error.code}: ${d.error.message}`, 50),
                ]),
              )
            : 'No dead letters.',
        );
      }),
    );

  deadLetters
    .command('replay')
    .description(
      'Deliver dead letters again, each to its receiver: those of a receiver, of a signal, or those named; in batches, each recorded',
    )
    .option('--receiver <name>', "a receiver's")
    .option('--signal <name>', "a signal's")
    .option('--ids <ids...>', 'these (as `dead-letters list` shows them: <receiver>/<id>)')
    .requiredOption('--reason <text>', 'why (recorded with each batch)', reason)
    .option('--batch-size <n>', 'dead letters per request (1-1000)', integer(1, PAGE), 100)
    .option('--json', 'print JSON')
    .action(async (options: Selection & { reason: string; batchSize: number }, command: Command) => {
      const { receiver, signal, ids } = options;
      if (receiver === undefined && signal === undefined && ids === undefined)
        throw usageError('Say what to replay: --receiver, --signal or --ids');
      await withSource(command, 'write', async (source, output) => {
        const result = await replayInBatches(source, output, { receiver, signal, ids }, options);
        print(
          output,
          result,
          () =>
            `Replayed ${result.replayed} of ${result.selected} dead letters in ${result.batches} batch${result.batches === 1 ? '' : 'es'}.`,
        );
      });
    });

  return deadLetters;
}
