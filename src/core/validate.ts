/**
 * Option validation. Every resolver reads options through a {@link Problems} collector so that all
 * problems are reported at once, in one TypeError naming the option path, the value received and
 * what was expected.
 */

export function describeValue(value: unknown): string {
  let shown: string;
  try {
    if (typeof value === 'string') shown = JSON.stringify(value);
    else if (typeof value === 'function') shown = `[function ${value.name || 'anonymous'}]`;
    else if (typeof value === 'bigint') shown = `${value}n`;
    else if (typeof value === 'symbol') shown = value.toString();
    else if (Array.isArray(value)) shown = '[array]';
    else if (typeof value === 'object' && value !== null) shown = '[object]';
    else shown = String(value);
  } catch {
    shown = '[unprintable]';
  }
  const type = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
  return `\`${shown}\` (${type})`;
}

/** How many retries `value` asks for, when it is a count. */
function retryCount(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : undefined;
}

/** The hint for a retry count given where `retry` belongs (top level). */
function retryHint(value: unknown): string {
  const n = retryCount(value) ?? 3;
  return `did you mean \`retry\`? \`retry: { maxAttempts: ${n + 1} }\` makes ${n} ${n === 1 ? 'retry' : 'retries'}: \`maxAttempts\` counts all calls, the first included`;
}

/** The hint for a retry count given where `maxAttempts` belongs (inside `retry`). */
function maxAttemptsHint(value: unknown, key: string): string {
  const n = retryCount(value);
  return `did you mean \`retry.maxAttempts\`? It counts all calls, the first included${n === undefined ? '' : `: \`${key}: ${n}\` is \`maxAttempts: ${n + 1}\``}`;
}

/**
 * Unknown options that users of other libraries write (p-retry's and async-retry's `retries`, retry
 * counts of others), by full path: the hint replaces the "did you mean" of the closest name.
 */
const COMMON_MISTAKES: Readonly<Record<string, (value: unknown, key: string) => string>> = {
  retries: retryHint,
  maxRetries: retryHint,
  maxAttempts: () =>
    'did you mean `retry: { maxAttempts }`? It counts all calls, the first included',
  'retry.retries': maxAttemptsHint,
  'retry.maxRetries': maxAttemptsHint,
  'retry.attempts': () =>
    'did you mean `retry.maxAttempts`? It counts all calls, the first included',
};

/** The message for `call` (such as `resilient(fn, options)`) given `value` instead of a function. */
export function notAFunction(call: string, value: unknown): string {
  return value === undefined
    ? `${call}: the function to wrap is undefined (a wrong import name, usually)`
    : `${call}: the function to wrap is ${describeValue(value)}, not a function`;
}

/** Collects option problems; {@link Problems.throwIfAny} raises them as one TypeError. */
export class Problems {
  readonly messages: string[] = [];

  /** "Expected `path` to be `expected`, got `value` (type)", then `hint` if given. */
  add(path: string, value: unknown, expected: string, hint?: string): void {
    this.messages.push(
      `Expected \`${label(path)}\` to be ${expected}, got ${describeValue(value)}${hint === undefined ? '' : `; ${hint}`}`,
    );
  }

  raw(message: string): void {
    this.messages.push(message);
  }

  throwIfAny(context = 'Invalid bulwark options'): void {
    if (this.messages.length === 0) return;
    const list = this.messages.map((m) => `  - ${m}`).join('\n');
    throw new TypeError(`${context}:\n${list}`);
  }

  /** Reads an own property, reporting a throwing getter as a problem instead of crashing. */
  get(object: Record<string, unknown>, key: string, path: string): unknown {
    try {
      return object[key];
    } catch (error) {
      this.messages.push(
        `Could not read \`${path}\`: its getter threw ${error instanceof Error ? error.message : describeValue(error)}`,
      );
      return undefined;
    }
  }

  /**
   * Runs a check that may run user code (a getter, a Proxy trap): a throw becomes a problem naming
   * `path` instead of escaping from option validation.
   */
  guard<T>(path: string, check: () => T, fallback: T): T {
    try {
      return check();
    } catch (error) {
      this.threw(path, error);
      return fallback;
    }
  }

  /** Records that reading the option at `path` threw `error`. */
  threw(path: string, error: unknown): void {
    this.raw(`Could not read \`${label(path)}\`: it threw ${thrown(error)}`);
  }

  /**
   * Checks that `value` is a plain options object whose keys are all known, and returns a safe copy of
   * its defined properties (getters are read once, here).
   */
  object(
    path: string,
    value: unknown,
    known: readonly string[],
  ): Record<string, unknown> | undefined {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.add(path, value, 'an options object');
      return undefined;
    }
    const copy: Record<string, unknown> = {};
    let keys: string[];
    try {
      keys = Object.keys(value);
    } catch (error) {
      this.raw(`Could not list the keys of \`${label(path)}\`: ${String(error)}`);
      return undefined;
    }
    for (const key of keys) {
      const keyPath = path === '' ? key : `${path}.${key}`;
      if (!known.includes(key)) {
        const mistake = COMMON_MISTAKES[keyPath];
        const suggestion = mistake === undefined ? closest(key, known) : undefined;
        const hint =
          mistake !== undefined
            ? ` (${mistake(this.get(value as Record<string, unknown>, key, keyPath), key)})`
            : suggestion === undefined
              ? ''
              : ` (did you mean \`${path === '' ? suggestion : `${path}.${suggestion}`}\`?)`;
        this.raw(`Unknown option \`${keyPath}\`${hint}; known options: ${known.join(', ')}`);
        continue;
      }
      const item = this.get(value as Record<string, unknown>, key, keyPath);
      if (item !== undefined) copy[key] = item;
    }
    return copy;
  }

  /** A finite number within bounds; `integer` requires a whole number. Returns the fallback when invalid. */
  number(
    path: string,
    value: unknown,
    fallback: number,
    rule: {
      min?: number;
      max?: number;
      exclusiveMin?: boolean;
      integer?: boolean;
      infinity?: boolean;
    },
  ): number {
    if (value === undefined) return fallback;
    const ok =
      typeof value === 'number' &&
      !Number.isNaN(value) &&
      (Number.isFinite(value) || rule.infinity === true) &&
      (rule.integer !== true || Number.isInteger(value) || value === Infinity) &&
      (rule.min === undefined ||
        (rule.exclusiveMin === true ? value > rule.min : value >= rule.min)) &&
      (rule.max === undefined || value <= rule.max);
    if (ok) return value;
    this.add(path, value, expectation(rule));
    return fallback;
  }

  func<T>(path: string, value: unknown, fallback: T): T {
    if (value === undefined) return fallback;
    if (typeof value === 'function') return value as T;
    this.add(path, value, 'a function');
    return fallback;
  }

  oneOf<T extends string>(path: string, value: unknown, allowed: readonly T[], fallback: T): T {
    if (value === undefined) return fallback;
    if (typeof value === 'string' && (allowed as readonly string[]).includes(value))
      return value as T;
    this.add(path, value, `one of ${allowed.map((a) => `'${a}'`).join(', ')}`);
    return fallback;
  }
}

function thrown(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : describeValue(error);
}

/** The options object itself has the empty path: name it, rather than print "Expected `` to be". */
function label(path: string): string {
  return path === '' ? 'options' : path;
}

function expectation(rule: {
  min?: number;
  max?: number;
  exclusiveMin?: boolean;
  integer?: boolean;
  infinity?: boolean;
}): string {
  const kind = rule.integer === true ? 'an integer' : 'a number';
  const lower =
    rule.min === undefined ? '' : rule.exclusiveMin === true ? `> ${rule.min}` : `>= ${rule.min}`;
  const upper = rule.max === undefined ? '' : `<= ${rule.max}`;
  const range = [lower, upper].filter((s) => s !== '').join(' and ');
  const inf = rule.infinity === true ? ' (Infinity allowed)' : '';
  return range === '' ? `${kind}${inf}` : `${kind} ${range}${inf}`;
}

function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = distance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = candidate;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j] ?? 0;
      row[j] = Math.min(
        current + 1,
        (row[j - 1] ?? 0) + 1,
        previous + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      previous = current;
    }
  }
  return row[b.length] ?? 0;
}
