import { expectTypeOf, test } from 'vitest';
import { resilientSync } from '../src/index.js';

test('resilientSync keeps parameters and returns the value type, not a promise', () => {
  const parse = resilientSync((text: string, strict: boolean) => ({ text, strict }), {
    retry: true,
    cache: { key: (text, strict) => `${text}:${String(strict)}` },
  });
  expectTypeOf(parse).parameters.toEqualTypeOf<[string, boolean]>();
  expectTypeOf(parse).returns.toEqualTypeOf<{ text: string; strict: boolean }>();
});

test('a fallback adds its type to the result', () => {
  const fn = resilientSync((id: number) => `user ${id}`, { fallback: () => null });
  expectTypeOf(fn).returns.toEqualTypeOf<string | null>();
  const withValue = resilientSync((id: number) => id, { fallback: 'none' });
  expectTypeOf(withValue).returns.toEqualTypeOf<number | 'none'>();
});

test('circuitBreaker: true means the defaults', () => {
  expectTypeOf(resilientSync(() => 1, { circuitBreaker: true })).returns.toEqualTypeOf<number>();
});

test('options that would wait are type errors', () => {
  // @ts-expect-error -- resilientSync never waits: no timeout
  resilientSync(() => 1, { timeout: 100 });
  // @ts-expect-error -- no bulkhead
  resilientSync(() => 1, { bulkhead: 2 });
  // @ts-expect-error -- no backoff: retries happen at once
  resilientSync(() => 1, { retry: { backoff: () => 10 } });
  // @ts-expect-error -- the limiter rejects, it never waits
  resilientSync(() => 1, { rateLimiter: { limit: 1, maxWait: 100 } });
  // @ts-expect-error -- no signal
  resilientSync(() => 1, { signal: new AbortController().signal });
});
