/**
 * The README's "describe() and stats()" table documents the shape of every stateful policy's `stats()`;
 * here it is compared, key by key, with what `stats()` returns, so that the two cannot drift apart.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  bulkhead,
  cache,
  circuitBreaker,
  rateLimiter,
  resilient,
  retryBudget,
} from '../src/index.js';
import { ManualClock } from './helpers/manual-clock.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

interface Shape {
  readonly required: string[];
  readonly optional: string[];
}

/** The rows of the stats table: key → documented shape (`name?` is optional). */
function documentedShapes(markdown: string): Map<string, Shape> {
  const start = markdown.indexOf('\n## describe() and stats()');
  const end = markdown.indexOf('\n## ', start + 1);
  const section = markdown.slice(start, end);
  const shapes = new Map<string, Shape>();
  for (const [, key, fields] of section.matchAll(/^\| `(\w+)` \| `\{ ([^}]*) \}` \|/gm)) {
    const names = fields!.split(',').map((field) => field.trim());
    shapes.set(key!, {
      required: names.filter((n) => !n.endsWith('?')),
      optional: names.filter((n) => n.endsWith('?')).map((n) => n.slice(0, -1)),
    });
  }
  return shapes;
}

const shapes = documentedShapes(readme);
const shape = (key: string): Shape => {
  const found = shapes.get(key);
  expect(found, `no row for \`${key}\` in the README's stats table`).toBeDefined();
  return found!;
};
const sorted = (keys: Iterable<string>): string[] => [...keys].sort();

describe('README: the documented stats() shapes are what stats() returns', () => {
  const clock = new ManualClock();
  const policies = {
    circuitBreaker: circuitBreaker({ clock }),
    rateLimiter: rateLimiter({ clock, limit: 10 }),
    bulkhead: bulkhead({ maxConcurrent: 2 }),
    cache: cache({ clock }),
    retryBudget: retryBudget({ clock }),
  };

  it('documents exactly the keys of a pipeline with every stateful stage', () => {
    const wrapped = resilient((id: string) => Promise.resolve(id), {
      clock,
      circuitBreaker: true,
      rateLimiter: { limit: 10 },
      bulkhead: { maxConcurrent: 2 },
      cache: true,
      retry: { budget: retryBudget({ clock }) },
    });
    const stats = wrapped.stats() as Record<string, object>;
    expect(sorted(Object.keys(stats))).toEqual(sorted(shapes.keys()));
    for (const [key, value] of Object.entries(stats)) {
      expect(sorted(Object.keys(value)), key).toEqual(sorted(shape(key).required));
    }
  });

  it.each(Object.keys(policies))(
    '%s: a standalone policy’s stats() has the documented keys',
    (key) => {
      const stats = policies[key as keyof typeof policies].stats();
      expect(sorted(Object.keys(stats))).toEqual(sorted(shape(key).required));
    },
  );

  it('an adaptive bulkhead adds exactly the optional keys', () => {
    const adaptive = bulkhead({ adaptive: true });
    const { required, optional } = shape('bulkhead');
    expect(optional.length).toBeGreaterThan(0);
    expect(sorted(Object.keys(adaptive.stats()))).toEqual(sorted([...required, ...optional]));
    expect(sorted(Object.keys(policies.bulkhead.stats()))).toEqual(sorted(required));
  });

  it('every `stats()); // { ... }` comment in a README snippet shows a documented shape', () => {
    const comments = [...readme.matchAll(/stats\(\)\);?\s*\/\/\s*\{([^}]*)\}/g)];
    expect(comments.length).toBeGreaterThan(0);
    for (const [text, fields] of comments) {
      const keys = sorted(fields!.split(',').map((field) => field.split(':')[0]!.trim()));
      const matches = [...shapes.values()].some(
        ({ required, optional }) =>
          keys.join() === sorted(required).join() ||
          keys.join() === sorted([...required, ...optional]).join(),
      );
      expect(matches, text).toBe(true);
    }
  });
});
