import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { transformWithEsbuild, type Plugin } from 'vite';
import { defineConfig, type TestProjectInlineConfiguration } from 'vitest/config';

/**
 * Vite 8 (used by vitest 4) transforms TypeScript with oxc, which does not lower
 * TC39 standard decorators (tests using `@dec` fail with
 * "SyntaxError: Invalid or unexpected token"). So oxc is turned off and this
 * plugin transforms .ts/.mts/.cts files with esbuild instead:
 * - files under test/legacy/ and examples/nestjs/ get legacy `experimentalDecorators` semantics
 *   (NestJS style: `(target, key, descriptor)`);
 * - all other files get standard TC39 decorators, lowered to ES2022.
 */
function esbuildTypeScript(): Plugin {
  return {
    name: 'bulwark:esbuild-typescript',
    enforce: 'pre',
    async transform(code, id) {
      const file = id.split('?', 1)[0] ?? id;
      if (!/\.[cm]?ts$/.test(file) || file.includes('/node_modules/')) {
        return null;
      }
      const legacy = file.includes('/test/legacy/') || file.includes('/examples/nestjs/');
      const result = await transformWithEsbuild(
        code,
        file,
        {
          loader: 'ts',
          format: 'esm',
          target: 'es2022',
          sourcemap: true,
          tsconfigRaw: {
            compilerOptions: legacy
              ? { experimentalDecorators: true, useDefineForClassFields: false }
              : { experimentalDecorators: false, useDefineForClassFields: true },
          },
        },
        undefined,
        undefined,
        undefined,
        true, // ignoreEsbuildWarning: silence the "transformWithEsbuild is deprecated" notice
      );
      return { code: result.code, map: result.map };
    },
  };
}

/**
 * Whether the Redis suites can run here: a redis-server (and redis-cli, which creates the test cluster)
 * is installed, or CI requires them (BULWARK_REQUIRE_REDIS=1: then a missing one fails the suites).
 */
const redisHere =
  process.env.BULWARK_REQUIRE_REDIS === '1' ||
  (spawnSync('redis-server', ['--version']).status === 0 &&
    spawnSync('redis-cli', ['--version']).status === 0);

/** The Redis suites again: on node-redis, and on a 3-master Redis Cluster (see test/redis/server.ts). */
const redisProjects: TestProjectInlineConfiguration[] = [
  {
    extends: true,
    test: {
      name: 'redis:node-redis',
      include: ['test/redis/**/*.test.ts'],
      env: { BULWARK_REDIS_CLIENT: 'node-redis' },
    },
  },
  {
    extends: true,
    test: {
      name: 'redis:cluster',
      include: ['test/redis/**/*.test.ts'],
      env: { BULWARK_REDIS_CLUSTER: '1' },
      // Starting (or restarting) a cluster and waiting for cluster_state:ok takes seconds.
      testTimeout: 30_000,
      hookTimeout: 120_000,
    },
  },
];

export default defineConfig({
  oxc: false,
  plugins: [esbuildTypeScript()],
  // examples/ import the package by name, as users do; in tests that is the local source.
  resolve: {
    alias: [
      { find: /^bulwark$/, replacement: fileURLToPath(new URL('src/index.ts', import.meta.url)) },
    ],
  },
  test: {
    pool: 'forks',
    // The Redis suites (test/redis/) run three times: on ioredis with every other test, then on
    // node-redis, then on a 3-master Redis Cluster that test/redis/server.ts starts (through ioredis
    // Cluster). One suite, parametrised by environment: see test/redis/server.ts. Without a
    // redis-server (and redis-cli) they run (and skip, saying why) once.
    projects: [
      {
        extends: true,
        test: {
          name: 'bulwark',
          include: ['test/**/*.test.ts'],
          typecheck: {
            enabled: true,
            include: ['test/**/*.test-d.ts'],
            tsconfig: './tsconfig.json',
          },
        },
      },
      ...(redisHere ? redisProjects : []),
    ],
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      reporter: ['text-summary', 'text'],
      thresholds: {
        lines: 95,
        branches: 95,
        functions: 95,
        statements: 95,
      },
    },
  },
});
