import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs on stdout; one logger per process, passed to every component. */
export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  return pino({ level: options.level ?? 'info', name: options.name ?? 'coordinator' });
}

/** A logger that writes nothing, for components under test. */
export const silentLogger: Logger = pino({ level: 'silent' });
