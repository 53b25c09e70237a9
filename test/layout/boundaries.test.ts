import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

// The layers' boundaries are lint rules (eslint.config.js, run by `npm run lint` on the whole tree):
// these prove the rules refuse each crossing, and let through what the layers may import.
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const eslint = new ESLint({ cwd: repoRoot });

/** The no-restricted-imports messages for `source` as if it were the file at `path`. */
async function crossings(path: string, source: string): Promise<string[]> {
  const [result] = await eslint.lintText(`${source}\nexport const used = x;\n`, { filePath: path });
  return result!.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

describe('the layers', () => {
  it('keep the core from importing a stand-in or a Plugin', async () => {
    expect(await crossings('gateway/main.ts', "import { x } from '../services/embedded.js';")).toEqual([
      expect.stringContaining('The core imports no Service stand-in and no Plugin'),
    ]);
    expect(
      await crossings('gateway/federation/x.ts', "import x from '../../subgraphs/lms/index.js';"),
    ).toHaveLength(1);
  });

  it('keep Plugins, their contracts and the SDK from importing the core or a stand-in', async () => {
    for (const path of ['subgraphs/lms/x.ts', 'schema/contracts/x.ts', 'examples/gift-cards/x.ts'])
      expect(await crossings(path, "import { x } from '../../gateway/errors.js';")).toEqual([
        expect.stringContaining("'@commerce-coordinator/plugin-sdk', never gateway/"),
      ]);
    expect(
      await crossings('packages/plugin-sdk/src/x.ts', "import { x } from '../../../gateway/log.js';"),
    ).toHaveLength(1);
    expect(
      await crossings('subgraphs/lms/x.ts', "import { x } from '../../services/lms/server.js';"),
    ).toEqual([expect.stringContaining('imports no stand-in')]);
  });

  it('let each layer import what it may', async () => {
    expect(
      await crossings('subgraphs/lms/x.ts', "import { x } from '@commerce-coordinator/plugin-sdk';"),
    ).toEqual([]);
    expect(await crossings('gateway/x.ts', "import { x } from './subscriptions/server.js';")).toEqual([]);
    expect(await crossings('launcher/main.ts', "import { x } from '../services/embedded.js';")).toEqual([]);
  });
});
