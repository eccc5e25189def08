import type { Serializer } from './store.js';

/**
 * The default {@link Serializer} of a cache with a store: JSON that refuses, with a `TypeError` naming
 * the path inside the value (`value.items[3].at`), anything that would not read back as it was written:
 *
 * - numbers JSON changes: `NaN`, `Infinity`, `-Infinity` (read back as `null`), `-0` (read back as `0`);
 * - `undefined` and holes in arrays (read back as `null`), `undefined` as the value itself;
 * - bigints, functions and symbols, as values or (symbols) as keys;
 * - class instances, `Date`, `Map`, `Set`, `RegExp`, typed arrays, boxed primitives and `Array`
 *   subclasses included: JSON reads them back as strings or plain objects, whatever their `toJSON`;
 * - cycles.
 *
 * Accepted: strings, finite numbers, booleans, `null`, arrays of these, and plain objects (prototype
 * `Object.prototype` or `null`; read back with `Object.prototype`). A property whose value is
 * `undefined` is dropped (it reads back as absent, which reads as `undefined`), as JSON does. Not
 * checked, for speed: non-enumerable properties and named (non-index) properties of arrays, which JSON
 * drops. Checking is one walk of the value before `JSON.stringify`; a second walk, only when the value
 * is refused, finds the path to name.
 */
export const jsonSerializer: Serializer = Object.freeze({
  encode(value: unknown): string {
    if (!isJsonData(value, [])) throw new TypeError(describeProblem(value));
    return JSON.stringify(value);
  },
  decode(data: string): unknown {
    return JSON.parse(data) as unknown;
  },
});

const objectPrototype = Object.prototype;
const arrayPrototype = Array.prototype;

/** True for a number JSON writes and reads back as the same number. */
function isJsonNumber(n: number): boolean {
  return n - n === 0 && (n !== 0 || 1 / n > 0);
}

/** The fast check: no path, no allocation but the stack of open containers (for cycles). */
function isJsonData(value: unknown, open: object[]): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return isJsonNumber(value);
    case 'object': {
      if (value === null) return true;
      const prototype: unknown = Object.getPrototypeOf(value);
      const isArray = prototype === arrayPrototype;
      if (!isArray && prototype !== objectPrototype && prototype !== null) return false;
      for (const container of open) if (container === value) return false;
      open.push(value);
      if (isArray) {
        // A hole reads as undefined.
        for (const item of value as unknown[])
          if (item === undefined || !isJsonData(item, open)) return false;
      } else {
        const object = value as Record<string, unknown>;
        for (const key in object) {
          const item = object[key];
          if (item !== undefined && !isJsonData(item, open)) return false;
        }
        if (Object.getOwnPropertySymbols(object).length > 0) return false;
      }
      open.pop();
      return true;
    }
    default:
      return false; // undefined, bigint, function, symbol
  }
}

/** The message for a value {@link isJsonData} refused: the first problem, with its path. */
function describeProblem(value: unknown): string {
  const problem = findProblem(value, 'value', []) ?? '`value` cannot be written as JSON';
  return `${problem}; pass \`cache.serializer\` to store it`;
}

function findProblem(value: unknown, path: string, open: object[]): string | undefined {
  const at = `\`${path}\``;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      if (isJsonNumber(value)) return undefined;
      return Object.is(value, -0)
        ? `${at} is -0, which JSON reads back as 0`
        : `${at} is ${String(value)}, which JSON reads back as null`;
    case 'undefined':
      return `${at} is undefined, which JSON cannot encode`;
    case 'bigint':
      return `${at} is a bigint, which JSON cannot encode`;
    case 'function':
      return `${at} is a function, which JSON cannot encode`;
    case 'symbol':
      return `${at} is a symbol, which JSON cannot encode`;
  }
  if (value === null) return undefined;
  const object = value as Record<string, unknown>;
  const prototype: unknown = Object.getPrototypeOf(object);
  const isArray = prototype === arrayPrototype;
  if (!isArray && prototype !== objectPrototype && prototype !== null)
    return `${at} is ${instanceName(object)}, which JSON reads back as ${readBackAs(object)}`;
  if (open.includes(object))
    return `${at} is a cycle (it contains itself), which JSON cannot encode`;
  open.push(object);
  let found: string | undefined;
  if (isArray) {
    const array = object as unknown as unknown[];
    for (let i = 0; i < array.length && found === undefined; i++) {
      const itemPath = `${path}[${i}]`;
      if (!(i in array))
        found = `\`${itemPath}\` is a hole in a sparse array, which JSON reads back as null`;
      else if (array[i] === undefined)
        found = `\`${itemPath}\` is undefined in an array, which JSON reads back as null`;
      else found = findProblem(array[i], itemPath, open);
    }
  } else {
    for (const key in object) {
      const item = object[key];
      if (item !== undefined) found = findProblem(item, `${path}${propertyPath(key)}`, open);
      if (found !== undefined) break;
    }
    const symbol = Object.getOwnPropertySymbols(object)[0];
    if (found === undefined && symbol !== undefined)
      found = `${at} has a property keyed by ${String(symbol)}, which JSON drops`;
  }
  open.pop();
  return found;
}

/** `.name` for an identifier, `["a b"]` otherwise. */
function propertyPath(key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

function instanceName(object: object): string {
  if (Array.isArray(object)) return `an Array subclass (${constructorName(object)})`;
  const name = constructorName(object);
  if (name === undefined) return 'an object with a custom prototype';
  return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}`;
}

/** The name of the class whose prototype `object` has (not one inherited from further up). */
function constructorName(object: object): string | undefined {
  const prototype = Object.getPrototypeOf(object) as object;
  const constructor: unknown = Object.hasOwn(prototype, 'constructor')
    ? (prototype as { constructor: unknown }).constructor
    : undefined;
  return typeof constructor === 'function' && constructor.name !== ''
    ? constructor.name
    : undefined;
}

function readBackAs(object: object): string {
  if (Array.isArray(object)) return 'a plain array';
  if (object instanceof Map || object instanceof Set) return '{}';
  if (object instanceof String || object instanceof Number || object instanceof Boolean)
    return 'a primitive';
  if (typeof (object as { toJSON?: unknown }).toJSON === 'function')
    return object instanceof Date ? 'a string' : 'what its toJSON returns';
  return 'a plain object';
}
