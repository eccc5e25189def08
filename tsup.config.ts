import { defineConfig } from 'tsup';

export default defineConfig({
  // Each subpath entry has a matching entry in package.json "exports"; its peer dependency stays
  // external (tsup leaves peerDependencies out of the bundle).
  entry: ['src/index.ts', 'src/otel/index.ts', 'src/redis/index.ts', 'src/testing/index.ts'],
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
