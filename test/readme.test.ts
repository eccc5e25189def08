/**
 * Every ```ts / ```js block of README.md runs as pasted, against the built package (dist/), each in its
 * own Node process: `import ... from 'bulwark'` resolves to this package by name, as it does for users.
 *
 * Conventions for README authors (HTML comments, invisible on GitHub, placed right before the block,
 * blank lines allowed in between; several may precede one block):
 *
 *   <!-- readme-test: prelude
 *   const fetchUser = async (id: string) => ({ id });
 *   -->
 *       Code run before the block, in the same module: define what the snippet assumes (your functions,
 *       a `request`), or stub `globalThis.fetch` so that nothing leaves this machine.
 *
 *   <!-- readme-test: redis -->
 *       The block needs Redis: a real redis-server is started on a free loopback port, and `ioredis`
 *       (default export and `Redis`) connects to it unless the snippet names a host or port itself.
 *
 *   <!-- readme-test: skip <the reason> -->
 *       Not run; the reason is printed in the test's name (use it only for what cannot run here).
 *
 * A ```sh block, a plain ``` block (output, diagrams) or any other language is not run. Blocks are
 * transformed with esbuild (types stripped, decorators lowered), not type-checked. A failing block is
 * reported with its line in README.md and the process's output.
 */
import { execFile, execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { transformSync } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noRedis, RedisServer } from './redis/server.js';

const root = fileURLToPath(new URL('..', import.meta.url));
/** Inside the package (not under node_modules), so that `bulwark` resolves to it by name. */
const work = join(root, '.readme-test');

export interface Block {
  /** Line of the opening fence in README.md (1-based). */
  readonly line: number;
  readonly language: string;
  readonly code: string;
  readonly prelude: string;
  readonly redis: boolean;
  readonly skip: string | undefined;
}

const MARKER = /<!--\s*readme-test:\s*(prelude|redis|skip)\b([\s\S]*?)-->/g;

/** The runnable blocks of a markdown text, with their markers. */
export function extractBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  let pending = ''; // text since the previous block: where this block's markers are
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(\S*)\s*$/.exec(lines[i]!);
    if (fence === null) {
      pending += `${lines[i]}\n`;
      continue;
    }
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    const language = fence[1]!.toLowerCase();
    let prelude = '';
    let redis = false;
    let skip: string | undefined;
    // Only the comments right before the fence count.
    for (const [, kind, text] of trailingComments(pending).matchAll(MARKER)) {
      if (kind === 'prelude') prelude += `${text!.trim()}\n`;
      else if (kind === 'redis') redis = true;
      else skip = text!.trim() || 'no reason given';
    }
    pending = '';
    if (['ts', 'typescript', 'js', 'javascript', 'mjs'].includes(language))
      blocks.push({ line: start + 1, language, code: body.join('\n'), prelude, redis, skip });
  }
  return blocks;
}

/** The HTML comments that end `text`, with only blank lines between and after them. */
function trailingComments(text: string): string {
  let rest = text.trimEnd();
  let comments = '';
  while (rest.endsWith('-->')) {
    const open = rest.lastIndexOf('<!--');
    if (open < 0) break;
    comments = rest.slice(open) + comments;
    rest = rest.slice(0, open).trimEnd();
  }
  return comments;
}

/** `ioredis` for a README block: the test's redis-server unless the snippet names its own. */
const IOREDIS_SHIM = `
import * as real from 'ioredis';
const Base = real.Redis ?? real.default;
const port = Number(process.env.README_REDIS_PORT);
export class Redis extends Base {
  constructor(...args) {
    if (args.length === 0 || (args.length === 1 && typeof args[0] === 'object' && args[0] !== null))
      super({ host: '127.0.0.1', port, ...args[0] });
    else super(...args);
  }
}
export default Redis;
`;

function ensureBuilt(): void {
  const built = join(root, 'dist/testing/index.js');
  const newest = (dir: string): number =>
    Math.max(
      0,
      ...readdirSync(dir, { withFileTypes: true }).map((entry) =>
        entry.isDirectory()
          ? newest(join(dir, entry.name))
          : statSync(join(dir, entry.name)).mtimeMs,
      ),
    );
  if (existsSync(built) && statSync(built).mtimeMs >= newest(join(root, 'src'))) return;
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' });
}

function run(file: string, env: Record<string, string>): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [file],
      { cwd: root, env: { ...process.env, ...env }, timeout: 60_000, encoding: 'utf8' },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
        resolve({ code, output: `${stdout}${stderr}`.trim() });
      },
    );
  });
}

const blocks = extractBlocks(readFileSync(join(root, 'README.md'), 'utf8'));

describe('README.md: every ts/js block runs as pasted', () => {
  let redis: RedisServer | undefined;

  beforeAll(async () => {
    ensureBuilt();
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    writeFileSync(join(work, 'ioredis-shim.mjs'), IOREDIS_SHIM);
    if (blocks.some((b) => b.redis && b.skip === undefined) && !noRedis)
      redis = await RedisServer.start();
  }, 300_000);

  afterAll(async () => {
    await redis?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('finds the blocks (the extraction itself works)', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(5);
  });

  for (const block of blocks) {
    const name = `README.md line ${block.line} (${block.language})`;
    if (block.skip !== undefined) {
      it.skip(`${name}: skipped, ${block.skip}`, () => undefined);
      continue;
    }
    it.skipIf(block.redis && noRedis)(
      name,
      async () => {
        let code = transformSync(`${block.prelude}\n${block.code}`, {
          loader: block.language.startsWith('t') ? 'ts' : 'js',
          format: 'esm',
          target: 'es2022',
          tsconfigRaw: {
            compilerOptions: { experimentalDecorators: false, useDefineForClassFields: true },
          },
        }).code;
        if (block.redis)
          code = code.replace(/from\s+(['"])ioredis\1/g, `from './ioredis-shim.mjs'`);
        const file = join(work, `line-${block.line}.mjs`);
        writeFileSync(file, code);
        const env: Record<string, string> =
          redis === undefined ? {} : { README_REDIS_PORT: String(redis.port) };
        const result = await run(file, env);
        expect(result.code, `${name} failed:\n${result.output}\n--- ran:\n${code}`).toBe(0);
      },
      90_000,
    );
  }
});

describe('README.md test: the extraction', () => {
  it('reads markers right before a block, and only those', () => {
    const markdown = [
      'Text.',
      '<!-- readme-test: prelude',
      'const a = 1;',
      '-->',
      '<!-- readme-test: redis -->',
      '',
      '```ts',
      'console.log(a);',
      '```',
      '<!-- readme-test: skip needs a browser -->',
      '```js',
      'window.alert(1);',
      '```',
      '<!-- readme-test: skip far away -->',
      'A paragraph between the marker and the block.',
      '```ts',
      'run();',
      '```',
      '```sh',
      'npm test',
      '```',
      '```',
      'output',
      '```',
    ].join('\n');
    expect(extractBlocks(markdown)).toEqual([
      {
        line: 7,
        language: 'ts',
        code: 'console.log(a);',
        prelude: 'const a = 1;\n',
        redis: true,
        skip: undefined,
      },
      {
        line: 11,
        language: 'js',
        code: 'window.alert(1);',
        prelude: '',
        redis: false,
        skip: 'needs a browser',
      },
      { line: 16, language: 'ts', code: 'run();', prelude: '', redis: false, skip: undefined },
    ]);
  });
});
