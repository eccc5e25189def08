import { defineConfig, mergeConfig } from 'vitest/config';
import base from '../../vitest.config.js';

/**
 * The unit and property tests that exercise src/ directly, for Stryker (`npm run mutation`). Left out:
 * type tests, the example apps, and the tests that run the built package in dist/ (the soak and the allocation budget),
 * which no mutant of src/ can reach.
 */
export default mergeConfig(
  base,
  defineConfig({
    test: {
      exclude: [
        'test/soak.test.ts',
        'test/alloc-budget.test.ts',
        'test/matrix/**',
        // The example apps over real HTTP: their timing-bound checks loosen on a loaded machine, and every
        // policy they use has unit tests here.
        'test/examples/**',
        // The real redis-server suites: bound by real time under load; the policies' logic has unit tests with
        // in-memory stores, and src/redis is not mutated.
        'test/redis/**',
        '**/node_modules/**',
      ],
      // vitest's default 5 s per test, as in `npm test` (tests that need longer say so themselves): a mutant that
      // leaves a promise pending then fails its test in 5 s, where Stryker's own timeout would kill and restart
      // the whole runner (about 30 s each, which made the run take many hours).
      testTimeout: 5_000,
      hookTimeout: 30_000,
      typecheck: { enabled: false },
      coverage: { enabled: false },
    },
  }),
);
