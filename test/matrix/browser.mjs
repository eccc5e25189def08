// The behaviour suite in a browser: a static server on 127.0.0.1 (a free port) serves dist/ and
// test/matrix/, headless Chromium loads browser.html, which imports the ESM bundle, runs the suite and
// POSTs the results back to /report. No DevTools protocol, no WebSocket. Exit code 0 when every case passed.
//
//   node test/matrix/browser.mjs [path to chromium]      (default: chromium on the PATH)
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const chromium = process.argv[2] ?? 'chromium';
const SERVED = ['dist', join('test', 'matrix')];
const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.html': 'text/html' };
const LIMIT_MS = 120_000;

let report;
const reported = new Promise((resolve) => {
  report = resolve;
});

const server = createServer((request, response) => {
  const url = new URL(request.url ?? '/', 'http://127.0.0.1');
  if (request.method === 'POST' && url.pathname === '/report') {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      response.end('ok');
      try {
        report(JSON.parse(body));
      } catch (error) {
        report({ passed: 0, failed: ['bad report'], lines: [String(error)] });
      }
    });
    return;
  }
  const path = normalize(decodeURIComponent(url.pathname)).replace(/^[/\\]+/, '');
  const allowed = SERVED.some((folder) => path.startsWith(folder + sep)) && !path.includes('..');
  const type = TYPES[extname(path)];
  if (request.method !== 'GET' || !allowed || type === undefined) {
    response.writeHead(404).end();
    return;
  }
  try {
    const body = readFileSync(join(root, path));
    response.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
  } catch {
    response.writeHead(404).end();
  }
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();

const version = await new Promise((resolve) => {
  const child = spawn(chromium, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (chunk) => (out += chunk));
  child.on('error', () => resolve(undefined));
  child.on('close', () => resolve(/(\d+\.[\d.]+)/.exec(out)?.[1]));
});

const profile = mkdtempSync(join(tmpdir(), 'bulwark-chromium-'));
const label = `chromium ${version ?? '?'} esm`;
const page = `http://127.0.0.1:${port}/test/matrix/browser.html?label=${encodeURIComponent(label)}`;
const browser = spawn(
  chromium,
  [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--no-default-browser-check',
    `--user-data-dir=${profile}`,
    page,
  ],
  // Its own process group, so that the browser's helper processes end with it.
  { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
);
let stderr = '';
browser.stderr.setEncoding('utf8');
browser.stderr.on('data', (chunk) => {
  if (stderr.length < 20_000) stderr += chunk;
});
const exited = new Promise((resolve) => {
  browser.on('error', (error) => resolve(`could not start ${chromium}: ${error.message}`));
  browser.on('exit', (code, signal) => resolve(`chromium exited early (${code ?? signal})`));
});

let timer;
const result = await Promise.race([
  reported,
  exited.then((why) => ({ passed: 0, failed: [why], lines: [why, stderr] })),
  new Promise((resolve) => {
    timer = setTimeout(
      () =>
        resolve({
          passed: 0,
          failed: ['no report'],
          lines: [`no report in ${LIMIT_MS} ms`, stderr],
        }),
      LIMIT_MS,
    );
  }),
]);
clearTimeout(timer);
const gone = new Promise((resolve) => {
  if (browser.exitCode !== null || browser.signalCode !== null || browser.pid === undefined)
    resolve();
  else browser.on('exit', resolve);
});
try {
  if (browser.pid !== undefined) process.kill(-browser.pid, 'SIGKILL');
} catch {
  // already gone
}
server.close();
await gone;
rmSync(profile, { recursive: true, force: true });
for (const line of result.lines) console.log(line);
process.exitCode = result.failed.length === 0 ? 0 : 1;
