import { existsSync, readFileSync } from 'node:fs';
import { composeServices } from '@apollo/composition';
import { getLocation, GraphQLError, parse, Source, type ASTNode, type DocumentNode } from 'graphql';
import { ConfigError } from '../errors.js';

export interface SubgraphSource {
  name: string;
  url: string;
  typeDefs: string | DocumentNode;
  /** Where the schema came from, so errors can point at a line. */
  file?: string;
}

export interface ComposedSupergraph {
  supergraphSdl: string;
  /** Composition hints, e.g. `[OVERRIDE_MIGRATION_IN_PROGRESS]: …` while a progressive override is live. */
  hints: string[];
}

export interface ComposeOptions {
  /** Named by the `ConfigError` on failure. @default 'rover.yaml' */
  configFile?: string;
}

/**
 * Composes subgraphs into a supergraph in-process with `@apollo/composition` (what Rover runs, without
 * its download). Throws one `ConfigError` listing every composition error with the subgraphs and
 * schema locations it concerns.
 */
export function composeSupergraph(
  subgraphs: readonly SubgraphSource[],
  options: ComposeOptions = {},
): ComposedSupergraph {
  const configFile = options.configFile ?? 'rover.yaml';
  const problems: string[] = [];
  // Errors point at AST nodes; their Source says which subgraph (not every error tags nodes with it).
  const subgraphOfSource = new Map<Source, SubgraphSource>();
  const services = subgraphs.flatMap((subgraph) => {
    if (typeof subgraph.typeDefs !== 'string')
      return [{ name: subgraph.name, url: subgraph.url, typeDefs: subgraph.typeDefs }];
    const source = new Source(subgraph.typeDefs, subgraph.file ?? `subgraph "${subgraph.name}"`);
    subgraphOfSource.set(source, subgraph);
    try {
      return [{ name: subgraph.name, url: subgraph.url, typeDefs: parse(source) }];
    } catch (error) {
      const at = error instanceof GraphQLError ? error.locations?.[0] : undefined;
      problems.push(
        `subgraph "${subgraph.name}"${subgraph.file ? ` (${subgraph.file}${at ? `:${at.line}:${at.column}` : ''})` : ''}: ` +
          `the schema does not parse: ${(error as Error).message}`,
      );
      return [];
    }
  });
  if (problems.length) throw new ConfigError(configFile, problems);

  const result = composeServices(services);
  if (result.errors) {
    throw new ConfigError(
      configFile,
      result.errors.map((error) => describeError(error, subgraphOfSource)),
    );
  }
  return { supergraphSdl: result.supergraphSdl, hints: result.hints.map((hint) => hint.toString()) };
}

function describeError(error: GraphQLError, subgraphOfSource: ReadonlyMap<Source, SubgraphSource>): string {
  const code = typeof error.extensions.code === 'string' ? `[${error.extensions.code}] ` : '';
  const places = new Set<string>();
  for (const node of (error.nodes ?? []) as Array<ASTNode & { subgraph?: string }>) {
    const source = node.loc?.source;
    const subgraph = (source && subgraphOfSource.get(source)?.name) ?? node.subgraph;
    const position = source && node.loc ? getLocation(source, node.loc.start) : undefined;
    const file = source && subgraphOfSource.get(source)?.file;
    const where = file && position ? ` (${file}:${position.line}:${position.column})` : '';
    if (subgraph) places.add(`subgraph "${subgraph}"${where}`);
  }
  return `${code}${error.message}${places.size ? ` — in ${[...places].join(', ')}` : ''}`;
}

/**
 * For a CI check: true when the committed supergraph file is missing or differs from a freshly composed
 * SDL (trailing whitespace aside), i.e. someone changed a subgraph schema without recomposing.
 */
export function isSupergraphStale(file: string, supergraphSdl: string): boolean {
  if (!existsSync(file)) return true;
  return readFileSync(file, 'utf8').trimEnd() !== supergraphSdl.trimEnd();
}
