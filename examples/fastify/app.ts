/**
 * Fastify: wrap the function that calls the downstream, with a cache in front of it.
 *
 * `GET /products/:id/stock` asks an inventory service through `getStock(id)`. Answers are cached for 5 s
 * per id, and a cached answer never touches the inventory, nor the breaker: it is served even while the
 * circuit is open. A miss gets 3 attempts; 5 failures in a row open the circuit for 10 s; whatever
 * fails, the fallback answers with `available: null` (a fallback value is never cached).
 * `GET /resilience` shows the live state of the pipeline: `stats()` of the breaker and the cache.
 */
import fastify, { type FastifyInstance } from 'fastify';
import { backoff, isResilienceError, resilient } from 'bulwark';

export interface StartOptions {
  /** Port to listen on; 0 picks a free one. */
  port: number;
  /** The default is 127.0.0.1. */
  host?: string;
  /** Base URL of the inventory service. */
  inventoryUrl: string;
}

export interface RunningApp {
  url: string;
  close(): Promise<void>;
}

export interface Stock {
  id: string;
  available: number | null;
  degraded?: string;
}

export function createApp(inventoryUrl: string): FastifyInstance {
  async function fetchStock(id: string): Promise<Stock> {
    // A wrapped function does not get the attempt's AbortSignal (`policy.execute` does: see the Express
    // recipe), so this one bounds its own request.
    const response = await fetch(`${inventoryUrl}/stock/${encodeURIComponent(id)}`, {
      signal: AbortSignal.timeout(1_000),
    });
    if (!response.ok) throw new Error(`inventory answered ${response.status}`);
    const body = (await response.json()) as { available: number };
    return { id, available: body.available };
  }

  const getStock = resilient(fetchStock, {
    cache: { ttl: 5_000, maxEntries: 10_000 },
    retry: { maxAttempts: 3, backoff: backoff.exponential({ initial: 50, max: 400 }) },
    circuitBreaker: { consecutiveFailures: 5, halfOpenAfter: 10_000 },
    fallback: (error, id): Stock => ({
      id,
      available: null,
      degraded: isResilienceError(error) ? error.code : String(error),
    }),
  });

  const app = fastify({ logger: false });
  app.get<{ Params: { id: string } }>('/products/:id/stock', (request) =>
    getStock(request.params.id),
  );
  app.get('/resilience', () => getStock.stats());
  return app;
}

export async function start(options: StartOptions): Promise<RunningApp> {
  const app = createApp(options.inventoryUrl);
  const url = await app.listen({ port: options.port, host: options.host ?? '127.0.0.1' });
  return { url, close: () => app.close() };
}
