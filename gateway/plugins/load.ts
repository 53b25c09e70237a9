import { createRequire } from 'node:module';
import { dirname, extname, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parse, print, type DocumentNode } from 'graphql';
import type { Plugin } from '@commerce-coordinator/plugin-sdk';
import { ConfigError } from '../errors.js';
import type { RoverSubgraph } from '../federation/rover-config.js';

export interface LoadPluginOptions {
  /** rover.yaml: the file every problem names, and where a `package` is resolved from. */
  roverFile: string;
  /** In-repo Plugins are `<subgraphsDir>/<name>/index.ts` (`index.js` when built). */
  subgraphsDir: string;
}

/** `.ts` under tsx, `.js` once built: an in-repo Plugin's entry module is compiled with the gateway. */
const MODULE_EXTENSION = extname(fileURLToPath(import.meta.url));

/** Where a Plugin's module is: its folder in the repository, or an installed package rover.yaml names. */
type PluginSource = { kind: 'folder'; file: string } | { kind: 'package'; name: string; file: string };

/**
 * Loads the Plugin that serves `subgraph` in process, from its folder or from the npm package its
 * rover.yaml entry names, and checks it the same way either way: it default-exports definePlugin with
 * the subgraph's name (definePlugin has checked its access declarations), and its schema is the one
 * rover.yaml composes. Every problem is a ConfigError naming the subgraph and where the Plugin came from.
 */
export async function loadPlugin(subgraph: RoverSubgraph, options: LoadPluginOptions): Promise<Plugin> {
  const { name } = subgraph;
  const source = locate(subgraph, options);
  const problem = (text: string) => new ConfigError(options.roverFile, [`subgraphs.${name}${text}`]);
  let module: { default?: unknown };
  try {
    module = (await import(pathToFileURL(source.file).href)) as { default?: unknown };
  } catch (error) {
    const reason = (error as Error).message;
    throw source.kind === 'package'
      ? problem(`.package: '${source.name}' failed to load: ${reason}`)
      : problem(
          `: no in-process plugin at ${source.file} (${reason.split('\n')[0]}); add it, or list '${name}' in REMOTE_SUBGRAPHS to call its routing_url`,
        );
  }
  const plugin = module.default;
  if (!isPlugin(plugin) || plugin.name !== name) {
    const from =
      source.kind === 'package' ? `.package: '${source.name}' (${source.file})` : `: ${source.file}`;
    throw problem(
      `${from} must default-export definePlugin({ name: '${name}', ... }) from @commerce-coordinator/plugin-sdk`,
    );
  }
  const difference = firstDifference(plugin.typeDefs, subgraph.typeDefs);
  if (difference) {
    const shipped = source.kind === 'package' ? `'${source.name}'` : source.file;
    throw problem(
      `: the schema ${shipped} serves differs from ${relative(dirname(resolve(options.roverFile)), subgraph.schemaFile)}, which rover.yaml composes (${difference}); point schema.file at the schema the Plugin ships`,
    );
  }
  return plugin;
}

function locate(subgraph: RoverSubgraph, options: LoadPluginOptions): PluginSource {
  if (!subgraph.package)
    return { kind: 'folder', file: resolve(options.subgraphsDir, subgraph.name, `index${MODULE_EXTENSION}`) };
  // Node's own resolution (node_modules, the package's "exports"), from rover.yaml's folder: the project
  // root, where `npm install` put the package.
  const from = resolve(options.roverFile);
  const name = subgraph.package;
  try {
    return { kind: 'package', name, file: createRequire(from).resolve(name) };
  } catch (error) {
    const code = (error as { code?: string }).code;
    const reason =
      code === 'MODULE_NOT_FOUND'
        ? `is not installed (looked in the node_modules above ${dirname(from)}): npm install ${name}`
        : code === 'ERR_PACKAGE_PATH_NOT_EXPORTED'
          ? 'exports nothing to import: its package.json "exports" needs "." with a "default" condition'
          : `cannot be resolved: ${(error as Error).message.split('\n')[0]}`;
    throw new ConfigError(options.roverFile, [`subgraphs.${subgraph.name}.package: '${name}' ${reason}`]);
  }
}

/** By shape, not `instanceof`: a side-loaded Plugin's graphql and SDK may be copies of their own. */
function isPlugin(value: unknown): value is Plugin {
  const plugin = value as Partial<Plugin> | undefined;
  return (
    typeof plugin?.name === 'string' &&
    typeof plugin.schema === 'object' &&
    (plugin.typeDefs as DocumentNode | undefined)?.kind === 'Document'
  );
}

/** Where two SDLs first differ once printed the same way (comments and layout aside); none if equal. */
function firstDifference(served: DocumentNode, composed: string): string | undefined {
  const a = print(served).split('\n');
  const b = print(parse(composed, { noLocation: true })).split('\n');
  for (let i = 0; i < Math.max(a.length, b.length); i++)
    if (a[i] !== b[i])
      return `the Plugin has ${JSON.stringify(a[i]?.trim() ?? '(end)')} where rover.yaml's has ${JSON.stringify(b[i]?.trim() ?? '(end)')}`;
  return undefined;
}
