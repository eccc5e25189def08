// Runtime matrix: runs the behaviour suite (test/matrix/suite.mjs) against the BUILT package on every
// JavaScript runtime bulwark supports, and prints one table of pass/fail.
//
//   npm run test:matrix                         every runtime
//   npm run test:matrix -- node22 bun deno      some of them
//
//   node20 node22 node24 bun   ESM and CJS entry points, imported by the package's name (esm.mjs, cjs.cjs)
//   deno                       the ESM bundle as a web-style module, no permissions (deno.mjs)
//   workerd                    a Cloudflare Worker importing the ESM bundle, in workerd via miniflare
//                              (worker.mjs, workerd.mjs)
//   chromium                   headless Chromium loading the ESM bundle from a static server on 127.0.0.1
//                              (browser.html, browser.mjs)
//
// Runtimes come from the npm registry only (Chromium from Debian's packages: `.ci/run` installs it),
// installed into a cache outside the repository ($BULWARK_RUNTIMES, default <tmpdir>/bulwark-runtimes):
// Node from `node-<platform>-<arch>@<major>`; Bun from `bun` (whose postinstall copies the binary out of
// its optional dependency `@oven/bun-<platform>-<arch>`, no download), falling back to that package
// itself; Deno from `deno@2` the same way (`@deno/<platform>-<arch>[-glibc]`); workerd from `miniflare`
// at MINIFLARE (the newest 4.x whose `engines` allows Node 20), run by the Node running this script.
// A runtime that cannot be installed fails the matrix; none is skipped.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const cache = process.env.BULWARK_RUNTIMES ?? join(tmpdir(), 'bulwark-runtimes');
const target = `${process.platform}-${process.arch}`;
/** The newest miniflare 4.x whose `engines.node` is `>=18` (later ones need Node 22). */
const MINIFLARE = '4.20260426.0';
const DENO = '2';

/** Entry points: each runtime runs some of them (`[file, ...args]` after the runtime's own arguments). */
const ENTRIES = {
  esm: ['test/matrix/esm.mjs'],
  cjs: ['test/matrix/cjs.cjs'],
};
const COLUMNS = ['esm', 'cjs'];

const nodeLike = (resolve) => ({
  resolve,
  runs: { esm: (bin) => [bin, ENTRIES.esm], cjs: (bin) => [bin, ENTRIES.cjs] },
});

const RUNTIMES = [
  { id: 'node20', ...nodeLike(() => node(20)) },
  { id: 'node22', ...nodeLike(() => node(22)) },
  { id: 'node24', ...nodeLike(() => node(24)) },
  { id: 'bun', ...nodeLike(bun) },
  {
    id: 'deno',
    resolve: deno,
    runs: { esm: (bin) => [bin, ['run', '--no-config', '--no-prompt', 'test/matrix/deno.mjs']] },
  },
  {
    id: 'workerd',
    resolve: miniflare,
    version: (dir) =>
      `${packageVersion(dir, 'workerd')} (miniflare ${packageVersion(dir, 'miniflare')})`,
    runs: { esm: (dir) => [process.execPath, ['test/matrix/workerd.mjs', dir]] },
  },
  {
    id: 'chromium',
    resolve: chromium,
    runs: { esm: (bin) => [process.execPath, ['test/matrix/browser.mjs', bin]] },
  },
];

function log(message) {
  console.log(`[matrix] ${message}`);
}

/** `bin --version` (its first version number), or undefined when the binary is missing or does not run. */
function versionOf(bin) {
  if (!existsSync(bin)) return undefined;
  const result = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  if (result.status !== 0) return undefined;
  return /v?\d+\.[\w.+-]+/.exec(result.stdout)?.[0] ?? result.stdout.trim();
}

function packageVersion(dir, name) {
  try {
    const require = createRequire(join(dir, 'package.json'));
    return JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')).version;
  } catch {
    return undefined;
  }
}

/** Installs `spec` from the npm registry into its own folder of the cache. */
function install(folder, spec) {
  const dir = join(cache, folder);
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(dir, 'package.json')))
    writeFileSync(join(dir, 'package.json'), '{ "private": true }\n');
  log(`npm install ${spec} (into ${dir})`);
  execFileSync(
    'npm',
    ['install', '--prefix', dir, '--no-audit', '--no-fund', '--loglevel=error', spec],
    { stdio: 'inherit' },
  );
  return dir;
}

function node(major) {
  if (Number(process.versions.node.split('.')[0]) === major) return process.execPath;
  const pkg = `node-${target}`;
  const bin = join(cache, `node${major}`, 'node_modules', pkg, 'bin', 'node');
  if (versionOf(bin)?.startsWith(`v${major}.`)) return bin;
  install(`node${major}`, `${pkg}@${major}`);
  if (versionOf(bin)?.startsWith(`v${major}.`)) return bin;
  throw new Error(`${pkg}@${major} installed, but ${bin} does not run`);
}

function bun() {
  const dir = join(cache, 'bun', 'node_modules');
  const candidates = [
    join(dir, 'bun', 'bin', 'bun.exe'),
    join(dir, 'bun', 'bin', 'bun'),
    join(dir, '@oven', `bun-${target}`, 'bin', 'bun'),
    join(dir, '@oven', `bun-${target}-baseline`, 'bin', 'bun'),
  ];
  const found = () => candidates.find((bin) => versionOf(bin) !== undefined);
  let bin = found();
  if (bin !== undefined) return bin;
  install('bun', 'bun');
  bin = found();
  if (bin !== undefined) return bin;
  // The postinstall did not run (install scripts disabled): take the binary package itself, or its
  // baseline build for CPUs without AVX2.
  install('bun', `@oven/bun-${target}`);
  bin = found();
  if (bin !== undefined) return bin;
  install('bun', `@oven/bun-${target}-baseline`);
  bin = found();
  if (bin !== undefined) return bin;
  throw new Error(`no runnable Bun binary for ${target} from the npm registry`);
}

/** Deno's binary: `deno`'s postinstall copies it out of its platform package; npm may skip that. */
function deno() {
  const dir = join(cache, 'deno', 'node_modules');
  const exe = process.platform === 'win32' ? 'deno.exe' : 'deno';
  const os = process.platform === 'linux' ? `linux-${process.arch}-glibc` : target;
  const candidates = [join(dir, 'deno', exe), join(dir, '@deno', os, exe)];
  const found = () => candidates.find((bin) => versionOf(bin) !== undefined);
  let bin = found();
  if (bin !== undefined) return bin;
  install('deno', `deno@${DENO}`);
  bin = found();
  if (bin !== undefined) return bin;
  install('deno', `@deno/${os}@${DENO}`);
  bin = found();
  if (bin !== undefined) return bin;
  throw new Error(`no runnable Deno binary for ${os} from the npm registry`);
}

/** miniflare's folder (it runs workerd from its dependency `@cloudflare/workerd-<platform>-<arch>`). */
function miniflare() {
  const dir = join(cache, 'miniflare');
  if (packageVersion(dir, 'miniflare') !== MINIFLARE)
    install('miniflare', `miniflare@${MINIFLARE}`);
  if (
    packageVersion(dir, 'miniflare') === MINIFLARE &&
    packageVersion(dir, 'workerd') !== undefined
  )
    return dir;
  throw new Error(`miniflare@${MINIFLARE} installed, but not found in ${dir}`);
}

/** Debian's `chromium` (`apt-get install chromium`; `.ci/run` does it), or $CHROMIUM. */
function chromium() {
  const candidates = [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'];
  const bin = candidates.find((path) => path !== undefined && versionOf(path) !== undefined);
  if (bin !== undefined) return bin;
  throw new Error('chromium is not installed (Debian: apt-get install -y chromium)');
}

const wanted = process.argv.slice(2);
const runtimes = RUNTIMES.filter((r) => wanted.length === 0 || wanted.includes(r.id));
if (runtimes.length === 0) {
  console.error(
    `unknown runtime(s) ${wanted.join(', ')}; known: ${RUNTIMES.map((r) => r.id).join(', ')}`,
  );
  process.exit(2);
}

if (!existsSync(join(root, 'dist', 'index.js')) || !existsSync(join(root, 'dist', 'index.cjs'))) {
  log('dist/ missing: npm run build');
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
}

const results = [];
for (const runtime of runtimes) {
  const columns = Object.keys(runtime.runs);
  let bin;
  try {
    bin = runtime.resolve();
  } catch (error) {
    console.error(`[matrix] ${runtime.id}: ${error.message}`);
    results.push({
      id: runtime.id,
      version: 'not installed',
      suites: Object.fromEntries(columns.map((column) => [column, 'FAILED (not installed)'])),
    });
    continue;
  }
  const version = runtime.version === undefined ? versionOf(bin) : runtime.version(bin);
  log(`${runtime.id}: ${version} (${bin})`);
  const suites = {};
  for (const column of columns) {
    const [command, args] = runtime.runs[column](bin);
    const run = spawnSync(command, args, { cwd: root, stdio: 'inherit', timeout: 180_000 });
    suites[column] = run.status === 0 ? 'passed' : `FAILED (${run.status ?? run.signal})`;
  }
  results.push({ id: runtime.id, version, suites });
}

const width = Math.max(10, ...results.map(({ version }) => String(version).length));
console.log(`\nruntime  ${'version'.padEnd(width)} ${COLUMNS.map((c) => c.padEnd(8)).join(' ')}`);
for (const { id, version, suites } of results)
  console.log(
    `${id.padEnd(8)} ${String(version).padEnd(width)} ${COLUMNS.map((c) => (suites[c] ?? '—').padEnd(8)).join(' ')}`,
  );
const passed = results.filter(({ suites }) => Object.values(suites).every((s) => s === 'passed'));
console.log(`\nmatrix: ${passed.length} passed, ${results.length - passed.length} failed`);
process.exitCode = passed.length === results.length ? 0 : 1;
