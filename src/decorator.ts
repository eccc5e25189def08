type Method = (...args: unknown[]) => unknown;

/** True when a policy was called as a method decorator (TC39 or legacy). */
export function isDecoratorCall(argc: number, target: unknown, context: unknown): boolean {
  if (argc === 2 && typeof context === 'object' && context !== null) return 'kind' in context;
  // Legacy: a field decorator gets no descriptor (2 arguments, or 3 with `undefined`), and is refused by
  // `decorate`. `policy(() => 1, 'x')` is a mistake, not a decorator: its target is not one a legacy
  // decorator can get.
  return (
    (argc === 2 || argc === 3) &&
    isLegacyTarget(target) &&
    (typeof context === 'string' || typeof context === 'symbol')
  );
}

/**
 * What a legacy decorator is applied to: the prototype (an object) for an instance member, the
 * constructor for a static one. A constructor has a `prototype` object (a class, or a function compiled
 * from one); an arrow function, a method or a bound function has none.
 */
function isLegacyTarget(target: unknown): boolean {
  if (typeof target === 'object') return target !== null;
  if (typeof target !== 'function') return false;
  const prototype: unknown = (target as { prototype?: unknown }).prototype;
  return typeof prototype === 'object' && prototype !== null;
}

/**
 * True for a class (its source starts with `class`): `policy(SomeClass)` is a legacy class decorator,
 * never a function to wrap (a class cannot be called without `new`). Read once, at decoration time.
 */
export function isClass(value: unknown): boolean {
  return typeof value === 'function' && /^class\b/.test(Function.prototype.toString.call(value));
}

/** The TypeError for `@resilient` on a class: it would replace the class by a function. */
export function classDecorated(target: { readonly name: string }): TypeError {
  return new TypeError(
    `@resilient decorates class methods only, not a class (\`${target.name || 'anonymous'}\`): decorate its methods`,
  );
}

/**
 * Applies a policy to a method. Standard decorators get `(method, context)` and return the replacement;
 * legacy `experimentalDecorators` get `(prototype, key, descriptor)` and return the descriptor. Either
 * way the pipeline is built once per method, so its state is shared by every instance of the class, and
 * `this` is forwarded on every call.
 */
export function decorate(
  target: unknown,
  context: unknown,
  descriptor: unknown,
  wrap: (method: Method) => Method,
): unknown {
  if (typeof context === 'object' && context !== null) {
    const { kind, name } = context as { kind: string; name: string | symbol };
    if (kind !== 'method' || typeof target !== 'function') {
      throw new TypeError(
        `@resilient decorates class methods only, not ${/^[aeiou]/.test(kind) ? 'an' : 'a'} ${kind} (\`${String(name)}\`)`,
      );
    }
    return wrap(target as Method);
  }
  const d = descriptor as PropertyDescriptor | undefined;
  if (d === undefined || typeof d.value !== 'function') {
    throw new TypeError(
      `@resilient decorates class methods only, not accessors or fields (\`${String(context)}\`)`,
    );
  }
  return { ...d, value: wrap(d.value as Method) };
}
