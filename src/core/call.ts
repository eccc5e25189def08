import type { Attempt } from './attempt.js';

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

/** What `policy.execute(task)` runs on each attempt instead of the wrapped function. */
export type Task = (context: Attempt) => unknown;

// eslint-disable-next-line @typescript-eslint/unbound-method -- compared, never called unbound
const nativeThen = Promise.prototype.then;

/**
 * `value` as a plain native promise, which calls each reaction once. `fn`'s own promise is returned as
 * it is only when it is one already (two property reads); anything else, a Promise subclass or a
 * promise whose `then` was replaced included, is an untrusted thenable: a fresh native promise adopts
 * it, so a `then` that calls its handlers twice (or both) cannot reach the pooled per-call state.
 */
export function toPromise(value: unknown): Promise<unknown> {
  if (value instanceof Promise) {
    try {
      if (value.constructor === Promise && value.then === nativeThen)
        return value as Promise<unknown>;
    } catch (error) {
      return Promise.reject(error); // a throwing `constructor` getter
    }
  }
  return toPromiseSlow(value);
}

/**
 * A native promise of anything else than a native promise: out of `toPromise`, which runs on every
 * call and is then small enough for V8 to inline with the rest of the first attempt.
 */
function toPromiseSlow(value: unknown): Promise<unknown> {
  if (!(value instanceof Promise)) return Promise.resolve(value);
  return new Promise(adopt.bind(value));
}

function adopt(this: unknown, resolve: (value: unknown) => void): void {
  resolve(this);
}

/** Calls `fn` (or `task`) with exactly the arguments received; never throws. */
export function run(
  fn: AnyFunction | undefined,
  thisArg: unknown,
  argc: number,
  a0: unknown,
  a1: unknown,
  a2: unknown,
  a3: unknown,
  rest: unknown[] | undefined,
  task: Task | undefined,
  context: Attempt | undefined,
): Promise<unknown> {
  let result: unknown;
  try {
    result =
      task === undefined ? callWith(fn, thisArg, argc, a0, a1, a2, a3, rest) : task(context!);
  } catch (error) {
    return Promise.reject(error);
  }
  return toPromise(result);
}

/* eslint-disable no-restricted-syntax -- slow path: runs only when a call misses, fails, waits or carries a signal */
export function collect(
  argc: number,
  a0: unknown,
  a1: unknown,
  a2: unknown,
  a3: unknown,
  rest: unknown[] | undefined,
): unknown[] {
  if (argc > 4) return rest!;
  return args4(argc, a0, a1, a2, a3);
}

function args4(argc: number, a0: unknown, a1: unknown, a2: unknown, a3: unknown): unknown[] {
  switch (argc) {
    case 0:
      return [];
    case 1:
      return [a0];
    case 2:
      return [a0, a1];
    case 3:
      return [a0, a1, a2];
    default:
      return [a0, a1, a2, a3];
  }
}

/* eslint-enable no-restricted-syntax */
