// `npm run bench`: bulwark against the bare call and its peers. See bench/README.md.
//
//   npm run bench                          full run (about 4 minutes): prints the table and the
//                                          promises, writes bench/results/local/ (not tracked)
//   npm run bench -- --update              the same, then updates the published results: results/,
//                                          the charts, bench/README.md and README.md's Performance
//   npm run bench -- --quick               under a minute, rougher (never published)
//   npm run bench -- --node /path/to/node  run the cases under another Node (or BENCH_NODE=...)
//   npm run bench -- --filter retry,cache  only the cases whose id contains one of the words
//   npm run bench -- --no-build            use dist/ as it is (default: rebuild when src/ is newer)
//   npm run bench -- --build               always rebuild first
//   npm run bench -- --report              only regenerate the charts and READMEs from results/latest*.json
//   npm run bench -- --nice                raise the timing children's priority (needs root/CAP_SYS_NICE)

import { spawn, spawnSync, execFileSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CASES, VARIANTS } from './cases.mjs';
import { NODE_FLAGS } from './lib/alloc.mjs';
import { renderChart } from './lib/chart.mjs';
import {
  addPeerRatios,
  fmtRatio,
  markdownTable,
  targetsMarkdown,
  summaryMarkdown,
  noiseWarnings,
  targetsTerminal,
  terminalTable,
} from './lib/report.mjs';

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(BENCH);
const RESULTS = join(BENCH, 'results');
/** Where a run that does not publish writes (git-ignored). */
const LOCAL = join(RESULTS, 'local');
const PRIMARY_NODE_MAJOR = 20;

// --- arguments ----------------------------------------------------------------------------------

function parseArgs(argv) {
  const args = {
    quick: false,
    node: process.env.BENCH_NODE,
    filter: undefined,
    build: 'auto',
    report: false,
    nice: false,
    update: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') args.quick = true;
    else if (a === '--node' || a.startsWith('--node=')) args.node = value();
    else if (a === '--filter' || a.startsWith('--filter=')) args.filter = value().split(',');
    else if (a === '--build') args.build = 'always';
    else if (a === '--no-build') args.build = 'never';
    else if (a === '--report') args.report = true;
    else if (a === '--nice') args.nice = true;
    else if (a === '--update') args.update = true;
    else if (a === '--help' || a === '-h') {
      console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n\n')[0]);
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (try --help)`);
  }
  if (args.update && (args.quick || args.filter)) {
    throw new Error(
      '--update publishes a full run: it cannot be combined with --quick or --filter',
    );
  }
  return args;
}

// --- build --------------------------------------------------------------------------------------

function newestMtime(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

function ensureBuilt(mode) {
  const dist = join(ROOT, 'dist', 'index.js');
  const inputs = ['src', 'tsup.config.ts', 'tsconfig.json'].map((p) => join(ROOT, p));
  const stale =
    !existsSync(dist) ||
    Math.max(...inputs.filter(existsSync).map(newestMtime)) > statSync(dist).mtimeMs;
  if (mode === 'never' || (mode === 'auto' && !stale)) {
    if (!existsSync(dist)) throw new Error('dist/index.js is missing; run without --no-build');
    return false;
  }
  process.stderr.write(
    `building bulwark (${stale ? 'dist is missing or older than src' : '--build'})…\n`,
  );
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const built = spawnSync(npm, ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
  if (built.status !== 0) {
    process.stderr.write(built.stdout + built.stderr);
    throw new Error('npm run build failed');
  }
  return true;
}

/**
 * Copies the built bundle to a private directory: the children import that copy, so a rebuild of
 * dist/ during the run (someone else running `npm run build`) cannot change what is measured midway.
 */
function snapshotDist() {
  const dir = mkdtempSync(join(os.tmpdir(), 'bulwark-bench-'));
  cpSync(join(ROOT, 'dist', 'index.js'), join(dir, 'index.js'));
  return { dir, url: pathToFileURL(join(dir, 'index.js')).href };
}

// --- environment --------------------------------------------------------------------------------

function nodeInfo(node) {
  const out = execFileSync(
    node,
    [
      '-p',
      'JSON.stringify({ node: process.version, v8: process.versions.v8, arch: process.arch })',
    ],
    { encoding: 'utf8' },
  );
  return JSON.parse(out);
}

function gitInfo() {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: ROOT,
      encoding: 'utf8',
    }).trim();
    const dirty =
      execFileSync('git', ['status', '--porcelain', '--', 'src'], {
        cwd: ROOT,
        encoding: 'utf8',
      }).trim() !== '';
    return { commit, srcDirty: dirty };
  } catch {
    return { commit: undefined, srcDirty: undefined };
  }
}

function peerVersions() {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const names = [
    'cockatiel',
    'opossum',
    'p-retry',
    'async-retry',
    'p-limit',
    'bottleneck',
    'p-timeout',
    'mollitia',
  ];
  return Object.fromEntries(names.map((n) => [n, pkg.devDependencies?.[n]]));
}

// --- running the children -----------------------------------------------------------------------

let niceWarned = false;

function runWorker(node, env, flags, config, priority) {
  return new Promise((resolve) => {
    const child = spawn(node, [...flags, join(BENCH, 'worker.mjs'), JSON.stringify(config)], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (priority !== undefined) {
      try {
        os.setPriority(child.pid, priority);
      } catch (error) {
        if (!niceWarned)
          process.stderr.write(`\n--nice: ${error.message}; running at normal priority\n`);
        niceWarned = true;
      }
    }
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => {
      const last = stdout.trim().split('\n').pop();
      let message;
      try {
        message = JSON.parse(last);
      } catch {
        message = { ok: false, error: `exit ${code}: ${(stderr || stdout).trim().slice(-2000)}` };
      }
      resolve(message);
    });
  });
}

class Progress {
  constructor(total) {
    this.total = total;
    this.done = 0;
    this.tty = process.stderr.isTTY === true;
    this.started = Date.now();
  }
  update(text) {
    const elapsed = ((Date.now() - this.started) / 1000).toFixed(0);
    const line = `[${String(this.done).padStart(String(this.total).length)}/${this.total}] ${elapsed}s ${text}`;
    if (this.tty)
      process.stderr.write(`\r\x1b[2K${line.slice(0, (process.stderr.columns ?? 100) - 1)}`);
    else if (this.done % 10 === 0 || this.done === this.total) process.stderr.write(`${line}\n`);
  }
  end() {
    if (this.tty) process.stderr.write('\r\x1b[2K');
  }
}

async function pool(tasks, parallel, run) {
  let next = 0;
  const workers = Array.from({ length: parallel }, async () => {
    while (next < tasks.length) await run(tasks[next++]);
  });
  await Promise.all(workers);
}

async function measure(args, node, distUrl, machine) {
  const sampleLoad = () => {
    machine.loadavgMax = Math.max(machine.loadavgMax ?? 0, os.loadavg()[0]);
  };
  const cases = args.filter
    ? CASES.filter((c) => args.filter.some((word) => c.id.includes(word)))
    : CASES;
  if (cases.length === 0) throw new Error(`no case matches ${args.filter}`);
  const env = { ...process.env, BULWARK_DIST: distUrl, NODE_OPTIONS: '' };
  const rows = cases.map((c) => ({ id: c.id, lib: c.lib, category: c.category, label: c.label }));
  const byId = new Map(rows.map((r) => [r.id, r]));
  const progress = new Progress(cases.length * 2);
  const fail = (row, what, message) => {
    row.error = `${what}: ${message.error}`;
  };

  // Allocation first, two children at a time: it counts bytes, not time, so it may share the CPU.
  await pool(cases, Math.max(1, Math.min(2, os.cpus().length)), async (c) => {
    progress.update(`alloc ${c.id}`);
    const message = await runWorker(node, env, NODE_FLAGS, {
      mode: 'alloc',
      case: c.id,
      quick: args.quick,
    });
    progress.done++;
    if (message.ok) byId.get(c.id).alloc = message.result;
    else fail(byId.get(c.id), 'alloc', message);
    progress.update(`alloc ${c.id} done`);
  });
  // Timing one child at a time, each case in a fresh process next to its own bare call.
  await pool(cases, 1, async (c) => {
    progress.update(`time  ${c.id}`);
    const message = await runWorker(
      node,
      env,
      [],
      { mode: 'time', case: c.id, quick: args.quick },
      args.nice ? -10 : undefined,
    );
    progress.done++;
    sampleLoad();
    if (message.ok) byId.get(c.id).time = message.result;
    else fail(byId.get(c.id), 'time', message);
    progress.update(`time  ${c.id} ${message.ok ? fmtRatio(message.result.seq?.ratio) : 'failed'}`);
  });
  progress.end();
  addPeerRatios(
    rows,
    VARIANTS.map((v) => v.id),
  );
  return rows;
}

// --- output -------------------------------------------------------------------------------------

function resultFiles() {
  if (!existsSync(RESULTS)) return [];
  return readdirSync(RESULTS)
    .filter((f) => /^latest(-node\d+)?\.json$/.test(f))
    .map((f) => JSON.parse(readFileSync(join(RESULTS, f), 'utf8')))
    .sort((a, b) => a.machine.nodeMajor - b.machine.nodeMajor);
}

function suffix(major) {
  return major === PRIMARY_NODE_MAJOR ? '' : `-node${major}`;
}

function resultsSection(results) {
  const m = results.machine;
  const chart = `results/chart${suffix(m.nodeMajor)}.svg`;
  return [
    `### Node ${m.node}`,
    '',
    `${results.date.slice(0, 16).replace('T', ' ')} UTC · ${m.cpu} · ${m.cores} cores · ${m.memoryGiB} GiB · ${m.platform} · Node ${m.node} (V8 ${m.v8}) · bulwark ${results.git.commit ?? '?'}${results.git.srcDirty ? ' (with uncommitted src changes)' : ''} · load average at start ${m.loadavg.map((l) => l.toFixed(2)).join(', ')}`,
    '',
    `![time per call as a multiple of the bare call, Node ${m.node}](${chart})`,
    '',
    ...noiseWarnings(results).map((w) => `> **Noisy run.** ${w}\n`),
    '#### Promises (sequential calls of the async target)',
    '',
    'The observation floor is `fn().then(ok, err)` with handlers made once, measured in the same process',
    'as each row: what any stage that must see the outcome pays at least. Spread: the middle half of the',
    'per-run ratios (first to third quartile).',
    '',
    targetsMarkdown(results.rows),
    '',
    '#### All cases',
    '',
    markdownTable(results.rows),
    '',
  ].join('\n');
}

function updateReadme() {
  const path = join(BENCH, 'README.md');
  if (!existsSync(path)) return;
  const readme = readFileSync(path, 'utf8');
  const start = '<!-- results:start -->';
  const end = '<!-- results:end -->';
  const i = readme.indexOf(start);
  const j = readme.indexOf(end);
  if (i < 0 || j < i) return;
  const body = resultFiles().map(resultsSection).join('\n');
  const note =
    '<!-- generated by `npm run bench -- --update` from results/latest*.json; edits here are overwritten -->';
  writeFileSync(
    path,
    `${readme.slice(0, i + start.length)}\n${note}\n\n${body}\n${readme.slice(j)}`,
  );
}

/** The top-level README's Performance section: the chart and a summary per Node version. */
function updateTopReadme() {
  const path = join(ROOT, 'README.md');
  if (!existsSync(path)) return;
  const readme = readFileSync(path, 'utf8');
  const start = '<!-- bench:start -->';
  const end = '<!-- bench:end -->';
  const i = readme.indexOf(start);
  const j = readme.indexOf(end);
  if (i < 0 || j < i) return;
  const list = resultFiles();
  if (list.length === 0) return;
  const runs = list.map((r) => {
    const m = r.machine;
    return `- Node ${m.node}: ${r.date.slice(0, 16).replace('T', ' ')} UTC, ${m.cpu} × ${m.cores} cores, ${m.memoryGiB} GiB, ${m.platform}, load average ${m.loadavg.map((l) => l.toFixed(1)).join(' ')} at start; bulwark ${r.git?.commit ?? '?'}`;
  });
  const body = [
    '<!-- generated by `npm run bench -- --update` from bench/results/latest*.json; edits here are overwritten -->',
    '',
    ...runs,
    '',
    `![time per call as a multiple of the bare call](bench/results/chart${suffix(list[0].machine.nodeMajor)}.svg)`,
    '',
    'Each cell is the stage alone on its happy path against the bare `await fn()` measured in the same',
    'process (rejections: ns per rejection), then the bytes it allocates per call beyond the bare call, then',
    'the fastest peer library doing the same job (its × bare). The last column is the same bulwark row with',
    'a target that awaits one `setImmediate`, closer to real I/O. Full tables, the method and the',
    'profiles of the misses: [bench/README.md](bench/README.md).',
    '',
    summaryMarkdown(list),
    '',
  ].join('\n');
  writeFileSync(path, `${readme.slice(0, i + start.length)}\n${body}\n${readme.slice(j)}`);
}

function writeChartsAndReadme() {
  for (const results of resultFiles()) {
    writeFileSync(
      join(RESULTS, `chart${suffix(results.machine.nodeMajor)}.svg`),
      renderChart(results),
    );
  }
  updateReadme();
  updateTopReadme();
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.report) {
    writeChartsAndReadme();
    return 0;
  }
  const node = args.node ?? process.execPath;
  const info = nodeInfo(node);
  const major = Number(info.node.slice(1).split('.')[0]);
  const rebuilt = ensureBuilt(args.build);
  const snapshot = snapshotDist();
  const cpus = os.cpus();
  const results = {
    date: new Date().toISOString(),
    mode: args.quick ? 'quick' : 'full',
    filter: args.filter,
    machine: {
      cpu: cpus[0]?.model ?? 'unknown',
      cores: cpus.length,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      platform: `${os.platform()} ${os.release()} ${info.arch}`,
      node: info.node,
      nodeMajor: major,
      v8: info.v8,
      nodePath: node,
      loadavg: os.loadavg(),
    },
    git: { ...gitInfo(), rebuilt },
    priority: args.nice ? 'timing children at nice -10' : 'normal',
    peers: peerVersions(),
    method: {
      target:
        'async () => 42; variant: async () => { await new Promise((r) => setImmediate(r)); return 42; }',
      timing:
        'one fresh child process per case; bare and case loops interleaved; median ns/call and median of per-pair ratios',
      alloc: `node ${NODE_FLAGS.join(' ')}; median bytes/call of batches without GC`,
    },
    rows: [],
  };
  process.stderr.write(
    `bench: ${CASES.length} cases under Node ${info.node} (${node}), ${args.quick ? 'quick' : 'full'} mode\n`,
  );
  try {
    results.rows = await measure(args, node, snapshot.url, results.machine);
  } finally {
    rmSync(snapshot.dir, { recursive: true, force: true });
  }
  results.machine.loadavgEnd = os.loadavg();

  const color = process.stdout.isTTY === true;
  console.log(
    `\nbulwark bench · Node ${info.node} · ${results.machine.cpu} × ${results.machine.cores} · ${results.date}`,
  );
  console.log(
    [
      'Sequential awaited calls of async () => 42, each case in its own process:',
      '  × bare   time per call / the bare `await fn()` measured in the same process',
      '  × floor  time per call / the observation floor, `fn().then(ok, err)` with handlers made once,',
      '           measured in the same process: what any stage that must see the outcome pays at least',
      '  spread   first to third quartile of the per-run ratios (~: wider than 15 % of the median)',
      '',
    ].join('\n'),
  );
  console.log(terminalTable(results.rows, { color }));
  console.log("\nbulwark's promises (sequential calls; Node 20 and 24):");
  console.log(targetsTerminal(results.rows, { color }));
  const warnings = noiseWarnings(results);
  if (warnings.length > 0) {
    const yellow = (s) => (color ? `\x1b[33m${s}\x1b[39m` : s);
    console.log(`\n${yellow('Warning: these numbers may not be trustworthy.')}`);
    for (const w of warnings) console.log(`  - ${w}`);
  }

  const name = `${args.quick ? 'quick' : args.filter ? 'filtered' : 'latest'}${suffix(major)}.json`;
  const dir = args.update ? RESULTS : LOCAL;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, name), `${JSON.stringify(results, null, 2)}\n`);
  if (!args.update && !args.quick && !args.filter) {
    writeFileSync(join(LOCAL, `chart${suffix(major)}.svg`), renderChart(results));
  }
  console.log(`\nwrote ${relative(ROOT, join(dir, name))}`);
  if (args.update) {
    writeChartsAndReadme();
    console.log(
      `wrote ${relative(ROOT, join(RESULTS, `chart${suffix(major)}.svg`))}, bench/README.md and README.md`,
    );
  } else if (!args.quick && !args.filter) {
    console.log('(the published results are unchanged; `--update` replaces them with this run)');
  }
  return results.rows.some((r) => r.error) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
