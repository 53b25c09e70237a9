import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The public gateway benchmark's scenario (graphql-hive/graphql-gateways-benchmark), copied verbatim. */
const file = (name: string) => fileURLToPath(new URL(`./scenario/${name}`, import.meta.url));

export interface ScenarioData {
  users: Array<{ id: string; name: string; username: string; birthday: number }>;
  products: Array<{ upc: string; name: string; price: number; weight: number }>;
  inventory: Array<{ upc: string; inStock: boolean }>;
  reviews: Array<{ id: string; body: string; productUpc: string }>;
}

export const scenario = {
  data: JSON.parse(readFileSync(file('data.json'), 'utf8')) as ScenarioData,
  query: readFileSync(file('query.graphql'), 'utf8'),
  supergraphFile: file('supergraph.graphql'),
  /** The supergraph with its routing URLs pointed at `base` (e.g. http://127.0.0.1:4200). */
  supergraph(base: string): string {
    return readFileSync(file('supergraph.graphql'), 'utf8').replaceAll('http://0.0.0.0:4200', base);
  },
};
