import { createHash, randomUUID } from 'node:crypto';
import { DomainError, ErrorCode } from '@commerce-coordinator/plugin-sdk';

export interface GiftCard {
  code: string;
  amountCents: number;
  currency: string;
}

// GC-<currency>-<amount>-<serial>-<check>: the code carries what it is worth, and the check digest
// catches a mistyped or altered code. (An example: a real gift card Service would hold the balance.)
const CODE = /^GC-([A-Z]{3})-(\d{1,9})-([0-9A-F]{8})-([0-9A-F]{4})$/;

const digest = (text: string, length: number) =>
  createHash('sha256').update(text).digest('hex').slice(0, length).toUpperCase();

/** A new card; `idempotencyKey` (a flow step's) makes the serial, so a retried step issues the same code. */
export function issue(amountCents: number, currency: string, idempotencyKey: string | undefined): GiftCard {
  if (!Number.isInteger(amountCents) || amountCents <= 0 || amountCents > 10_000_000)
    throw new DomainError(ErrorCode.BAD_USER_INPUT, 'amountCents must be a whole number from 1 to 10000000', {
      field: 'amountCents',
    });
  if (!/^[A-Z]{3}$/.test(currency))
    throw new DomainError(ErrorCode.BAD_USER_INPUT, 'currency must be an ISO 4217 code such as USD', {
      field: 'currency',
    });
  const serial = digest(idempotencyKey ?? randomUUID(), 8);
  const body = `GC-${currency}-${amountCents}-${serial}`;
  return { code: `${body}-${digest(body, 4)}`, amountCents, currency };
}

/** The card a code stands for, or NOT_FOUND. */
export function read(code: string): GiftCard {
  const match = CODE.exec(code);
  if (!match || digest(code.slice(0, code.lastIndexOf('-')), 4) !== match[4])
    throw new DomainError(ErrorCode.NOT_FOUND, 'No gift card has this code');
  return { code, amountCents: Number(match[2]), currency: match[1]! };
}
