/**
 * Hono (on Node with @hono/node-server): protect the downstream and this service, and say so in HTTP.
 *
 * `GET /products/:id/stock` asks an inventory service. At most 20 requests per second reach it (retries
 * included) and at most 4 at once; 2 attempts of 300 ms each; 5 failures in a row open the circuit for
 * 10 s. There is no fallback here: bulwark's errors become HTTP answers, with `Retry-After` where it
 * knows one.
 *
 * | error                   | status                     |
 * | ----------------------- | -------------------------- |
 * | `RateLimitedError`      | 429 + `Retry-After`        |
 * | `CircuitOpenError`      | 503 + `Retry-After`        |
 * | `BulkheadRejectedError` | 503                        |
 * | `TimeoutError`          | 504                        |
 * | the inventory's own     | 502                        |
 */
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import {
  BulkheadRejectedError,
  CircuitOpenError,
  RateLimitedError,
  TimeoutError,
  backoff,
  resilient,
} from 'bulwark';

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

/** `Retry-After` is in whole seconds. */
const seconds = (ms: number) => String(Math.max(1, Math.ceil(ms / 1_000)));

export function createApp(inventoryUrl: string): Hono {
  const inventory = resilient({
    retry: { maxAttempts: 2, backoff: backoff.constant(50) },
    timeout: 300,
    circuitBreaker: { consecutiveFailures: 5, halfOpenAfter: 10_000 },
    rateLimiter: { limit: 20, interval: 1_000 },
    bulkhead: { maxConcurrent: 4 },
  });

  const app = new Hono();
  app.get('/products/:id/stock', async (c) => {
    const id = c.req.param('id');
    const stock = await inventory.execute(
      async ({ signal }) => {
        const response = await fetch(`${inventoryUrl}/stock/${encodeURIComponent(id)}`, { signal });
        if (!response.ok) throw new Error(`inventory answered ${response.status}`);
        return (await response.json()) as { available: number };
      },
      // Aborted when the client goes away.
      { signal: c.req.raw.signal },
    );
    return c.json({ id, available: stock.available });
  });

  app.onError((error, c) => {
    if (error instanceof RateLimitedError) {
      c.header('Retry-After', seconds(error.retryAfter));
      return c.json({ error: 'rate limited' }, 429);
    }
    if (error instanceof CircuitOpenError) {
      c.header('Retry-After', seconds(error.retryAfter));
      return c.json({ error: 'inventory unavailable (circuit open)' }, 503);
    }
    if (error instanceof BulkheadRejectedError) {
      return c.json({ error: 'too many requests in flight' }, 503);
    }
    if (error instanceof TimeoutError) {
      return c.json({ error: 'inventory timed out' }, 504);
    }
    return c.json({ error: error.message }, 502);
  });
  return app;
}

export async function start(options: StartOptions): Promise<RunningApp> {
  const app = createApp(options.inventoryUrl);
  const host = options.host ?? '127.0.0.1';
  const { server, port } = await new Promise<{ server: ReturnType<typeof serve>; port: number }>(
    (resolve) => {
      const server = serve({ fetch: app.fetch, port: options.port, hostname: host }, (info) =>
        resolve({ server, port: info.port }),
      );
    },
  );
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
