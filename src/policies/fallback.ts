/**
 * The fallback stage: a function `(error, ...args) => value | Promise<value>` or a plain value. It sees
 * every failure, the library's own rejections included, but not a caller's abort.
 */
export type FallbackOption<A extends readonly unknown[] = unknown[]> =
  | ((error: unknown, ...args: A) => unknown)
  | string
  | number
  | boolean
  | bigint
  | symbol
  | null
  | object;

/** The value type a fallback option adds to a wrapped function's result. */
export type FallbackValue<F> = [F] extends [never]
  ? never
  : [F] extends [undefined]
    ? never
    : F extends (...args: never[]) => infer R
      ? Awaited<R>
      : F;

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
