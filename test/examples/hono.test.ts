import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { start, type RunningApp } from '../../examples/hono/app.js';
import { healthy, startDownstream, type Downstream } from './downstream.js';

describe('examples/hono', () => {
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
    return {
      status: response.status,
      retryAfter: response.headers.get('retry-after'),
      body: await response.json(),
    };
  };

  it('retries a failed attempt and answers with the success', async () => {
    inventory.script((n, path) => (n === 1 ? { status: 503 } : healthy(n, path)));
    expect(await getStock('42')).toMatchObject({ status: 200, body: { id: '42', available: 7 } });
    expect(inventory.hits).toBe(2);
  });

  it('answers 504 when both attempts time out', async () => {
    inventory.script(() => ({ status: 200, delay: 5_000 }));
    expect(await getStock('42')).toMatchObject({ status: 504 });
    expect(inventory.hits).toBe(2);
  });

  it('answers 503 beyond 4 requests in flight (bulkhead)', async () => {
    inventory.script((n, path) => ({ ...healthy(n, path), delay: 200 }));
    const started = performance.now();
    const answers = await Promise.all(['1', '2', '3', '4', '5', '6'].map(getStock));
    const elapsed = performance.now() - started;
    const statuses = answers.map((a) => a.status).sort();
    for (const status of statuses) expect([200, 503, 504]).toContain(status);
    // A fifth request is admitted only once one of the first four has answered (200 ms) and then takes
    // 200 ms itself, and an attempt that times out (300 ms) is retried 50 ms later: everything answered
    // within 400 ms means exactly four were admitted and none retried. On a loaded machine the six
    // requests may spread over more than 200 ms (a later one is then rightly admitted), or an attempt may
    // take longer than its 300 ms timeout.
    if (elapsed < 400) {
      expect(statuses).toEqual([200, 200, 200, 200, 503, 503]);
      expect(inventory.hits).toBe(4);
    }
  });

  it('answers 429 with Retry-After beyond 20 requests per second (rate limiter)', async () => {
    // Thirty requests at once. The bound holds however slow the machine is: a burst of 20, then 20 per
    // second of the time the requests took (sent one after another on a loaded machine, 30 requests could
    // take 1.5 s and all be admitted, as they should).
    const started = performance.now();
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => getStock(String(i))));
    const seconds = (performance.now() - started) / 1_000;
    const ok = answers.filter((a) => a.status === 200).length;
    const limited = answers.filter((a) => a.status === 429);
    expect(ok).toBeGreaterThanOrEqual(20);
    expect(ok).toBeLessThanOrEqual(20 + Math.ceil(20 * seconds));
    expect(ok + limited.length).toBe(30);
    if (seconds < 0.45) expect(limited.length).toBeGreaterThan(0);
    for (const answer of limited) expect(answer).toMatchObject({ retryAfter: '1' });
    expect(inventory.hits).toBe(ok);
  });

  it('answers 503 with Retry-After once the circuit is open', async () => {
    inventory.script(() => ({ status: 500 }));
    expect((await getStock('1')).status).toBe(502);
    expect((await getStock('2')).status).toBe(502);
    expect(inventory.hits).toBe(4);
    // The fifth failure opens the circuit; the retry is rejected without a request.
    expect(await getStock('3')).toMatchObject({ status: 503, retryAfter: '10' });
    expect(await getStock('4')).toMatchObject({ status: 503, retryAfter: '10' });
    expect(inventory.hits).toBe(5);
  });
});
