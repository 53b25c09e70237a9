import { ConfigError } from '../../gateway/errors.js';

/** The problems a configuration check found: what `work`'s ConfigError lists, none when it passes. */
export function problemsOf(work: () => unknown): string[] {
  try {
    work();
  } catch (error) {
    if (error instanceof ConfigError) return [...error.problems];
    throw error;
  }
  return [];
}
