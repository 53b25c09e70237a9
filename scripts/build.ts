// `npm run build`: the Coordinator as plain JavaScript under dist/, laid out as the repository is, so
// that `node dist/gateway/main.js` needs Node and the production dependencies only. Each TypeScript file
// is transpiled on its own (esbuild; `npm run typecheck` checks the types), and the files the server
// reads at run time are copied beside them.
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
/** dist/, or the folder given (inside the repository, so that node_modules resolves from it). */
const out = resolve(root, process.argv[2] ?? 'dist');

/** What the server runs: every TypeScript file under these folders is compiled. */
const SOURCES = ['gateway', 'subgraphs', 'services', 'schema', 'prisma', 'launcher'];
const SDK = '@commerce-coordinator/plugin-sdk';
/**
 * What it reads at run time, copied as is: the supergraph, connections and flags files, the schemas,
 * the migrations and the inspector's page. A folder is copied with its files of these extensions.
 */
const ASSETS = [
  'rover.yaml',
  'connections.yaml',
  'flags.json',
  'schema',
  'subgraphs',
  'prisma',
  'gateway/inspector/static',
];
const ASSET_EXTENSIONS = /\.(graphql|prisma|sql|toml|html|js|css|svg|png)$/;

/** The files under `dir` (relative to the root) whose names match `pattern`. */
async function filesUnder(dir: string, pattern: RegExp): Promise<string[]> {
  const entries = await readdir(join(root, dir), { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && pattern.test(entry.name))
    .map((entry) => join(entry.parentPath, entry.name).slice(root.length));
}

const started = performance.now();
await rm(out, { recursive: true, force: true });
const modules: string[] = [];
for (const source of SOURCES) modules.push(...(await filesUnder(source, /(?<!\.d)\.ts$/)));
const compile = {
  absWorkingDir: root,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
} as const;
await build({ ...compile, entryPoints: modules, outdir: out, outbase: root });
// The Plugin SDK is TypeScript that tsx and vitest load from its workspace folder; under dist/ it is a
// compiled package of its own, which Node finds (dist/node_modules) before the workspace link.
const sdkOut = join(out, 'node_modules', SDK);
const sdkModules = await filesUnder(`packages/plugin-sdk/src`, /(?<!\.d)\.ts$/);
await build({
  ...compile,
  entryPoints: sdkModules,
  outdir: sdkOut,
  outbase: join(root, 'packages/plugin-sdk'),
});
const sdkPackage = await readFile(join(root, 'packages/plugin-sdk/package.json'), 'utf8');
await writeFile(
  join(sdkOut, 'package.json'),
  JSON.stringify(
    JSON.parse(sdkPackage, (key, value: unknown) =>
      key === 'types' ? undefined : typeof value === 'string' ? value.replace(/\.ts$/, '.js') : value,
    ),
    null,
    2,
  ),
);
const assets: string[] = [];
for (const asset of ASSETS)
  assets.push(...(/\.\w+$/.test(asset) ? [asset] : await filesUnder(asset, ASSET_EXTENSIONS)));
for (const file of assets) {
  await mkdir(dirname(join(out, file)), { recursive: true });
  await cp(join(root, file), join(out, file));
}
console.log(
  `${out.slice(root.length)}/: ${modules.length + sdkModules.length} modules and ${assets.length} files in ${Math.round(performance.now() - started)} ms`,
);
