/**
 * The fallback stage: a function `(error, ...args) => value | Promise<value>` or a plain value `F`. It
 * sees every failure, the library's own rejections included, but not a caller's abort. The wrapped
 * function's result type becomes `Awaited<R> | F`. (A plain value cannot itself be a function: a
 * function is always called.)
 */
export type FallbackOption<A extends readonly unknown[] = unknown[], F = unknown> =
  ((error: unknown, ...args: A) => F | PromiseLike<F>) | F;

export interface ResolvedFallback {
  /** Present when the fallback is a function. */
  readonly fn: ((error: unknown, ...args: unknown[]) => unknown) | undefined;
  readonly value: unknown;
}

export function resolveFallback(value: unknown): ResolvedFallback | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'function') {
    return { fn: value as (error: unknown, ...args: unknown[]) => unknown, value: undefined };
  }
  return { fn: undefined, value };
}

export function describeFallback(f: ResolvedFallback): Record<string, unknown> {
  return { stage: 'fallback', type: f.fn === undefined ? 'value' : 'function' };
}
