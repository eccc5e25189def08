type Method = (...args: unknown[]) => unknown;

/** True when a policy was called as a method decorator (TC39 or legacy). */
export function isDecoratorCall(argc: number, target: unknown, context: unknown): boolean {
  if (argc === 2) return typeof context === 'object' && context !== null && 'kind' in context;
  // Legacy: the target is the prototype, or the class itself for a static method.
  return (
    argc === 3 &&
    (typeof target === 'object' || typeof target === 'function') &&
    target !== null &&
    (typeof context === 'string' || typeof context === 'symbol')
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
