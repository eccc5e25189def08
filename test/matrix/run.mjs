// Runtime matrix: runs the behaviour suite (test/matrix/) against the BUILT package, through its ESM
// and CJS entry points, on Node 20, 22 and 24 and on Bun.
//
//   npm run test:matrix                 every runtime
//   npm run test:matrix -- node22 bun   some of them
//
// Runtimes come from the npm registry only, installed into a cache outside the repository
// ($BULWARK_RUNTIMES, default <tmpdir>/bulwark-runtimes): Node from `node-<platform>-<arch>@<major>`,
// Bun from `bun` (whose postinstall copies the binary out of its optional dependency
// `@oven/bun-<platform>-<arch>`, no download), falling back to that package itself.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const cache = process.env.BULWARK_RUNTIMES ?? join(tmpdir(), 'bulwark-runtimes');
const target = `${process.platform}-${process.arch}`;
const SUITES = ['test/matrix/esm.mjs', 'test/matrix/cjs.cjs'];

const RUNTIMES = [
  { id: 'node20', resolve: () => node(20) },
  { id: 'node22', resolve: () => node(22) },
  { id: 'node24', resolve: () => node(24) },
  { id: 'bun', resolve: bun },
];

function log(message) {
  console.log(`[matrix] ${message}`);
}

/** `bin --version`, or undefined when the binary is missing or does not run here. */
function versionOf(bin) {
  if (!existsSync(bin)) return undefined;
  const result = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  return result.status === 0 ? result.stdout.trim() : undefined;
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
  let bin;
  try {
    bin = runtime.resolve();
  } catch (error) {
    console.error(`[matrix] ${runtime.id}: ${error.message}`);
    results.push({ id: runtime.id, version: 'not installed', suites: SUITES.map(() => 'skipped') });
    continue;
  }
  const version = versionOf(bin);
  log(`${runtime.id}: ${version} (${bin})`);
  const suites = SUITES.map((suite) => {
    const run = spawnSync(bin, [suite], { cwd: root, stdio: 'inherit', timeout: 180_000 });
    return run.status === 0 ? 'passed' : `FAILED (${run.status ?? run.signal})`;
  });
  results.push({ id: runtime.id, version, suites });
}

console.log('\nruntime  version    esm      cjs');
for (const { id, version, suites } of results)
  console.log(
    `${id.padEnd(8)} ${String(version).padEnd(10)} ${suites.map((s) => s.padEnd(8)).join(' ')}`,
  );
const ok = results.every(({ suites }) => suites.every((s) => s === 'passed'));
console.log(ok ? '\nall runtimes passed' : '\nsome runtimes FAILED');
process.exitCode = ok ? 0 : 1;
