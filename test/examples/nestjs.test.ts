import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { RunningApp } from '../../examples/nestjs/app.js';
import { healthy, startDownstream, type Downstream } from './downstream.js';

describe('examples/nestjs', () => {
  let inventory: Downstream;
  let app: RunningApp;

  beforeEach(async () => {
    // `@resilient` builds one pipeline per decorated method, when the class is defined: a fresh copy of
    // the module gives each test a fresh circuit breaker.
    vi.resetModules();
    const { start } = await import('../../examples/nestjs/app.js');
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

  it('answers from the inventory through the decorated service method', async () => {
    expect(await getStock('42')).toEqual({ status: 200, body: { id: '42', available: 7 } });
    expect(inventory.hits).toBe(1);
  });

  it('retries failed attempts and answers with the first success', async () => {
    inventory.script((n, path) => (n <= 2 ? { status: 503 } : healthy(n, path)));
    expect(await getStock('42')).toEqual({ status: 200, body: { id: '42', available: 7 } });
    expect(inventory.hits).toBe(3);
  });

  it('gives up on a slow attempt after 300 ms and retries', async () => {
    inventory.script((n, path) => (n === 1 ? { status: 200, delay: 800 } : healthy(n, path)));
    const started = performance.now();
    expect(await getStock('42')).toEqual({ status: 200, body: { id: '42', available: 7 } });
    expect(performance.now() - started).toBeLessThan(800);
    expect(inventory.hits).toBe(2);
  });

  it('serves the fallback when every attempt fails, then opens the circuit', async () => {
    inventory.script(() => ({ status: 500 }));
    expect(await getStock('1')).toEqual({
      status: 200,
      body: { id: '1', available: null, degraded: 'Error: inventory answered 500' },
    });
    expect(inventory.hits).toBe(3);
    expect((await getStock('2')).body).toEqual({
      id: '2',
      available: null,
      degraded: 'ERR_BULWARK_CIRCUIT_OPEN',
    });
    expect(inventory.hits).toBe(5);
    inventory.script(healthy);
    expect((await getStock('3')).body).toMatchObject({ degraded: 'ERR_BULWARK_CIRCUIT_OPEN' });
    expect(inventory.hits).toBe(5);
  });
});
