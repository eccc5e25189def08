// The few assertions the matrix suite needs, in plain JavaScript: node:assert is not there in a browser
// or a Cloudflare Worker, and the suite must run unchanged everywhere.

export class AssertionError extends Error {
  name = 'AssertionError';
}

function show(value) {
  try {
    return typeof value === 'string' ? JSON.stringify(value) : String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

function fail(message, fallback) {
  throw new AssertionError(message ?? fallback);
}

export function ok(value, message) {
  if (!value) fail(message, `expected a truthy value, got ${show(value)}`);
}

export function equal(actual, expected, message) {
  if (!Object.is(actual, expected))
    fail(message, `expected ${show(expected)}, got ${show(actual)}`);
}

export function notEqual(actual, expected, message) {
  if (Object.is(actual, expected)) fail(message, `expected anything but ${show(expected)}`);
}

function same(a, b) {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => Object.prototype.hasOwnProperty.call(b, key) && same(a[key], b[key]));
}

export function deepEqual(actual, expected, message) {
  if (!same(actual, expected))
    fail(message, `expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

/** Checks an error: a class it must be an instance of, a RegExp for its message, or a predicate. */
function matches(error, expected) {
  if (expected === undefined) return true;
  if (expected instanceof RegExp) return expected.test(String(error?.message ?? error));
  if (expected.prototype !== undefined && expected.prototype instanceof Error)
    return error instanceof expected;
  if (expected === Error) return error instanceof Error;
  return expected(error) === true;
}

export async function rejects(promiseOrFn, expected, message) {
  const promise = typeof promiseOrFn === 'function' ? promiseOrFn() : promiseOrFn;
  let error;
  try {
    await promise;
  } catch (caught) {
    error = { caught };
  }
  if (error === undefined) fail(message, 'expected a rejection, but the promise resolved');
  if (!matches(error.caught, expected))
    fail(message, `the rejection did not match: ${show(error.caught)}`);
}

export function throws(fn, expected, message) {
  let error;
  try {
    fn();
  } catch (caught) {
    error = { caught };
  }
  if (error === undefined) fail(message, 'expected a throw, but the function returned');
  if (!matches(error.caught, expected))
    fail(message, `the error did not match: ${show(error.caught)}`);
}

export default { ok, equal, notEqual, deepEqual, rejects, throws };
