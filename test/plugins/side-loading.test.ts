import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../gateway/errors.js';
import type { RoverSubgraph } from '../../gateway/federation/rover-config.js';
import { loadPlugin } from '../../gateway/plugins/load.js';
import { startLedger } from '../fixtures/services/ledger.js';
import { fixture, startTestCoordinator, token, type TestCoordinator } from '../support/coordinator.js';
import { createTestDatabase } from '../support/database.js';

// A Plugin side-loaded from an installed npm package that rover.yaml names: the example under
// examples/gift-cards, installed into node_modules through the npm workspace.
const GIFT_CARDS = '@acme/commerce-plugin-gift-cards';
const roverFile = fixture('side-loading/rover.yaml');
const shippedSchema = fixture('../../node_modules/@acme/commerce-plugin-gift-cards/schema.graphql');

const ISSUE = /* GraphQL */ `
  mutation Issue($input: IssueGiftCardInput!) {
    issueGiftCard(input: $input) {
      code
      amountCents
      currency
    }
  }
`;
const READ = /* GraphQL */ `
  query Read($code: ID!) {
    giftCard(code: $code) {
      code
      amountCents
      currency
    }
  }
`;

describe('a Plugin named by its package in rover.yaml', () => {
  let t: TestCoordinator;
  beforeAll(async () => {
    t = await startTestCoordinator('side-loading', {
      authenticated: true,
      overrides: { roverConfig: roverFile },
    });
  });
  afterAll(async () => t?.stop());

  it("serves its Action and its query through the gateway, with the SDK's access checks and codes", async () => {
    const staff = await token({ kind: 'staff', username: 'grace' });
    const learner = await token({ kind: 'learner', lmsUserId: 7, username: 'ada' });

    const issued = await t.graphql<{ issueGiftCard: { code: string } }>(
      ISSUE,
      { input: { amountCents: 2500, currency: 'USD' } },
      { token: staff },
    );
    expect(issued.errors).toBeUndefined();
    const { code } = issued.data!.issueGiftCard;
    expect(code).toMatch(/^GC-USD-2500-[0-9A-F]{8}-[0-9A-F]{4}$/);

    const read = await t.graphql(READ, { code }, { token: learner });
    expect(read).toEqual({ data: { giftCard: { code, amountCents: 2500, currency: 'USD' } } });

    // Its access declaration holds: issuing is for staff and Services.
    const forbidden = await t.graphql(
      ISSUE,
      { input: { amountCents: 1, currency: 'USD' } },
      { token: learner },
    );
    expect(forbidden.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');

    // A DomainError thrown by the package's copy of the SDK reaches the caller with its code.
    const altered = code.replace('-2500-', '-9500-');
    const missing = await t.graphql(READ, { code: altered }, { token: learner });
    expect(missing.errors?.[0]).toMatchObject({
      message: 'No gift card has this code',
      extensions: { code: 'NOT_FOUND' },
    });
  });
});

describe('side-loading refuses to start', () => {
  const subgraph = (overrides: Partial<RoverSubgraph>): RoverSubgraph => ({
    name: 'gift-cards',
    routingUrl: 'http://127.0.0.1:4108/',
    schemaFile: shippedSchema,
    typeDefs: readFileSync(shippedSchema, 'utf8'),
    package: GIFT_CARDS,
    ...overrides,
  });
  const load = (overrides: Partial<RoverSubgraph>) =>
    loadPlugin(subgraph(overrides), { roverFile, subgraphsDir: fixture('subgraphs') });

  /** The one problem of the ConfigError `promise` rejects with, which names rover.yaml. */
  const problemOf = async (promise: Promise<unknown>) => {
    const error = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).file).toBe(roverFile);
    expect((error as ConfigError).problems).toHaveLength(1);
    return (error as ConfigError).problems[0];
  };

  it('loads the example as it is', async () => {
    const plugin = await load({});
    expect(plugin.name).toBe('gift-cards');
  });

  it('names a package that is not installed, and how to install it', async () => {
    expect(await problemOf(load({ package: '@acme/commerce-plugin-not-installed' }))).toMatch(
      /^subgraphs\.gift-cards\.package: '@acme\/commerce-plugin-not-installed' is not installed \(looked in the node_modules above .*side-loading\): npm install @acme\/commerce-plugin-not-installed$/,
    );
  });

  it('names a package without a default-exported Plugin', async () => {
    expect(await problemOf(load({ package: '@acme/commerce-plugin-no-default' }))).toMatch(
      /^subgraphs\.gift-cards\.package: '@acme\/commerce-plugin-no-default' \(.*index\.js\) must default-export definePlugin\(\{ name: 'gift-cards', \.\.\. \}\) from @commerce-coordinator\/plugin-sdk$/,
    );
  });

  it('names a package whose Plugin does not say who may call its Actions', async () => {
    expect(await problemOf(load({ package: '@acme/commerce-plugin-undeclared' }))).toBe(
      "subgraphs.gift-cards.package: '@acme/commerce-plugin-undeclared' failed to load: Plugin 'gift-cards' does not declare who may call its Actions:\n  - Query.giftCardBalance is not in access.Query: say who may call it",
    );
  });

  it('names a package whose Plugin is not the subgraph rover.yaml lists', async () => {
    expect(await problemOf(load({ name: 'vouchers' }))).toContain(
      `subgraphs.vouchers.package: '${GIFT_CARDS}' (`,
    );
  });

  it('names a package whose schema is not the one rover.yaml composes, and the first difference', async () => {
    const composed = fixture('subgraphs/payments-v2/schema.graphql');
    expect(await problemOf(load({ schemaFile: composed, typeDefs: readFileSync(composed, 'utf8') }))).toMatch(
      /^subgraphs\.gift-cards: the schema '@acme\/commerce-plugin-gift-cards' serves differs from \.\.\/subgraphs\/payments-v2\/schema\.graphql, which rover\.yaml composes \(the Plugin has ".*" where rover\.yaml's has ".*"\); point schema\.file at the schema the Plugin ships$/,
    );
  });

  it('refuses the start of a Coordinator whose rover.yaml names a package that is not installed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'side-loading-'));
    const file = join(dir, 'rover.yaml');
    await writeFile(
      file,
      readFileSync(roverFile, 'utf8')
        .replaceAll('file: ../', `file: ${fixture('side-loading')}/../`)
        .replace(`package: '${GIFT_CARDS}'`, "package: '@acme/commerce-plugin-not-installed'"),
    );
    const database = await createTestDatabase('side-loading-missing');
    const ledger = await startLedger();
    try {
      await expect(
        startTestCoordinator('side-loading-missing', { database, ledger, overrides: { roverConfig: file } }),
      ).rejects.toThrow(
        "subgraphs.gift-cards.package: '@acme/commerce-plugin-not-installed' is not installed",
      );
    } finally {
      await ledger.close();
      await database.drop();
      await rm(dir, { recursive: true });
    }
  });
});
