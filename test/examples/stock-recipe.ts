import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { healthy, startDownstream, type Downstream } from './downstream.js';

/** What every stock recipe's `start()` resolves to. */
export interface StockApp {
  url: string;
  close(): Promise<void>;
}

/**
 * The behaviour the Express and NestJS recipes share, through their route: retry, an attempt timeout of
 * 300 ms, a fallback with a degraded body, and a circuit that opens on the fifth failure.
 */
export function stockRecipeSuite(
  title: string,
  options: {
    /** Starts a fresh app (a fresh circuit breaker) against the inventory at `inventoryUrl`. */
    start: (inventoryUrl: string) => Promise<StockApp>;
    /** How long the slow first attempt takes, and the bound the retried call must finish within. */
    slow: { delay: number; within: number };
  },
): void {
  describe(title, () => {
    let inventory: Downstream;
    let app: StockApp;

    beforeEach(async () => {
      inventory = await startDownstream();
      app = await options.start(inventory.url);
    });

    afterEach(async () => {
      await app.close();
      await inventory.close();
    });

    const getStock = async (id: string) => {
      const response = await fetch(`${app.url}/products/${id}/stock`);
      return { status: response.status, body: await response.json() };
    };

    it('answers from the inventory when it is healthy', async () => {
      expect(await getStock('42')).toEqual({ status: 200, body: { id: '42', available: 7 } });
      expect(inventory.hits).toBe(1);
    });

    it('retries failed attempts and answers with the first success', async () => {
      inventory.script((n, path) => (n <= 2 ? { status: 503 } : healthy(n, path)));
      expect(await getStock('42')).toEqual({ status: 200, body: { id: '42', available: 7 } });
      expect(inventory.hits).toBe(3);
    });

    it('gives up on a slow attempt after 300 ms and retries', async () => {
      const { delay, within } = options.slow;
      inventory.script((n, path) => (n === 1 ? { status: 200, delay } : healthy(n, path)));
      const started = performance.now();
      expect(await getStock('42')).toEqual({ status: 200, body: { id: '42', available: 7 } });
      expect(performance.now() - started).toBeLessThan(within);
      expect(inventory.hits).toBe(2);
    });

    it('serves the fallback when every attempt fails, then opens the circuit', async () => {
      inventory.script(() => ({ status: 500 }));
      // 3 attempts, all failed: the last error reaches the fallback.
      expect(await getStock('1')).toEqual({
        status: 200,
        body: { id: '1', available: null, degraded: 'Error: inventory answered 500' },
      });
      expect(inventory.hits).toBe(3);
      // Failures 4 and 5 open the circuit; the third attempt is rejected without a request.
      expect((await getStock('2')).body).toEqual({
        id: '2',
        available: null,
        degraded: 'ERR_BULWARK_CIRCUIT_OPEN',
      });
      expect(inventory.hits).toBe(5);
      // While open, the inventory is left alone even once it is healthy again.
      inventory.script(healthy);
      expect((await getStock('3')).body).toMatchObject({ degraded: 'ERR_BULWARK_CIRCUIT_OPEN' });
      expect(inventory.hits).toBe(5);
    });
  });
}
