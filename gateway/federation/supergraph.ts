import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Supergraph } from '@apollo/federation-internals';
import { buildSchema, print, type GraphQLSchema } from 'graphql';
import { compileConnections, loadConnections, type CompiledConnections } from '../connections/compile.js';
import { fieldOwnership } from './field-ownership.js';
import type { Connections } from '../connections/schema.js';
import { ConfigError } from '../errors.js';
import { COORDINATOR_SUBGRAPH, coordinatorTypeDefs } from '../flows/api.js';
import { composeSupergraph } from './compose.js';
import { loadRoverConfig, type RoverConfig, type RoverSubgraph } from './rover-config.js';

export interface BuiltSupergraph {
  /**
   * The subgraphs: rover.yaml's, or those a composed supergraph file names (its `join__graph` entries,
   * each with the schema extracted from the file; `file` is then the supergraph file).
   */
  rover: RoverConfig;
  connections: Connections;
  compiled: CompiledConnections;
  /** The generated SDL of the Coordinator subgraph (schema/coordinator.graphql). */
  coordinatorSdl: string;
  supergraphSdl: string;
  /** Names this configuration in logs and on /readyz: a digest of the supergraph and the connections. */
  hash: string;
}

const apiSchemaOf = (sdl: string): GraphQLSchema => Supergraph.build(sdl).apiSchema().toGraphQLJSSchema();

/**
 * Composes the supergraph from rover.yaml and the connections config, and validates the connections
 * against it. The Coordinator subgraph's SDL is generated from the connections (one mutation per
 * filter), so the plugins are composed first, the connections checked against their Actions, then
 * everything composed together.
 */
export function buildSupergraph(files: { roverConfig: string; connections: string }): BuiltSupergraph {
  const rover = loadRoverConfig(files.roverConfig);
  const coordinator = rover.subgraphs.find((s) => s.name === COORDINATOR_SUBGRAPH);
  if (!coordinator) {
    throw new ConfigError(rover.file, [
      `subgraphs: the '${COORDINATOR_SUBGRAPH}' subgraph is missing; add it with schema file schema/coordinator.graphql`,
    ]);
  }
  return withCoordinator(rover, coordinator, files.connections);
}

/**
 * Builds on a composed supergraph file (`npm run compose`, or Rover's), as a router started with
 * `--supergraph` does: every Plugin subgraph is the one the file names, at its routing URL, and is not
 * recomposed from schema files. Only the Coordinator's own subgraph, generated from the connections, is
 * composed with the Plugins' schemas taken from the file (the file's own Coordinator subgraph, if any,
 * is replaced), so the connections are validated against exactly what the file routes to.
 */
export function buildSupergraphFromFile(files: {
  supergraphFile: string;
  connections: string;
}): BuiltSupergraph {
  const file = files.supergraphFile;
  let sdl: string;
  try {
    sdl = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(file, [`cannot be read: ${(error as Error).message}`]);
  }
  let supergraph: Supergraph;
  try {
    supergraph = Supergraph.build(sdl);
  } catch (error) {
    throw new ConfigError(file, [`is not a composed supergraph: ${(error as Error).message}`]);
  }
  const subgraphs: RoverSubgraph[] = [...supergraph.subgraphs().values()].map((subgraph) => ({
    name: subgraph.name,
    routingUrl: subgraph.url,
    schemaFile: file,
    // Not `subgraph.toString()`: it drops a Query type holding only `_entities`, yet keeps it as the root.
    typeDefs: print(subgraph.schema.toAST()),
  }));
  const coordinator: RoverSubgraph = subgraphs.find((s) => s.name === COORDINATOR_SUBGRAPH) ?? {
    name: COORDINATOR_SUBGRAPH,
    // In process: the URL is never called.
    routingUrl: 'http://127.0.0.1/graphql',
    schemaFile: file,
    typeDefs: '',
  };
  const federationVersion = /specs\.apollo\.dev\/join\/v([\d.]+)/.exec(sdl)?.[1] ?? '2';
  const rover: RoverConfig = {
    file,
    federationVersion,
    subgraphs: [coordinator, ...subgraphs.filter((s) => s !== coordinator)],
  };
  return withCoordinator(rover, coordinator, files.connections);
}

/** Checks the connections against the Plugins' Actions, then composes them with the Coordinator subgraph. */
function withCoordinator(
  rover: RoverConfig,
  coordinator: RoverSubgraph,
  connectionsFile: string,
): BuiltSupergraph {
  const plugins = rover.subgraphs.filter((s) => s !== coordinator);
  const toCompose = (list: readonly RoverSubgraph[]) =>
    list.map((s) => ({ name: s.name, url: s.routingUrl, typeDefs: s.typeDefs, file: s.schemaFile }));

  const connections = loadConnections(connectionsFile);
  // With no plugins there are no Actions: any step or receiver is then reported as unknown.
  const pluginsSchema = plugins.length
    ? apiSchemaOf(composeSupergraph(toCompose(plugins), { configFile: rover.file }).supergraphSdl)
    : buildSchema('type Query { _noPlugins: Boolean }');
  const compiled = compileConnections(connections, pluginsSchema, connectionsFile, fieldOwnership(plugins));
  const coordinatorSdl = coordinatorTypeDefs(connections, pluginsSchema);
  const { supergraphSdl } = composeSupergraph(
    [
      ...toCompose(plugins),
      {
        name: COORDINATOR_SUBGRAPH,
        url: coordinator.routingUrl,
        typeDefs: coordinatorSdl,
        file: coordinator.schemaFile,
      },
    ],
    { configFile: rover.file },
  );
  const hash = createHash('sha256')
    .update(supergraphSdl)
    .update('\0')
    .update(JSON.stringify(connections))
    .digest('hex')
    .slice(0, 16);
  return { rover, connections, compiled, coordinatorSdl, supergraphSdl, hash };
}
