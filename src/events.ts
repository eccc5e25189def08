import type { CircuitState, StorePolicy } from './types.js';

/** Why a call was turned away before `fn` ran. */
export type RejectionReason =
  'circuitOpen' | 'rateLimited' | 'bulkheadFull' | 'bulkheadQueueTimeout';

/**
 * Everything bulwark reports. Event types are past-tense facts. An event object is only built when
 * someone listens.
 */
export type ResilienceEvent =
  | {
      readonly type: 'retryScheduled';
      readonly attempt: number;
      readonly delay: number;
      readonly error: unknown;
    }
  | {
      readonly type: 'retryResultScheduled';
      readonly attempt: number;
      readonly delay: number;
      readonly result: unknown;
    }
  | { readonly type: 'retriesExhausted'; readonly attempts: number; readonly error: unknown }
  | { readonly type: 'retryBudgetExhausted'; readonly attempt: number; readonly error: unknown }
  | {
      readonly type: 'retryAbandoned';
      readonly attempt: number;
      readonly delay: number;
      readonly remaining: number;
      readonly error: unknown;
    }
  | {
      readonly type: 'attemptHedged';
      readonly attempt: number;
      /** 1 for the first hedged attempt (the second call in flight), 2 for the next. */
      readonly hedge: number;
      /** `slow`: the hedge delay passed; `failed`: every attempt in flight had failed. */
      readonly reason: 'slow' | 'failed';
    }
  | {
      readonly type: 'chaosInjected';
      /** `fault`: the attempt failed with `error` instead of calling `fn`. */
      readonly kind: 'fault';
      readonly attempt: number;
      readonly error: unknown;
    }
  | {
      readonly type: 'chaosInjected';
      /** `latency`: the attempt waits `delay` ms before `fn` runs. */
      readonly kind: 'latency';
      readonly attempt: number;
      readonly delay: number;
    }
  | {
      readonly type: 'chaosInjected';
      /** `result`: the attempt returned `value` instead of calling `fn`. */
      readonly kind: 'result';
      readonly attempt: number;
      readonly value: unknown;
    }
  | { readonly type: 'timedOut'; readonly timeout: number; readonly scope: 'attempt' | 'total' }
  | { readonly type: 'fallbackUsed'; readonly error: unknown }
  | {
      readonly type: 'callRejected';
      readonly reason: RejectionReason;
      readonly retryAfter: number;
      /** The partition key of the stage that refused, when it is partitioned. */
      readonly partition?: string;
    }
  | {
      readonly type: 'circuitOpened';
      readonly failureRate: number;
      readonly slowCallRate: number;
      readonly consecutiveFailures: number;
      readonly retryAfter: number;
      /** The partition key, when the breaker is partitioned. */
      readonly partition?: string;
    }
  | { readonly type: 'circuitHalfOpened'; readonly partition?: string }
  | { readonly type: 'circuitClosed'; readonly partition?: string }
  | { readonly type: 'circuitIsolated'; readonly partition?: string }
  | { readonly type: 'circuitStateRestored'; readonly state: CircuitState }
  | { readonly type: 'rateLimitWaited'; readonly wait: number; readonly partition?: string }
  | { readonly type: 'bulkheadQueued'; readonly queued: number; readonly partition?: string }
  | {
      readonly type: 'concurrencyLimitChanged';
      readonly partition?: string;
      readonly limit: number;
      readonly previous: number;
      /** The no-load latency in ms measured by the last probe (NaN before the first). */
      readonly noLoadLatency: number;
      /** True when the limit dropped to `minLimit` for a latency probe. */
      readonly probing: boolean;
    }
  | { readonly type: 'cacheHit'; readonly key: unknown }
  | { readonly type: 'cacheMiss'; readonly key: unknown }
  | { readonly type: 'cacheJoined'; readonly key: unknown }
  | {
      readonly type: 'cacheStaleHit';
      readonly key: unknown;
      /** How old the value is, in ms (past its `ttl`). */
      readonly age: number;
      /** True when this call started the key's background refresh (false: one already runs). */
      readonly refreshing: boolean;
    }
  | { readonly type: 'cacheRefreshFailed'; readonly key: unknown; readonly error: unknown }
  | {
      readonly type: 'staleServed';
      readonly key: unknown;
      readonly age: number;
      readonly error: unknown;
    }
  | {
      readonly type: 'storeUnavailable';
      readonly policy: StorePolicy;
      readonly name: string;
      readonly error: unknown;
      /** The partition key, when the policy is partitioned. */
      readonly partition?: string;
    }
  | {
      readonly type: 'storeRecovered';
      readonly policy: StorePolicy;
      readonly name: string;
      /** The partition key, when the policy is partitioned. */
      readonly partition?: string;
    };

/** The `type` of each {@link ResilienceEvent}. */
export type ResilienceEventType = ResilienceEvent['type'];

/**
 * `event`, with the partition key added when there is one (built only when someone listens).
 * @internal
 */
export function keyed<E extends ResilienceEvent>(event: E, partition: string | undefined): E {
  return partition === undefined ? event : { ...event, partition };
}

/** A listener of {@link ResilienceEvent}s. A listener that throws never changes a call's result. */
export type Listener = (event: ResilienceEvent) => void;

/** Stops listening. Calling it twice is harmless. */
export type Unsubscribe = () => void;

/**
 * A tiny emitter: zero or one listener costs no array, and callers check {@link Emitter.listening}
 * before they build an event object.
 */
export class Emitter {
  private listeners: Listener | Listener[] | undefined = undefined;
  /** True while at least one listener is attached: build the event only then. */
  listening = false;

  on(listener: Listener): Unsubscribe {
    const current = this.listeners;
    if (current === undefined) this.listeners = listener;
    else if (typeof current === 'function') this.listeners = [current, listener];
    else this.listeners = [...current, listener];
    this.listening = true;
    let active = true;
    return () => {
      if (!active) return;
      active = false;
      this.off(listener);
    };
  }

  private off(listener: Listener): void {
    const current = this.listeners;
    if (current === listener) this.listeners = undefined;
    else if (Array.isArray(current)) {
      const index = current.indexOf(listener);
      if (index !== -1) {
        const next = current.slice();
        next.splice(index, 1);
        this.listeners = next.length === 1 ? next[0] : next;
      }
    }
    this.listening = this.listeners !== undefined;
  }

  emit(event: ResilienceEvent): void {
    const current = this.listeners;
    if (current === undefined) return;
    if (typeof current === 'function') return safeCall(current, event);
    // The array is copied on write, so listeners may unsubscribe while we iterate.
    for (const listener of current) safeCall(listener, event);
  }
}

function safeCall(listener: Listener, event: ResilienceEvent): void {
  try {
    listener(event);
  } catch (error) {
    // A broken listener must change neither the call's outcome nor the process's fate: rethrowing it
    // later (queueMicrotask) would be an uncaught exception, which ends a Node process by default.
    // It is reported as a process warning instead, with the listener's error as the detail.
    reportListenerError(error, event.type);
  }
}

/** Reports an error thrown by an event listener as a process warning (`BULWARK_LISTENER_ERROR`). */
export function reportListenerError(error: unknown, eventType: string): void {
  const detail = error instanceof Error ? (error.stack ?? String(error)) : String(error);
  const emitWarning = (globalThis as { process?: { emitWarning?: unknown } }).process?.emitWarning;
  if (typeof emitWarning !== 'function') return;
  (emitWarning as (warning: string, options: object) => void).call(
    (globalThis as { process?: unknown }).process,
    `A bulwark event listener threw on a \`${eventType}\` event; the call it observed is unaffected`,
    { type: 'BulwarkWarning', code: 'BULWARK_LISTENER_ERROR', detail },
  );
}
