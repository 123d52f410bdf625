import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

export default defineConfig({
  resolve: {
    // graphql 16 has no "exports" map: Node resolves it to its CommonJS build
    // (as Yoga and Pothos do at runtime), Vite to its ES build. Two copies mean
    // two GraphQLError classes; make tests resolve it the way Node does.
    alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }],
  },
  test: {
    include: ['test/**/*.test.ts', 'client/test/**/*.test.ts', 'web/test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Each file gets its own database and servers; files run in parallel.
    pool: 'forks',
  },
});
