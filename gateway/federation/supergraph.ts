import { Supergraph } from '@apollo/federation-internals';
import { buildSchema, type GraphQLSchema } from 'graphql';
import { compileConnections, loadConnections, type CompiledConnections } from '../connections/compile.js';
import { fieldOwnership } from './field-ownership.js';
import type { Connections } from '../connections/schema.js';
import { ConfigError } from '../errors.js';
import { COORDINATOR_SUBGRAPH, coordinatorTypeDefs } from '../flows/api.js';
import { composeSupergraph } from './compose.js';
import { loadRoverConfig, type RoverConfig } from './rover-config.js';

export interface BuiltSupergraph {
  rover: RoverConfig;
  connections: Connections;
  compiled: CompiledConnections;
  /** The generated SDL of the Coordinator subgraph (schema/coordinator.graphql). */
  coordinatorSdl: string;
  supergraphSdl: string;
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
  const plugins = rover.subgraphs.filter((s) => s !== coordinator);
  const toCompose = (list: typeof rover.subgraphs) =>
    list.map((s) => ({ name: s.name, url: s.routingUrl, typeDefs: s.typeDefs, file: s.schemaFile }));

  const connections = loadConnections(files.connections);
  // With no plugins there are no Actions: any step or receiver is then reported as unknown.
  const pluginsSchema = plugins.length
    ? apiSchemaOf(composeSupergraph(toCompose(plugins), { configFile: rover.file }).supergraphSdl)
    : buildSchema('type Query { _noPlugins: Boolean }');
  const compiled = compileConnections(connections, pluginsSchema, files.connections, fieldOwnership(plugins));
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
  return { rover, connections, compiled, coordinatorSdl, supergraphSdl };
}
