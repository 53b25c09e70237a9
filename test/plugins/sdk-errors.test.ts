import { describe, expect, it } from 'vitest';
import { ConfigError, DomainError, ErrorCode } from '@commerce-coordinator/plugin-sdk';
import type * as Errors from '@commerce-coordinator/plugin-sdk/errors';

// A side-loaded Plugin may bring its own copy of the SDK: the errors it throws are still the gateway's.
describe("the SDK's errors across copies of the package", () => {
  it('are recognised by instanceof in either copy, and nothing else is', async () => {
    // A second instance of the module, as another installed copy of the package would be.
    const copy = (await import(
      // @ts-expect-error: a query string makes Vite load the module once more
      '../../packages/plugin-sdk/src/errors.ts?another-copy'
    )) as typeof Errors;
    expect(copy.ConfigError).not.toBe(ConfigError);

    const config = new copy.ConfigError('rover.yaml', ['a problem']);
    const domain = new copy.DomainError(copy.ErrorCode.NOT_FOUND, 'No such order');
    expect(config).toBeInstanceOf(ConfigError);
    expect(domain).toBeInstanceOf(DomainError);
    expect(new DomainError(ErrorCode.FORBIDDEN, 'no')).toBeInstanceOf(copy.DomainError);
    expect(config).not.toBeInstanceOf(DomainError);
    expect(new Error('plain')).not.toBeInstanceOf(ConfigError);
    expect({ name: 'ConfigError' }).not.toBeInstanceOf(ConfigError);
  });
});
