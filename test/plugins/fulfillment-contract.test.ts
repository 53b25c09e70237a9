import { readFileSync } from 'node:fs';
import { parse, print, type DefinitionNode } from 'graphql';
import { describe, expect, it } from 'vitest';

// Federation composes an input type shared by two subgraphs as the intersection of their fields: a
// field one Implementation of fulfillOrder / revokeLineItems lacks silently disappears from the other's
// input too. The two Implementations must declare the contract's inputs identically.
const inputsOf = (plugin: string) => {
  const sdl = readFileSync(new URL(`../../subgraphs/${plugin}/schema.graphql`, import.meta.url), 'utf8');
  const inputs = new Map<string, string>();
  for (const node of parse(sdl, { noLocation: true }).definitions as DefinitionNode[])
    if (node.kind === 'InputObjectTypeDefinition')
      inputs.set(
        node.name.value,
        print({
          ...node,
          description: undefined,
          fields: node.fields?.map((f) => ({ ...f, description: undefined })),
        }),
      );
  return inputs;
};

describe('the fulfillment Actions contract (schema/contracts/fulfillment.ts)', () => {
  it.each(['FulfillOrderInput', 'FulfillmentLineInput', 'RevokeLineItemsInput', 'ReturnedItemInput'])(
    'declares %s the same in lms and order-fulfillment',
    (name) => {
      const lms = inputsOf('lms').get(name);
      expect(lms, `lms declares ${name}`).toBeDefined();
      expect(inputsOf('order-fulfillment').get(name)).toBe(lms);
    },
  );
});
