import { definePlugin, type ActionContext } from '@commerce-coordinator/plugin-sdk';
import { issue, read } from './gift-card.js';

// A Plugin shipped as an npm package: the Coordinator side-loads it when a rover.yaml entry names it
// (`package: '@acme/commerce-plugin-gift-cards'`), with this package's schema.graphql as schema.file.
export default definePlugin({
  name: 'gift-cards',
  schemaFile: new URL('./schema.graphql', import.meta.url),
  access: {
    Query: { giftCard: ['learner', 'staff', 'service'] },
    Mutation: { issueGiftCard: ['staff', 'service'] },
  },
  resolvers: {
    Query: {
      giftCard: (_: unknown, { code }: { code: string }) => read(code),
    },
    Mutation: {
      issueGiftCard: (
        _: unknown,
        { input }: { input: { amountCents: number; currency: string } },
        ctx: ActionContext,
      ) => issue(input.amountCents, input.currency, ctx.idempotencyKey),
    },
  },
});
