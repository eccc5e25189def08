// The behaviour suite inside a Cloudflare Worker: miniflare (from the npm registry, passed as the first
// argument: the folder it is installed in) runs worker.mjs in workerd, next to the ESM bundle; one request
// runs the suite, and the JSON answer is printed here. Exit code 0 when every case passed.
//
//   node test/matrix/workerd.mjs <folder with node_modules/miniflare>
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../..');
const folder = process.argv[2];
if (folder === undefined) {
  console.error('usage: node test/matrix/workerd.mjs <folder with node_modules/miniflare>');
  process.exit(2);
}
const require = createRequire(join(folder, 'package.json'));
const { Miniflare } = await import(pathToFileURL(require.resolve('miniflare')).href);
const workerdVersion = JSON.parse(
  readFileSync(require.resolve('workerd/package.json'), 'utf8'),
).version;

const source = (file) => readFileSync(file, 'utf8');
const mf = new Miniflare({
  compatibilityDate: '2025-09-01',
  modules: [
    { type: 'ESModule', path: 'worker.mjs', contents: source(join(here, 'worker.mjs')) },
    { type: 'ESModule', path: 'bulwark.mjs', contents: source(join(root, 'dist/index.js')) },
    { type: 'ESModule', path: 'suite.mjs', contents: source(join(here, 'suite.mjs')) },
    { type: 'ESModule', path: 'assert.mjs', contents: source(join(here, 'assert.mjs')) },
  ],
});
let ok = false;
try {
  const label = `workerd ${workerdVersion} esm`;
  const response = await mf.dispatchFetch(`http://localhost/?label=${encodeURIComponent(label)}`);
  const { failed, lines } = await response.json();
  for (const line of lines) console.log(line);
  ok = failed.length === 0;
} finally {
  await mf.dispose();
}
process.exitCode = ok ? 0 : 1;
