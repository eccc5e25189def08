import { Problems } from './core/validate.js';
import { doNotHedge } from './core/slow-path.js';
import type { AttemptContext } from './core/attempt.js';
import { isTimeoutError } from './errors.js';
import type { Listener, ResilienceEvent, Unsubscribe } from './events.js';
import { OPTION_KEYS, type ResilientOptions } from './options.js';
import { CircuitBreaker } from './policies/circuit-breaker.js';
import type { RetryOptions } from './policies/retry.js';
import {
  executeRouted,
  resilient,
  type Observable,
  type PipelineDescription,
  type PipelineStats,
} from './resilient.js';

/** What `fetch` takes as its first argument. */
export type FetchInput = string | URL | Request;

/** A `fetch`-compatible function. */
export type FetchFunction = (input: FetchInput, init?: RequestInit) => Promise<Response>;

/** Options of {@link resilientFetch}: every option of `resilient()` but `cache`, plus the fetch ones. */
export interface ResilientFetchOptions extends Omit<
  ResilientOptions<[input: FetchInput, init?: RequestInit]>,
  'cache' | 'fallback' | 'retry'
> {
  /**
   * Retry failed attempts: `true` for the defaults, `false` for none, or retry options. A `retryOn`
   * you give replaces the fetch default (network errors, retryable statuses, attempt timeouts), but a
   * request whose method is not in `methods`, or whose body can be read once only (a stream, a Node
   * `Readable`), is still never sent twice, whatever `retryOn` or `retryOnResult` say.
   * The default value is `true` (3 attempts in all, exponential backoff with full jitter).
   */
  retry?: boolean | RetryOptions;
  /**
   * Statuses that count as failures: retried (when the method allows it), recorded by the circuit
   * breaker as failures, and honouring `Retry-After`. Every other status is a success.
   * The default value is `[408, 429, 500, 502, 503, 504]`.
   */
  retryOnStatus?: readonly number[];
  /**
   * Methods that may be sent more than once. A request with another method is never retried once it
   * reached `fetch` (it may be retried when it was rejected before: open circuit, rate limited).
   * The default value is the idempotent methods: `['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']`.
   */
  methods?: readonly string[];
  /**
   * The longest `Retry-After` (ms) honoured, by the retry and by the circuit breaker alike: a response
   * asking for a longer wait is not retried (it is the call's result), and a circuit it opens stays
   * open this long at most. It is the default of `retry.maxRetryAfter` and of
   * `circuitBreaker.maxRetryAfter` (a shared `circuitBreaker()` keeps its own). The default value is
   * `60_000`.
   */
  maxRetryAfter?: number;
  /**
   * When `true`, a retryable-status response left after the last attempt rejects with a
   * {@link ResponseStatusError} (whose `response` is unread) instead of being returned.
   * The default value is `false`.
   */
  throwOnStatus?: boolean;
  /**
   * Called with the call's last error when everything else failed; returns the response to use. A
   * retryable-status response that is left at the end reaches it as a {@link ResponseStatusError}; its
   * body is released unless the fallback returns that very response. The default value is none.
   */
  fallback?: (error: unknown) => Response | Promise<Response>;
  /** The underlying `fetch`. The default value is `globalThis.fetch`, read at each call. */
  fetch?: FetchFunction;
}

/** The fetch-specific options as resolved, shown by `describe().fetch`. */
export interface FetchDescription {
  readonly retryOnStatus: readonly number[];
  readonly methods: readonly string[];
  readonly maxRetryAfter: number;
  readonly throwOnStatus: boolean;
  readonly fetch: 'global' | 'custom';
}

/** The function {@link resilientFetch} returns: `fetch`'s signature, plus `on`, `describe` and `stats`. */
export interface ResilientFetch extends Observable {
  (input: FetchInput, init?: RequestInit): Promise<Response>;
  describe(): PipelineDescription & { readonly fetch: FetchDescription };
}

/**
 * A response whose status is in `retryOnStatus`. Attempts throw it so that the pipeline sees a failure
 * (retry, circuit breaker, fallback); `retryAfter` (ms) comes from the `Retry-After` header. The caller
 * sees it only with `throwOnStatus: true` or in a fallback.
 */
export class ResponseStatusError extends Error {
  override readonly name = 'ResponseStatusError';
  /** The response, body unread. */
  readonly response: Response;
  readonly status: number;
  /** The wait the server asked for with `Retry-After`, in ms; `undefined` without the header. */
  readonly retryAfter: number | undefined;
  constructor(response: Response, retryAfter: number | undefined) {
    super(
      `Response status ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`,
    );
    this.response = response;
    this.status = response.status;
    this.retryAfter = retryAfter;
  }
}

export const FETCH_DEFAULTS = Object.freeze({
  retryOnStatus: Object.freeze<number[]>([408, 429, 500, 502, 503, 504]),
  methods: Object.freeze<string[]>(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']),
  maxRetryAfter: 60_000,
  throwOnStatus: false,
});

const FETCH_KEYS = [
  ...OPTION_KEYS.filter((key) => key !== 'cache'),
  'retryOnStatus',
  'methods',
  'maxRetryAfter',
  'throwOnStatus',
  'fetch',
] as const;

/**
 * Parses a `Retry-After` header: delta-seconds or an HTTP date (RFC 9110 §10.2.3). Returns ms to wait
 * (0 for a date in the past), or `undefined` when absent or malformed.
 */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1_000;
  // An HTTP date starts with a day name ("Sun, 06 Nov 1994 ..."); Date.parse alone takes "1.5" or "-1".
  if (!/^[A-Za-z]{3,9},? /.test(text)) return undefined;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** The default `retryOn` of fetch: network errors, retryable statuses and attempt timeouts. */
function fetchRetryOn(error: unknown): boolean {
  return (
    error instanceof TypeError ||
    error instanceof ResponseStatusError ||
    isTimeoutError(error, 'attempt')
  );
}

/**
 * Whether a request body can be read once only: a `ReadableStream`, or an async iterable (a Node
 * `Readable`, an async generator) that `fetch` consumes as it sends.
 */
function isOneShotBody(body: unknown): boolean {
  return (
    body instanceof ReadableStream ||
    (typeof body === 'object' &&
      body !== null &&
      typeof (body as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function')
  );
}

/** The origin of a request (`https://api.example.com:8443`): the default breaker partition. */
export function originOf(input: FetchInput): string {
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  return new URL(url).origin;
}

const BY_ORIGIN = Object.freeze({ by: originOf });

function releaseBody(response: Response): void {
  if (response.body === null || response.bodyUsed || response.body.locked) return;
  response.body.cancel().catch(() => undefined);
}

/**
 * Makes a `fetch` that retries network errors and the statuses in `retryOnStatus` (for idempotent
 * methods), honours `Retry-After`, passes each attempt's `AbortSignal` to `fetch`, and runs every
 * stage of `resilient()`: timeout, circuit breaker, rate limiter, bulkhead, fallback.
 *
 * Status mapping: a status in `retryOnStatus` is a failure (retried, a breaker failure); any other
 * status, 4xx included, is a success, returned as is. After the last attempt, a retryable-status
 * response is returned as is too (unless `throwOnStatus`, or a fallback takes it).
 *
 * @example
 * const http = resilientFetch({ timeout: { attempt: 2_000, total: 10_000 }, circuitBreaker: {} });
 * const response = await http('https://api.example.com/users/42', { signal: request.signal });
 */
export function resilientFetch(options: ResilientFetchOptions = {}): ResilientFetch {
  const problems = new Problems();
  const o = problems.object('', options, FETCH_KEYS) ?? {};
  const statuses = new Set<number>();
  const retryOnStatus = o.retryOnStatus ?? FETCH_DEFAULTS.retryOnStatus;
  if (!Array.isArray(retryOnStatus)) {
    problems.add('retryOnStatus', retryOnStatus, 'an array of HTTP statuses (integers 100-599)');
  } else {
    retryOnStatus.forEach((status: unknown, i) => {
      if (typeof status === 'number' && Number.isInteger(status) && status >= 100 && status <= 599)
        statuses.add(status);
      else problems.add(`retryOnStatus[${i}]`, status, 'an HTTP status (an integer 100-599)');
    });
  }
  const methods = new Set<string>();
  const methodList = o.methods ?? FETCH_DEFAULTS.methods;
  if (!Array.isArray(methodList)) {
    problems.add('methods', methodList, 'an array of HTTP method names');
  } else {
    methodList.forEach((method: unknown, i) => {
      if (typeof method === 'string' && method !== '') methods.add(method.toUpperCase());
      else problems.add(`methods[${i}]`, method, 'an HTTP method name');
    });
  }
  const maxRetryAfter = problems.number(
    'maxRetryAfter',
    o.maxRetryAfter,
    FETCH_DEFAULTS.maxRetryAfter,
    { min: 0, infinity: true },
  );
  const throwOnStatus = o.throwOnStatus ?? FETCH_DEFAULTS.throwOnStatus;
  if (typeof throwOnStatus !== 'boolean') problems.add('throwOnStatus', throwOnStatus, 'a boolean');
  const customFetch = problems.func<FetchFunction | undefined>('fetch', o.fetch, undefined);
  const userFallback = problems.func<((error: unknown) => unknown) | undefined>(
    'fallback',
    o.fallback,
    undefined,
  );

  /** Errors after which the request must not be sent again (a non-idempotent method, say). */
  const final = new WeakSet<object>();
  const markFinal = (error: unknown): void => {
    if (typeof error === 'object' && error !== null) final.add(error);
  };
  const isFinal = (error: unknown): boolean =>
    typeof error === 'object' && error !== null && final.has(error);

  const retry = o.retry === undefined ? true : o.retry;
  let retryOption: unknown = retry;
  if (retry === true || (typeof retry === 'object' && retry !== null && !Array.isArray(retry))) {
    const given = retry === true ? {} : (retry as RetryOptions & Record<string, unknown>);
    const userRetryOn = given.retryOn;
    const base: (error: unknown, attempt: number) => boolean =
      typeof userRetryOn === 'function' ? userRetryOn : fetchRetryOn;
    const userRetryOnResult = given.retryOnResult;
    retryOption = {
      maxRetryAfter,
      ...given,
      // A non-function is handed on as is, so that resilient() names it.
      retryOn:
        userRetryOn !== undefined && typeof userRetryOn !== 'function'
          ? userRetryOn
          : (error: unknown, attempt: number) => !isFinal(error) && base(error, attempt),
    };
    if (typeof userRetryOnResult === 'function') {
      // The response of a request that must not be sent twice is final, whatever the predicate says.
      (retryOption as RetryOptions).retryOnResult = (result: unknown, attempt: number) =>
        !isFinal(result) && userRetryOnResult(result, attempt);
    }
  }

  const core: Record<string, unknown> = { ...o, retry: retryOption };
  // The same cap on the breaker's hint, unless the options set their own (a shared breaker keeps its).
  // A circuit per origin unless told otherwise: one dead host must not open the circuit for the others.
  const breaker = o.circuitBreaker;
  if (breaker === true) core.circuitBreaker = { maxRetryAfter, partition: BY_ORIGIN };
  else if (typeof breaker === 'object' && breaker !== null && !(breaker instanceof CircuitBreaker))
    core.circuitBreaker = { maxRetryAfter, partition: BY_ORIGIN, ...breaker };
  for (const key of ['retryOnStatus', 'methods', 'maxRetryAfter', 'throwOnStatus', 'fetch'])
    delete core[key];
  if (userFallback !== undefined) {
    core.fallback = (error: unknown): unknown => {
      const result = userFallback(error);
      if (error instanceof ResponseStatusError) {
        void Promise.resolve(result).then(
          (value) => value !== error.response && releaseBody(error.response),
          () => releaseBody(error.response),
        );
      }
      return result;
    };
  }
  let policy: ReturnType<typeof resilient> | undefined;
  try {
    policy = resilient(core as ResilientOptions);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    for (const line of error.message.split('\n').slice(1))
      problems.raw(line.replace(/^ {2}- /, ''));
  }
  problems.throwIfAny('Invalid resilientFetch options');
  const p = policy!;

  // A response that is retried is discarded: release its body (and its connection) when the retry is
  // really scheduled, not before (a retry abandoned for the deadline or the budget returns it).
  p.on((event: ResilienceEvent) => {
    if (event.type === 'retryScheduled' && event.error instanceof ResponseStatusError)
      releaseBody(event.error.response);
    else if (event.type === 'retryResultScheduled' && event.result instanceof Response)
      releaseBody(event.result);
  });

  const description: FetchDescription = Object.freeze({
    retryOnStatus: Object.freeze([...statuses]),
    methods: Object.freeze([...methods]),
    maxRetryAfter,
    throwOnStatus: throwOnStatus === true,
    fetch: customFetch === undefined ? 'global' : 'custom',
  });

  const call = (input: FetchInput, init?: RequestInit): Promise<Response> => {
    const fetchImpl: FetchFunction = customFetch ?? globalThis.fetch;
    // A URL fetch cannot parse fails the same way every time: no attempt, no breaker sample.
    if (typeof input === 'string' && !URL.canParse(input)) return fetchImpl(input, init);
    const request = input instanceof Request ? input : undefined;
    const method = (init?.method ?? request?.method ?? 'GET').toUpperCase();
    // A stream or async-iterable body (a Node `Readable`) is consumed by the first send: such a
    // request is never sent again, whatever its method. A Request's body is cloned for each attempt.
    const repeatable = methods.has(method) && !isOneShotBody(init?.body);
    const cloneRequest = request !== undefined && request.body !== null && init?.body === undefined;
    const callerSignal = init?.signal ?? request?.signal ?? undefined;
    // The first send of a request that must not be repeated: a later attempt returns its outcome again.
    let first: Promise<Response> | undefined;

    const task = (context: AttemptContext): Promise<Response> => {
      // The retry predicates see final outcomes as not retryable (below); this is the last line, for
      // outcomes that cannot be marked (a primitive rejection): the request itself is not sent again.
      if (first !== undefined) return first;
      const signal = context.signal;
      if (!repeatable) {
        // An attempt timeout aborts the attempt with the TimeoutError: that one must not be retried either.
        signal.addEventListener('abort', () => markFinal(signal.reason), { once: true });
      }
      let sent: Promise<Response>;
      try {
        sent = fetchImpl(cloneRequest ? request.clone() : input, { ...init, signal });
      } catch (error) {
        sent = Promise.reject(error);
      }
      const outcome = sent.then(
        (response) => {
          if (signal.aborted) {
            // The pipeline gave up on this attempt already (timeout, abort): nobody will read it.
            releaseBody(response);
            return response;
          }
          if (!statuses.has(response.status)) {
            if (!repeatable) markFinal(response);
            return response;
          }
          const hint = parseRetryAfter(response.headers.get('retry-after'));
          const error = new ResponseStatusError(response, hint);
          // A hint above `maxRetryAfter` is the retry stage's to refuse (its `maxRetryAfter`).
          if (!repeatable) markFinal(error);
          throw error;
        },
        (error: unknown) => {
          if (!repeatable) markFinal(error);
          throw error;
        },
      );
      if (!repeatable) first = outcome;
      return outcome;
    };
    // Never hedged: a second send in parallel is a second send.
    if (!repeatable) doNotHedge(task);

    // Partitioned stages are keyed on `by(input, init)`: the request, not the task.
    const result = executeRouted(p, task, callerSignal, input, init) as Promise<Response>;
    return result.then(undefined, (error: unknown) => {
      if (error instanceof ResponseStatusError && throwOnStatus !== true) return error.response;
      throw error;
    });
  };

  Object.defineProperties(call, {
    name: { value: 'resilientFetch', configurable: true },
    describe: { value: () => ({ ...p.describe(), fetch: description }) },
    on: { value: (listener: Listener): Unsubscribe => p.on(listener) },
    stats: { value: (): PipelineStats => p.stats() },
  });
  return call as ResilientFetch;
}
