/* eslint-disable @typescript-eslint/no-unsafe-function-type -- a wrapped function is called with any `this` */
/** @internal any function, called with `.call` / `.apply`. */
export type AnyFunction = Function;
/* eslint-enable @typescript-eslint/no-unsafe-function-type */

/** `fn.apply(thisArg, args)` without an arguments array for up to four arguments. */
export function callWith(
  fn: AnyFunction | undefined,
  thisArg: unknown,
  argc: number,
  a0: unknown,
  a1: unknown,
  a2: unknown,
  a3: unknown,
  rest: unknown[] | undefined,
): unknown {
  const f = fn as (this: unknown, ...args: unknown[]) => unknown;
  switch (argc) {
    case 0:
      return f.call(thisArg);
    case 1:
      return f.call(thisArg, a0);
    case 2:
      return f.call(thisArg, a0, a1);
    case 3:
      return f.call(thisArg, a0, a1, a2);
    case 4:
      return f.call(thisArg, a0, a1, a2, a3);
    default:
      return f.apply(thisArg, rest!);
  }
}
