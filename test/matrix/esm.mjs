// The behaviour suite against the ESM entry point, imported by the package's own name (its `exports`
// map), then isResilienceError across the ESM and CJS copies loaded side by side.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as esm from 'bulwark';
import { runSuite } from './suite.mjs';

const bunVersion = globalThis.Bun?.version;
const runtime = bunVersion === undefined ? `node ${process.version}` : `bun ${bunVersion}`;
const { failed } = await runSuite(esm, `${runtime} esm`);

let dualFailed = false;
try {
  const cjs = createRequire(import.meta.url)('bulwark');
  assert.notEqual(cjs.TimeoutError, esm.TimeoutError);
  assert.equal(esm.isResilienceError(new cjs.TimeoutError(5)), true);
  assert.equal(cjs.isResilienceError(new esm.CircuitOpenError(5)), true);
  console.log(`[${runtime} esm+cjs] isResilienceError works across the two copies`);
} catch (error) {
  dualFailed = true;
  console.error(`  ✗ [${runtime} esm+cjs] isResilienceError across copies\n    ${String(error)}`);
}
process.exitCode = failed.length === 0 && !dualFailed ? 0 : 1;
