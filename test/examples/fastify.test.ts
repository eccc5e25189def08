import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { start, type RunningApp } from '../../examples/fastify/app.js';
import { healthy, startDownstream, type Downstream } from './downstream.js';

describe('examples/fastify', () => {
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

  const get = async (path: string) => {
    const response = await fetch(`${app.url}${path}`);
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const getStock = async (id: string) => (await get(`/products/${id}/stock`)).body;

  it('caches answers per id: a second call does not reach the inventory', async () => {
    expect(await getStock('a')).toEqual({ id: 'a', available: 7 });
    expect(await getStock('a')).toEqual({ id: 'a', available: 7 });
    expect(await getStock('b')).toEqual({ id: 'b', available: 7 });
    expect(inventory.hitsOf('/stock/a')).toBe(1);
    expect(inventory.hitsOf('/stock/b')).toBe(1);
    expect((await get('/resilience')).body.cache).toMatchObject({ size: 2, hits: 1, misses: 2 });
  });

  it('retries failed attempts and answers with the first success', async () => {
    inventory.script((n, path) => (n <= 2 ? { status: 503 } : healthy(n, path)));
    expect(await getStock('a')).toEqual({ id: 'a', available: 7 });
    expect(inventory.hits).toBe(3);
  });

  it('serves the fallback, opens the circuit, and keeps serving cached answers', async () => {
    expect(await getStock('cached')).toEqual({ id: 'cached', available: 7 });
    inventory.script(() => ({ status: 500 }));

    expect(await getStock('b')).toEqual({
      id: 'b',
      available: null,
      degraded: 'Error: inventory answered 500',
    });
    expect(inventory.hits).toBe(1 + 3);
    // Failures 4 and 5 open the circuit; the third attempt is rejected without a request.
    expect(await getStock('c')).toMatchObject({ id: 'c', degraded: 'ERR_BULWARK_CIRCUIT_OPEN' });
    expect(inventory.hits).toBe(1 + 5);
    expect((await get('/resilience')).body.circuitBreaker).toMatchObject({ state: 'open' });

    // The fallback was not cached, the cached answer is still served, and the inventory is left alone.
    expect(await getStock('b')).toMatchObject({ id: 'b', degraded: 'ERR_BULWARK_CIRCUIT_OPEN' });
    expect(await getStock('cached')).toEqual({ id: 'cached', available: 7 });
    expect(inventory.hits).toBe(1 + 5);
  });
});
