import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { start, type RunningApp } from '../../examples/express/app.js';
import { healthy, startDownstream, type Downstream } from './downstream.js';

describe('examples/express', () => {
  let inventory: Downstream;
  let app: RunningApp;

  beforeEach(async () => {
    inventory = await startDownstream();
    app = await start({ port: 0, inventoryUrl: inventory.url });
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
    inventory.script((n, path) => (n === 1 ? { status: 200, delay: 5_000 } : healthy(n, path)));
    const started = performance.now();
    expect(await getStock('42')).toEqual({ status: 200, body: { id: '42', available: 7 } });
    expect(performance.now() - started).toBeLessThan(2_000);
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
