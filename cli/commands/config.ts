import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command } from 'commander';
import type { Plugin } from '@commerce-coordinator/plugin-sdk';
import { CliError } from '../errors.js';
import { createOutput, print } from '../output.js';

/** One check of `config check`: what it read, and the problems it found (none: it passes). */
export interface Check {
  check: string;
  /** The file or variables it read. */
  subject: string;
  problems: string[];
  /** Said when the check passes with a caveat (e.g. nothing to read). */
  note?: string;
}

/** A ConfigError's problems, or any other error's message, as a check's problems. */
async function problemsOf(run: () => unknown): Promise<string[]> {
  try {
    await run();
    return [];
  } catch (error) {
    const { ConfigError } = await import('../../gateway/errors.js');
    if (error instanceof ConfigError) return [...error.problems];
    return [(error as Error).message];
  }
}

/**
 * Checks what the Coordinator reads at start-up, without starting it, through the gateway's own
 * readers: the environment (readEnv and what derives from it), rover.yaml, the connections file on its
 * own and against the composed supergraph (buildSupergraph), the flags file (parseFlagsFile), and the
 * variables of every Plugin that runs in process: the readers it declares (`definePlugin({ config })`),
 * which the Coordinator runs at start in production.
 */
export async function runChecks(env: NodeJS.ProcessEnv = process.env): Promise<Check[]> {
  const envModule = await import('../../gateway/env.js');
  const checks: Check[] = [];
  let parsed: ReturnType<typeof envModule.readEnv> | undefined;
  checks.push({
    check: 'environment',
    subject: 'the variables of gateway/env.ts',
    problems: await problemsOf(() => {
      parsed = envModule.readEnv(env);
      envModule.authOptions(parsed);
      envModule.connectionLimits(parsed);
      envModule.operationLimits(parsed);
    }),
  });
  // The files are checked where the Coordinator would find them, even when a variable is invalid.
  const fallback = envModule.envSchema.parse({});
  const settings = parsed ?? fallback;
  const roverFile = resolve(env.ROVER_CONFIG || settings.ROVER_CONFIG);
  const connectionsFile = resolve(env.CONNECTIONS_FILE || settings.CONNECTIONS_FILE);
  const { loadRoverConfig } = await import('../../gateway/federation/rover-config.js');
  const { loadConnections } = await import('../../gateway/connections/compile.js');
  const { buildSupergraph } = await import('../../gateway/federation/supergraph.js');
  let rover: ReturnType<typeof loadRoverConfig> | undefined;
  checks.push({
    check: 'rover config',
    subject: roverFile,
    problems: await problemsOf(() => (rover = loadRoverConfig(roverFile, { env }))),
  });
  const connectionsProblems = await problemsOf(() => loadConnections(connectionsFile));
  checks.push({ check: 'connections', subject: connectionsFile, problems: connectionsProblems });
  if (rover && !connectionsProblems.length)
    checks.push({
      check: 'supergraph',
      subject: 'the connections against the composed supergraph',
      problems: await problemsOf(() =>
        buildSupergraph({ roverConfig: roverFile, connections: connectionsFile }),
      ),
    });
  checks.push(await flagsCheck(env, settings));
  if (rover) checks.push(...(await pluginChecks(env, settings, rover)));
  return checks;
}

async function flagsCheck(
  env: NodeJS.ProcessEnv,
  settings: { LAUNCHDARKLY_SDK_KEY?: string; FLAGS_FILE: string },
): Promise<Check> {
  if (settings.LAUNCHDARKLY_SDK_KEY)
    return {
      check: 'flags',
      subject: 'LAUNCHDARKLY_SDK_KEY',
      problems: [],
      note: 'flags come from LaunchDarkly (the key is not tried here)',
    };
  const file = resolve(env.FLAGS_FILE || settings.FLAGS_FILE);
  const { parseFlagsFile } = await import('../../gateway/flags/flags.js');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    return { check: 'flags', subject: file, problems: [`cannot read it: ${(error as Error).message}`] };
  }
  return { check: 'flags', subject: file, problems: parseFlagsFile(text).problems ?? [] };
}

async function pluginChecks(
  env: NodeJS.ProcessEnv,
  settings: {
    SERVICES?: string;
    NODE_ENV: string;
    REMOTE_SUBGRAPHS: string[];
    SUBGRAPHS_DIR: string;
    SUBGRAPH_SIGNING_SECRET?: string;
  },
  rover: { subgraphs: Array<{ name: string }> },
): Promise<Check[]> {
  const { COORDINATOR_SUBGRAPH } = await import('../../gateway/flows/api.js');
  const { signingSecretProblem } = await import('@commerce-coordinator/plugin-sdk/call-assertion');
  const { pluginConfigProblems } = await import('../../gateway/plugins/plugin-config.js');
  const services = settings.SERVICES ?? (settings.NODE_ENV === 'production' ? 'configured' : 'stand-ins');
  const remote = (name: string) =>
    settings.REMOTE_SUBGRAPHS.includes('*') || settings.REMOTE_SUBGRAPHS.includes(name);
  const dir = resolve(env.SUBGRAPHS_DIR || settings.SUBGRAPHS_DIR);
  const checks: Check[] = [];
  const remotes = rover.subgraphs.filter((s) => s.name !== COORDINATOR_SUBGRAPH && remote(s.name));
  if (remotes.length) {
    const problem = signingSecretProblem(settings.SUBGRAPH_SIGNING_SECRET);
    checks.push({
      check: 'remote subgraphs',
      subject: `REMOTE_SUBGRAPHS (${remotes.map((s) => s.name).join(', ')})`,
      problems: problem ? [`SUBGRAPH_SIGNING_SECRET: ${problem}`] : [],
    });
  }
  for (const { name } of rover.subgraphs) {
    if (name === COORDINATOR_SUBGRAPH || remote(name)) continue;
    const file = resolve(dir, name, 'index.ts');
    const check = { check: `plugin ${name}`, subject: file };
    let plugin: Plugin | undefined;
    const loadProblems = await problemsOf(
      async () => (plugin = ((await import(pathToFileURL(file).href)) as { default?: Plugin }).default),
    );
    if (loadProblems.length) {
      checks.push({ ...check, problems: loadProblems.map((p) => `cannot load it: ${p}`) });
      continue;
    }
    if (!plugin?.config?.length) {
      checks.push({ ...check, problems: [], note: 'no variables of its own' });
      continue;
    }
    if (services === 'stand-ins') {
      checks.push({
        ...check,
        problems: [],
        note: 'SERVICES=stand-ins: the stand-ins supply what is unset (SERVICES=configured checks them)',
      });
      continue;
    }
    // The readers the Coordinator runs at start in production, with the problems it would stop on.
    const problems = pluginConfigProblems([plugin], env).map((p) => p.replace(`${name} plugin: `, ''));
    checks.push({ ...check, problems });
  }
  return checks;
}

export function configCommand(): Command {
  const config = new Command('config').description("The Coordinator's configuration");
  config
    .command('check')
    .description(
      'Check the environment, rover.yaml, the connections file, the flags file and every Plugin’s variables, without starting the server; exits 1 on any problem',
    )
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const output = createOutput(options.json ?? false);
      const checks = await runChecks();
      const failed = checks.filter((c) => c.problems.length);
      print(output, { ok: !failed.length, checks }, () =>
        checks
          .map((c) => {
            const head = `${c.problems.length ? '✗' : '✓'} ${c.check}: ${c.subject}${c.note ? ` (${c.note})` : ''}`;
            return [head, ...c.problems.map((p) => `    - ${p}`)].join('\n');
          })
          .join('\n'),
      );
      if (failed.length)
        throw new CliError(
          `${failed.length} check${failed.length === 1 ? '' : 's'} failed: ${failed.map((c) => c.check).join(', ')}`,
        );
    });
  return config;
}
