import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

export default defineConfig({
  resolve: {
    // Node loads graphql's CommonJS build (as the Apollo packages do); Vite would pick its .mjs build,
    // and graphql refuses types that cross the two copies.
    alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }],
  },
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests start servers and databases; files run in parallel, tests in a file in order.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    env: { APOLLO_TELEMETRY_DISABLED: '1' },
    // The side-loading fixtures are installed packages importing the Plugin SDK, which is TypeScript
    // source: Vite transforms them, as tsx does for `npm start`, instead of handing them to Node.
    server: { deps: { inline: [/test\/fixtures\/side-loading\/node_modules\//] } },
  },
});
