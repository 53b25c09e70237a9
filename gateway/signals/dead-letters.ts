import { DomainError, ErrorCode } from '../errors.js';
import type { DeadLetter, SignalBus } from './types.js';

/**
 * Dead letters as operators see them, across receivers. A bus numbers each receiver's dead letters on
 * their own (two receivers' may share an entry id), so operators name one as `<receiver>/<entry id>`.
 */

export const deadLetterId = (letter: Pick<DeadLetter, 'receiver' | 'id'>) =>
  `${letter.receiver}/${letter.id}`;

/**
 * The receiver and entry a dead letter's id names: `<receiver>/<entry id>`, or a bare entry id of
 * `receiver`, when one is given. BAD_USER_INPUT for an id that names neither, or another receiver.
 */
export function parseDeadLetterId(id: string, receiver?: string): { receiver: string; entry: string } {
  const slash = id.indexOf('/');
  if (slash < 0) {
    if (receiver === undefined)
      throw new DomainError(
        ErrorCode.BAD_USER_INPUT,
        `Dead letter id '${id}' names no receiver: pass it as <receiver>/<id>, or give the receiver`,
      );
    return { receiver, entry: id };
  }
  const named = { receiver: id.slice(0, slash), entry: id.slice(slash + 1) };
  if (!named.receiver || !named.entry)
    throw new DomainError(ErrorCode.BAD_USER_INPUT, `'${id}' is not a dead letter id (<receiver>/<id>)`);
  if (receiver !== undefined && named.receiver !== receiver)
    throw new DomainError(
      ErrorCode.BAD_USER_INPUT,
      `Dead letter '${id}' is one of receiver '${named.receiver}', not of '${receiver}'`,
    );
  return named;
}

export interface DeadLetterQuery {
  receiver?: string;
  /** The signal's name. */
  signal?: string;
  /** One signal, by id. */
  signalId?: string;
}

/** Dead letters of every receiver, or of one receiver or one signal, newest first. */
export async function findDeadLetters(bus: SignalBus, query: DeadLetterQuery): Promise<DeadLetter[]> {
  const letters = await bus.deadLetters(query.receiver);
  return letters
    .filter(
      (letter) =>
        (query.signal === undefined || letter.envelope?.name === query.signal) &&
        (query.signalId === undefined || letter.envelope?.id === query.signalId),
    )
    .sort((a, b) => (a.deadAt < b.deadAt ? 1 : a.deadAt > b.deadAt ? -1 : 0));
}

/** Which dead letters to deliver again: those of a receiver, of a signal, those named, or a mix (all must hold). */
export interface ReplaySelection extends Omit<DeadLetterQuery, 'signalId'> {
  /** `<receiver>/<entry id>`, or bare entry ids of `receiver`. */
  ids?: readonly string[];
}

/**
 * Delivers the selected dead letters to their receivers again (see `SignalBus.replay`), receiver by
 * receiver; returns how many. `receivers`: the receivers that run here; a dead letter of another is
 * left alone, as it would reach no one.
 */
export async function replayDeadLetters(
  bus: SignalBus,
  selection: ReplaySelection,
  receivers: ReadonlySet<string>,
): Promise<number> {
  const { receiver, signal, ids } = selection;
  if (ids === undefined && receiver !== undefined && signal === undefined) return bus.replay(receiver);
  // Entries to replay, by receiver: those named, narrowed to the signal when one is given.
  const chosen = new Map<string, string[]>();
  const add = (name: string, entry: string) => chosen.set(name, [...(chosen.get(name) ?? []), entry]);
  if (ids !== undefined) {
    const named = ids.map((id) => parseDeadLetterId(id, receiver));
    if (signal === undefined) for (const n of named) add(n.receiver, n.entry);
    else {
      const ofSignal = new Set(
        (await findDeadLetters(bus, { receiver, signal })).map((letter) => deadLetterId(letter)),
      );
      for (const n of named) if (ofSignal.has(`${n.receiver}/${n.entry}`)) add(n.receiver, n.entry);
    }
  } else {
    for (const letter of await findDeadLetters(bus, { receiver, signal })) add(letter.receiver, letter.id);
  }
  let replayed = 0;
  for (const [name, entries] of chosen) if (receivers.has(name)) replayed += await bus.replay(name, entries);
  return replayed;
}
