/**
 * Express: one bulwark policy per downstream, shared by every route that calls it.
 *
 * `GET /products/:id/stock` asks an inventory service. Each attempt gets 300 ms and its own AbortSignal,
 * passed to `fetch`, so a timed-out request is really cancelled; 3 attempts in all with exponential
 * backoff; 5 failures in a row open the circuit for 10 s (calls then fail at once, without touching the
 * inventory); whatever fails, the route answers with a degraded body instead of a 500.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
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

/** What the route answers: the stock, or `available: null` and why when the inventory could not say. */
export type Stock = { available: number } | { available: null; degraded: string };

class HttpError extends Error {
  constructor(readonly status: number) {
    super(`inventory answered ${status}`);
  }
}

export function createApp(inventoryUrl: string): express.Express {
  const inventory = resilient({
    retry: { maxAttempts: 3, backoff: backoff.exponential({ initial: 50, max: 400 }) },
    timeout: { attempt: 300, total: 2_000 },
    circuitBreaker: { consecutiveFailures: 5, halfOpenAfter: 10_000 },
    // `ERR_BULWARK_CIRCUIT_OPEN`, `ERR_BULWARK_TIMEOUT`, ... or the inventory's own failure.
    fallback: (error): Stock => ({
      available: null,
      degraded: isResilienceError(error) ? error.code : String(error),
    }),
  });

  const app = express();
  app.get('/products/:id/stock', async (req, res) => {
    const { id } = req.params;
    // Stop waiting (and cancel the inventory request) when the client goes away.
    const controller = new AbortController();
    res.on('close', () => controller.abort());
    const stock = await inventory.execute(
      async ({ signal }): Promise<Stock> => {
        const response = await fetch(`${inventoryUrl}/stock/${encodeURIComponent(id)}`, { signal });
        if (!response.ok) throw new HttpError(response.status);
        const body = (await response.json()) as { available: number };
        return { available: body.available };
      },
      { signal: controller.signal },
    );
    res.json({ id, ...stock });
  });
  return app;
}

export async function start(options: StartOptions): Promise<RunningApp> {
  const app = createApp(options.inventoryUrl);
  const host = options.host ?? '127.0.0.1';
  const server = await new Promise<Server>((resolve, reject) => {
    const listening: Server = app.listen(options.port, host, (error) =>
      error ? reject(error) : resolve(listening),
    );
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeIdleConnections();
      }),
  };
}
