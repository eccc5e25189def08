import { defineConfig } from 'tsup';

export default defineConfig({
  // Later also: 'src/redis/index.ts' and 'src/otel/index.ts' (add matching
  // "./redis" and "./otel" entries to package.json "exports").
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  splitting: false,
  treeshake: true,
  // tsconfig.json also covers test/ and bench/; tsup only bundles the entries above
  // and builds the .d.ts files from them.
  tsconfig: 'tsconfig.json',
});
