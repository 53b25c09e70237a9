import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { GraphQLError, parse, Source } from 'graphql';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors.js';

/**
 * `rover.yaml` in Rover's supergraph config format, so that `rover supergraph compose --config
 * rover.yaml` gives users with Rover the same supergraph the gateway composes in-process.
 */
export interface RoverConfig {
  /** The config file, as given. */
  file: string;
  /** As written, e.g. `=2.14.4`, or `2` for "latest 2.x". */
  federationVersion: string;
  subgraphs: RoverSubgraph[];
}

export interface RoverSubgraph {
  name: string;
  routingUrl: string;
  /** Absolute path of the schema file (written relative to the config file). */
  schemaFile: string;
  /** The schema file's content; it parses as GraphQL. */
  typeDefs: string;
  /**
   * An installed npm package that is this Plugin (its default export), instead of
   * `<subgraphsDir>/<name>/index.ts`. The Coordinator's own key: Rover ignores keys it does not know.
   */
  package?: string;
}

type Env = Readonly<Record<string, string | undefined>>;

export interface LoadRoverConfigOptions {
  /** Where `${env.NAME}` is looked up. @default process.env */
  env?: Env;
}

// Rover's own sources other than `file` need a network or GraphOS at composition time.
const UNSUPPORTED_SOURCES: Record<string, string> = {
  subgraph_url: 'introspecting a running subgraph',
  introspection_headers: 'introspecting a running subgraph',
  graphref: 'fetching from GraphOS',
  subgraph: 'fetching from GraphOS',
  sdl: 'inline SDL',
};

const federationVersion = z
  .union([z.string(), z.number()])
  .transform(String)
  .refine((v) => /^(?:2|[=v]2\.\d+\.\d+(?:-[\w.]+)?)$/.test(v), {
    message: 'must be "2" or an exact Federation 2 version such as "=2.14.4" (Federation 1 is not supported)',
  });

const configSchema = z.strictObject({
  federation_version: federationVersion,
  subgraphs: z
    .record(
      z
        .string()
        .regex(
          /^[A-Za-z][\w-]*$/,
          'a subgraph name starts with a letter and holds letters, digits, "_" and "-"',
        ),
      z.strictObject({
        routing_url: z.string().refine((u) => URL.canParse(u), { message: 'is not a URL' }),
        schema: z.strictObject({ file: z.string().min(1) }),
        package: z
          .string()
          .regex(/^(?:@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*$/, 'is not an npm package name')
          .optional(),
      }),
    )
    .refine((s) => Object.keys(s).length > 0, { message: 'lists no subgraph' }),
});

/**
 * Reads and checks a Rover supergraph config: YAML, `${env.NAME}` / `${env.NAME:-default}` expanded in
 * values as Rover does, every schema file present and parsing. Throws one `ConfigError` listing every
 * problem, each naming the subgraph and the key.
 */
export function loadRoverConfig(file: string, options: LoadRoverConfigOptions = {}): RoverConfig {
  const env = options.env ?? process.env;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(file, [`cannot be read: ${(error as Error).message}`]);
  }

  const document = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (document.errors.length) {
    throw new ConfigError(
      file,
      document.errors.map((e) => `is not valid YAML: ${e.message}`),
    );
  }

  const problems: string[] = [];
  const expanded = expandValues(document.toJS(), env, [], problems);
  if (problems.length) throw new ConfigError(file, problems);

  problems.push(...unsupportedSources(expanded));
  const parsed = configSchema.safeParse(expanded);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const at = issue.path.join('.') || 'the top level';
      if (issue.code === 'unrecognized_keys') {
        const keys = issue.keys.filter((k) => !(issue.path.at(-1) === 'schema' && k in UNSUPPORTED_SOURCES));
        if (keys.length) problems.push(`${at}: unknown key ${keys.map((k) => `"${k}"`).join(', ')}`);
      } else {
        problems.push(`${at}: ${issue.message}`);
      }
    }
    throw new ConfigError(file, problems);
  }
  if (problems.length) throw new ConfigError(file, problems);

  const base = dirname(resolve(file));
  const subgraphs: RoverSubgraph[] = [];
  for (const [name, subgraph] of Object.entries(parsed.data.subgraphs)) {
    const at = `subgraphs.${name}.schema.file`;
    const schemaFile = resolve(base, subgraph.schema.file);
    if (!existsSync(schemaFile)) {
      problems.push(
        `${at}: "${subgraph.schema.file}" does not exist (looked for ${schemaFile}); paths are relative to ${file}`,
      );
      continue;
    }
    let typeDefs: string;
    try {
      typeDefs = readFileSync(schemaFile, 'utf8');
      parse(new Source(typeDefs, schemaFile));
    } catch (error) {
      problems.push(
        `${at}: ${error instanceof GraphQLError ? formatSyntaxError(error, schemaFile) : (error as Error).message}`,
      );
      continue;
    }
    subgraphs.push({
      name,
      routingUrl: subgraph.routing_url,
      schemaFile,
      typeDefs,
      ...(subgraph.package ? { package: subgraph.package } : {}),
    });
  }
  if (problems.length) throw new ConfigError(file, problems);

  return { file, federationVersion: parsed.data.federation_version, subgraphs };
}

function formatSyntaxError(error: GraphQLError, schemaFile: string): string {
  const at = error.locations?.[0];
  return `${schemaFile}${at ? `:${at.line}:${at.column}` : ''}: the schema does not parse: ${error.message}`;
}

function unsupportedSources(config: unknown): string[] {
  const subgraphs = (config as { subgraphs?: unknown } | null)?.subgraphs;
  if (!subgraphs || typeof subgraphs !== 'object') return [];
  const problems: string[] = [];
  for (const [name, subgraph] of Object.entries(subgraphs)) {
    const schema = (subgraph as { schema?: unknown } | null)?.schema;
    if (!schema || typeof schema !== 'object') continue;
    for (const key of Object.keys(schema)) {
      if (key in UNSUPPORTED_SOURCES) {
        problems.push(
          `subgraphs.${name}.schema.${key}: Rover's ${UNSUPPORTED_SOURCES[key]} is not supported; the gateway composes ` +
            'from schema files at start-up, so give "schema: { file: <path> }"',
        );
      }
    }
  }
  return problems;
}

/** Expands string values (never keys), as Rover does for its config files. */
function expandValues(value: unknown, env: Env, path: string[], problems: string[]): unknown {
  if (typeof value === 'string') return expandString(value, env, path.join('.') || 'the top level', problems);
  if (Array.isArray(value)) return value.map((v, i) => expandValues(v, env, [...path, String(i)], problems));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, expandValues(v, env, [...path, k], problems)]),
    );
  }
  return value;
}

/**
 * Rover's expansion (shellexpand with Rover's lookup): `${env.NAME}` is the variable's value (an error
 * if unset), `${env.NAME:-default}` falls back to the default when unset, `$$` is a literal `$`, and a
 * `$NAME` or `${other}` reference is an error. Rover's `${file.path}` is not supported here.
 */
function expandString(input: string, env: Env, at: string, problems: string[]): string {
  let out = '';
  let i = 0;
  while (i < input.length) {
    const dollar = input.indexOf('$', i);
    if (dollar < 0) {
      out += input.slice(i);
      break;
    }
    out += input.slice(i, dollar);
    const next = input[dollar + 1];
    const close = next === '{' ? input.indexOf('}', dollar) : -1;
    if (next === '{' && close >= 0) {
      const body = input.slice(dollar + 2, close);
      const separator = body.indexOf(':-');
      const name = separator >= 0 ? body.slice(0, separator) : body;
      const fallback = separator >= 0 ? body.slice(separator + 2) : undefined;
      if (name.startsWith('env.')) {
        const value = env[name.slice(4)];
        if (value !== undefined) out += value;
        else if (fallback !== undefined) out += fallback;
        else
          problems.push(
            `${at}: "\${${name}}" is not set; set the ${name.slice(4)} environment variable or give a default: "\${${name}:-value}"`,
          );
      } else {
        problems.push(
          `${at}: "\${${body}}" is not a supported expansion; use "\${env.NAME}" or "\${env.NAME:-default}" (write "$$" for a literal "$")`,
        );
      }
      i = close + 1;
    } else if (next !== undefined && /\w/.test(next)) {
      const name = /^\w+/.exec(input.slice(dollar + 1))![0];
      problems.push(
        `${at}: "$${name}" is not a supported expansion; use "\${env.${name}}" (write "$$" for a literal "$")`,
      );
      i = dollar + 1 + name.length;
    } else {
      // `$$` is an escaped `$`; a `$` before anything else (or an unclosed `${`) stays as it is.
      out += '$';
      i = dollar + (next === '$' ? 2 : 1);
    }
  }
  return out;
}
