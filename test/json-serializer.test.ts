import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jsonSerializer } from '../src/index.js';

const { encode, decode } = jsonSerializer;

/** Whatever is refused is refused with this TypeError. */
const refusal = (what: string): string => `${what}; pass \`cache.serializer\` to store it`;

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}
class Money {
  constructor(readonly cents: number) {}
  toJSON(): string {
    return `${this.cents / 100} EUR`;
  }
}
class Tags extends Array<string> {}
const sparse = [1, , 3]; // eslint-disable-line no-sparse-arrays
const cyclic: Record<string, unknown> = { a: { b: [] as unknown[] } };
((cyclic.a as Record<string, unknown>).b as unknown[]).push(cyclic);
const symbolKeyed = { ok: 1, [Symbol('secret')]: 2 };

describe('jsonSerializer: refuses what JSON would not read back as it was', () => {
  it.each<[string, unknown, string]>([
    ['NaN', { n: NaN }, '`value.n` is NaN, which JSON reads back as null'],
    ['Infinity', { n: Infinity }, '`value.n` is Infinity, which JSON reads back as null'],
    ['-Infinity', [-Infinity], '`value[0]` is -Infinity, which JSON reads back as null'],
    ['-0', { price: -0 }, '`value.price` is -0, which JSON reads back as 0'],
    ['-0 alone', -0, '`value` is -0, which JSON reads back as 0'],
    [
      'undefined in an array',
      { items: [1, undefined] },
      '`value.items[1]` is undefined in an array, which JSON reads back as null',
    ],
    [
      'a hole',
      { list: sparse },
      '`value.list[1]` is a hole in a sparse array, which JSON reads back as null',
    ],
    ['undefined as the value', undefined, '`value` is undefined, which JSON cannot encode'],
    [
      'a Date, deep inside',
      { items: [{}, {}, {}, { at: new Date(0) }] },
      '`value.items[3].at` is a Date, which JSON reads back as a string',
    ],
    ['a Map', { m: new Map([[1, 2]]) }, '`value.m` is a Map, which JSON reads back as {}'],
    ['a Set', new Set([1]), '`value` is a Set, which JSON reads back as {}'],
    ['a bigint', { id: 1n }, '`value.id` is a bigint, which JSON cannot encode'],
    ['a function', { f: () => 1 }, '`value.f` is a function, which JSON cannot encode'],
    ['a symbol', { s: Symbol('s') }, '`value.s` is a symbol, which JSON cannot encode'],
    [
      'a symbol key',
      { nested: symbolKeyed },
      '`value.nested` has a property keyed by Symbol(secret), which JSON drops',
    ],
    [
      'a class instance',
      { p: new Point(1, 2) },
      '`value.p` is a Point, which JSON reads back as a plain object',
    ],
    [
      'a class with toJSON',
      { total: new Money(150) },
      '`value.total` is a Money, which JSON reads back as what its toJSON returns',
    ],
    [
      'an Array subclass',
      { tags: Tags.from(['a']) },
      '`value.tags` is an Array subclass (Tags), which JSON reads back as a plain array',
    ],
    [
      'a boxed string',
      { s: new String('x') },
      '`value.s` is a String, which JSON reads back as a primitive',
    ],
    ['a RegExp', { r: /x/ }, '`value.r` is a RegExp, which JSON reads back as a plain object'],
    [
      'a typed array',
      { bytes: new Uint8Array(2) },
      '`value.bytes` is an Uint8Array, which JSON reads back as a plain object',
    ],
    [
      'an object with a prototype but no constructor',
      { o: Object.create({ inherited: 1 }) as object },
      '`value.o` is an object with a custom prototype, which JSON reads back as a plain object',
    ],
    ['a cycle', cyclic, '`value.a.b[0]` is a cycle (it contains itself), which JSON cannot encode'],
    [
      'a key that is not an identifier',
      { 'first name': NaN },
      '`value["first name"]` is NaN, which JSON reads back as null',
    ],
  ])('%s', (_name, value, message) => {
    expect(() => encode(value)).toThrow(new TypeError(refusal(message)));
  });

  it('still refuses, without a path, a value whose getter answers differently the second time', () => {
    let reads = 0;
    const fickle = {
      get n() {
        return reads++ === 0 ? NaN : 1;
      },
    };
    expect(() => encode(fickle)).toThrow(
      new TypeError(refusal('`value` cannot be written as JSON')),
    );
  });

  it('names the first problem in key order', () => {
    expect(() => encode({ a: 1, b: { c: NaN }, d: 1n })).toThrow('`value.b.c` is NaN');
  });
});

describe('jsonSerializer: accepts plain data', () => {
  it('round-trips strings, finite numbers, booleans, null, arrays and plain objects', () => {
    const value = {
      s: 'é \u2028 "quoted" \\ \ud800',
      n: [0, 1.5, -2, Number.MAX_VALUE, Number.MIN_VALUE, 1e21],
      b: [true, false],
      nothing: null,
      nested: { deeper: [[{}], []] },
      __proto__: null,
    };
    expect(decode(encode(value))).toEqual(value);
  });

  it('drops a property whose value is undefined (absent reads as undefined), as JSON does', () => {
    expect(encode({ a: 1, b: undefined })).toBe('{"a":1}');
  });

  it('takes an object with a null prototype, read back as a plain object', () => {
    const dictionary = Object.assign(Object.create(null) as Record<string, number>, { a: 1 });
    expect(decode(encode(dictionary))).toStrictEqual({ a: 1 });
  });

  it('takes a value shared by two properties (not a cycle): read back as two copies', () => {
    const shared = { id: 1 };
    expect(decode(encode({ a: shared, b: shared }))).toEqual({ a: { id: 1 }, b: { id: 1 } });
  });
});

/**
 * Equality that sees what JSON loses: `Object.is` for primitives (so -0 and NaN count), holes,
 * prototypes (a decoded object has `Object.prototype`; a `null` prototype is accepted as documented),
 * symbol keys. A property whose value is `undefined` counts as absent, as documented.
 */
function sameData(original: unknown, decoded: unknown): boolean {
  if (typeof original !== 'object' || original === null) return Object.is(original, decoded);
  if (typeof decoded !== 'object' || decoded === null) return false;
  if (Array.isArray(original)) {
    if (Object.getPrototypeOf(original) !== Array.prototype || !Array.isArray(decoded))
      return false;
    if (original.length !== decoded.length) return false;
    for (let i = 0; i < original.length; i++)
      if (!(i in original) || !sameData(original[i], decoded[i])) return false;
    return true;
  }
  const prototype: unknown = Object.getPrototypeOf(original);
  if (prototype !== Object.prototype && prototype !== null) return false;
  if (Object.getOwnPropertySymbols(original).length > 0) return false;
  const a = original as Record<string, unknown>;
  const b = decoded as Record<string, unknown>;
  const keys = Object.keys(a).filter((key) => a[key] !== undefined);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => Object.hasOwn(b, key) && sameData(a[key], b[key]));
}

describe('jsonSerializer: properties', () => {
  it('whatever it accepts reads back the same (or it throws a TypeError)', () => {
    const anything = fc.anything({
      withBigInt: true,
      withBoxedValues: true,
      withDate: true,
      withMap: true,
      withSet: true,
      withNullPrototype: true,
      withObjectString: true,
      withSparseArray: true,
      withTypedArray: true,
      withUnicodeString: true,
    });
    let accepted = 0;
    fc.assert(
      fc.property(anything, (value) => {
        let data: string;
        try {
          data = encode(value);
        } catch (error) {
          expect(error).toBeInstanceOf(TypeError);
          expect((error as Error).message).toMatch(/^`value[^`]*` .*; pass `cache\.serializer`/);
          return;
        }
        accepted++;
        expect(sameData(value, decode(data))).toBe(true);
      }),
      { seed: 20261201, numRuns: 1_000 },
    );
    // The property is not vacuous: a good share of the generated values were accepted.
    expect(accepted).toBeGreaterThan(100);
  });

  it('accepts all JSON data without -0 (no false refusals)', () => {
    const hasNegativeZero = (value: unknown): boolean =>
      Object.is(value, -0) ||
      (typeof value === 'object' && value !== null && Object.values(value).some(hasNegativeZero));
    const json = fc.jsonValue().filter((value) => !hasNegativeZero(value));
    fc.assert(
      fc.property(json, (value) => {
        expect(decode(encode(value))).toStrictEqual(value);
      }),
      { seed: 20261201, numRuns: 500 },
    );
  });
});
