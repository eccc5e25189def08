// A private redis-server for a benchmark: a free loopback port, no persistence. It is killed when
// `stop()` is called, and also when the bench exits, fails, or is interrupted (SIGINT, SIGTERM), along
// with any child process handed to `track()`.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';

const children = new Set();
let hooked = false;

function killAll(signal) {
  for (const child of children) if (child.exitCode === null) child.kill(signal);
}

function hook() {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => killAll('SIGKILL'));
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      killAll('SIGKILL');
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  }
}

/** Kills `child` with the bench (on exit, error or interrupt) if it is still running then. */
export function track(child) {
  hook();
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts redis-server; resolves with `{ port, stop() }` once it accepts connections. */
export async function startRedisServer() {
  const port = await freePort();
  const child = track(
    spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    ),
  );
  await new Promise((resolve, reject) => {
    let out = '';
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}`)));
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes('Ready to accept connections')) resolve();
    });
  });
  child.removeAllListeners('exit');
  child.once('exit', () => children.delete(child));
  child.stdout.resume();
  return {
    port,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
