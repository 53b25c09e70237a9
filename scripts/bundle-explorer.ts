// Bundles the offline explorer (GraphiQL, gateway/explorer/page/) into gateway/explorer/bundle/
// (git-ignored): the landing page falls back to it when Apollo Sandbox cannot load from its CDN.
// Run by `npm run build:explorer`, after every install (postinstall) and by the production build.
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const page = fileURLToPath(new URL('../gateway/explorer/page/', import.meta.url));
const bundle = fileURLToPath(new URL('../gateway/explorer/bundle/', import.meta.url));

await mkdir(bundle, { recursive: true });
await build({
  entryPoints: { explorer: `${page}explorer.js` },
  outdir: bundle,
  bundle: true,
  minify: true,
  format: 'iife',
  target: 'es2022',
  define: { 'process.env.NODE_ENV': '"production"' },
  // GraphiQL's stylesheet names fonts and images it ships; they are inlined, never fetched elsewhere.
  loader: {
    '.woff': 'dataurl',
    '.woff2': 'dataurl',
    '.ttf': 'dataurl',
    '.svg': 'dataurl',
    '.png': 'dataurl',
  },
  logLevel: 'warning',
  legalComments: 'eof',
});
await copyFile(`${page}index.html`, `${bundle}index.html`);
