// The behaviour suite against the CommonJS entry point, required by the package's own name.
// eslint-disable-next-line @typescript-eslint/no-require-imports -- this file tests the CJS entry point
const lib = require('bulwark');

const bunVersion = globalThis.Bun?.version;
const runtime = bunVersion === undefined ? `node ${process.version}` : `bun ${bunVersion}`;
import('./suite.mjs')
  .then(({ runSuite }) => runSuite(lib, `${runtime} cjs`))
  .then(({ failed }) => {
    process.exitCode = failed.length === 0 ? 0 : 1;
  })
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
