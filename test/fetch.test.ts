import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CircuitOpenError,
  parseRetryAfter,
  resilientFetch,
  ResponseStatusError,
  TimeoutError,
  type FetchInput,
  type PipelineStats,
  type ResilienceEvent,
  type ResilientFetch,
} from '../src/index.js';
import { ManualClock } from './helpers/manual-clock.js';

/** One scripted answer of the test server, used by one request in arrival order. */
type Step =
  | { status: number; headers?: Record<string, string>; body?: string }
  | { reset: true }
  | { hold: true }
  | { stream: true; status: number };

interface Received {
  method: string;
  url: string;
  body: string;
  /** Resolves when the client closed the connection or the response finished. */
  closed: Promise<'aborted' | 'finished'>;
}

/** A real HTTP server on 127.0.0.1 that answers each request with the next step of its script. */
class ScriptedServer {
  readonly received: Received[] = [];
  private script: Step[] = [];
  private server: Server | undefined;
  private waiters: { count: number; resolve: () => void }[] = [];
  private readonly open = new Set<ServerResponse>();
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}`;
  }

  async stop(): Promise<void> {
    for (const res of this.open) res.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }

  answer(...steps: Step[]): void {
    this.script.push(...steps);
  }

  /** Resolves once `count` requests arrived (with their bodies). */
  requests(count: number): Promise<void> {
    if (this.received.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const step = this.script.shift() ?? { status: 200, body: 'default' };
      this.open.add(res);
      const closed = new Promise<'aborted' | 'finished'>((resolve) => {
        res.on('close', () => {
          this.open.delete(res);
          resolve(res.writableFinished ? 'finished' : 'aborted');
        });
      });
      this.received.push({
        method: req.method ?? '',
        url: req.url ?? '',
        body: Buffer.concat(chunks).toString(),
        closed,
      });
      for (const waiter of this.waiters.filter((w) => this.received.length >= w.count))
        waiter.resolve();
      this.waiters = this.waiters.filter((w) => this.received.length < w.count);
      if ('reset' in step) {
        req.socket.destroy();
      } else if ('hold' in step) {
        // Never answers: only the client's abort ends it.
      } else if ('stream' in step) {
        res.writeHead(step.status, { 'content-type': 'text/plain' });
        res.write('partial body that never ends ');
      } else {
        res.writeHead(step.status, step.headers);
        res.end(step.body ?? `status ${step.status}`);
      }
    });
  }
}

/** Resolves with the next event of `type`. */
function next(target: ResilientFetch, type: ResilienceEvent['type']): Promise<ResilienceEvent> {
  return new Promise((resolve) => {
    const off = target.on((event) => {
      if (event.type !== type) return;
      off();
      resolve(event);
    });
  });
}

const now = (): number => 0;
const noDelay = { maxAttempts: 3, backoff: now };

let server: ScriptedServer;
beforeEach(async () => {
  server = new ScriptedServer();
  await server.start();
});
afterEach(async () => {
  await server.stop();
});

describe('resilientFetch: statuses', () => {
  it('retries a retryable status and returns the response that succeeded', async () => {
    server.answer({ status: 503 }, { status: 502 }, { status: 200, body: 'ok' });
    const http = resilientFetch({ retry: noDelay });
    const response = await http(`${server.url}/users/42`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('ok');
    expect(server.received.map((r) => r.url)).toEqual(['/users/42', '/users/42', '/users/42']);
  });

  it('retries each default status: 408, 429, 500, 502, 503, 504', async () => {
    const http = resilientFetch({ retry: { maxAttempts: 2, backoff: now } });
    for (const status of [408, 429, 500, 502, 503, 504]) {
      server.answer({ status }, { status: 200 });
      expect((await http(server.url)).status).toBe(200);
    }
    expect(server.received).toHaveLength(12);
  });

  it('returns the last retryable-status response as is, body readable, when attempts run out', async () => {
    server.answer({ status: 503 }, { status: 503 }, { status: 503, body: 'third' });
    const http = resilientFetch({ retry: noDelay });
    const response = await http(server.url);
    expect(response.status).toBe(503);
    expect(await response.text()).toBe('third');
    expect(server.received).toHaveLength(3);
  });

  it('rejects with ResponseStatusError after the last attempt when throwOnStatus is set', async () => {
    server.answer({ status: 500 }, { status: 500, body: 'last' });
    const http = resilientFetch({ retry: { maxAttempts: 2, backoff: now }, throwOnStatus: true });
    const error = (await http(server.url).catch((e: unknown) => e)) as ResponseStatusError;
    expect(error).toBeInstanceOf(ResponseStatusError);
    expect(error.status).toBe(500);
    expect(await error.response.text()).toBe('last');
  });

  it.each([400, 401, 403, 404, 409, 422, 501, 505])('never retries status %i', async (status) => {
    server.answer({ status }, { status: 200 });
    const http = resilientFetch({ retry: noDelay });
    expect((await http(server.url)).status).toBe(status);
    expect(server.received).toHaveLength(1);
  });

  it('retries the statuses given in retryOnStatus, and only those', async () => {
    server.answer({ status: 418 }, { status: 200 }, { status: 503 });
    const http = resilientFetch({ retry: noDelay, retryOnStatus: [418] });
    expect((await http(server.url)).status).toBe(200);
    expect((await http(server.url)).status).toBe(503);
    expect(server.received).toHaveLength(3);
  });

  it('is on by default: 3 attempts in all', async () => {
    server.answer({ status: 503 }, { status: 503 }, { status: 200 });
    const clock = new ManualClock();
    const http = resilientFetch({ clock });
    let scheduled = 0;
    http.on((event) => {
      if (event.type === 'retryScheduled') scheduled++;
    });
    const response = http(server.url);
    for (let retries = 1; retries <= 2; retries++) {
      while (scheduled < retries) await new Promise((resolve) => setTimeout(resolve, 1));
      await clock.runAll();
    }
    expect((await response).status).toBe(200);
    expect(server.received).toHaveLength(3);
    expect(http.describe().stages.find((s) => s.stage === 'retry')).toMatchObject({
      enabled: true,
      maxAttempts: 3,
    });
  });

  it('makes no retry with retry: false', async () => {
    server.answer({ status: 503 }, { status: 200 });
    const http = resilientFetch({ retry: false });
    expect((await http(server.url)).status).toBe(503);
    expect(server.received).toHaveLength(1);
  });
});

describe('resilientFetch: network errors', () => {
  it('retries a reset connection', async () => {
    server.answer({ reset: true }, { status: 200, body: 'after reset' });
    const http = resilientFetch({ retry: noDelay });
    const response = await http(server.url);
    expect(await response.text()).toBe('after reset');
    expect(server.received).toHaveLength(2);
  });

  it("rethrows fetch's own TypeError when every attempt failed", async () => {
    server.answer({ reset: true }, { reset: true }, { reset: true });
    const http = resilientFetch({ retry: noDelay });
    const error = await http(server.url).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect(server.received).toHaveLength(3);
  });

  it('does not retry a URL fetch cannot parse, nor count it', async () => {
    let calls = 0;
    const http = resilientFetch({
      retry: noDelay,
      circuitBreaker: { consecutiveFailures: 1 },
      fetch: (input, init) => {
        calls++;
        return fetch(input, init);
      },
    });
    await expect(http('not a url')).rejects.toThrow(TypeError);
    expect(calls).toBe(1);
    expect(http.stats().partitions?.circuitBreaker?.count).toBe(0); // not even a partition made
  });
});

describe('resilientFetch: methods', () => {
  it('never sends a POST twice: neither on a retryable status nor on a reset', async () => {
    server.answer({ status: 503 }, { reset: true }, { status: 200 });
    const http = resilientFetch({ retry: noDelay });
    const first = await http(server.url, { method: 'POST', body: 'a' });
    expect(first.status).toBe(503);
    await expect(http(server.url, { method: 'post', body: 'b' })).rejects.toThrow(TypeError);
    expect(server.received.map((r) => [r.method, r.body])).toEqual([
      ['POST', 'a'],
      ['POST', 'b'],
    ]);
  });

  it('retries a POST when methods allows it, sending its body again', async () => {
    server.answer({ status: 503 }, { status: 201 });
    const http = resilientFetch({ retry: noDelay, methods: ['POST'] });
    const response = await http(server.url, { method: 'POST', body: 'payload' });
    expect(response.status).toBe(201);
    expect(server.received.map((r) => r.body)).toEqual(['payload', 'payload']);
  });

  it('retries a PUT given as a Request object, with its body each time', async () => {
    server.answer({ status: 503 }, { status: 200 });
    const http = resilientFetch({ retry: noDelay });
    const request = new Request(`${server.url}/item`, { method: 'PUT', body: 'v1' });
    expect((await http(request)).status).toBe(200);
    expect(server.received.map((r) => [r.method, r.url, r.body])).toEqual([
      ['PUT', '/item', 'v1'],
      ['PUT', '/item', 'v1'],
    ]);
  });

  it('does not retry a POST that timed out (it may have been processed)', async () => {
    server.answer({ hold: true }, { status: 200 });
    const clock = new ManualClock();
    const http = resilientFetch({ retry: noDelay, timeout: 1_000, clock });
    const outcome = http(server.url, { method: 'POST', body: 'x' }).catch((e: unknown) => e);
    await server.requests(1);
    await clock.advance(1_000);
    expect(await outcome).toBeInstanceOf(TimeoutError);
    expect(server.received).toHaveLength(1);
  });

  it('retries a POST rejected by the circuit before it was sent', async () => {
    server.answer({ status: 503 }, { status: 200 });
    const clock = new ManualClock();
    const http = resilientFetch({
      clock,
      retry: { maxAttempts: 2, backoff: now, retryOn: (e) => e instanceof CircuitOpenError },
      circuitBreaker: { consecutiveFailures: 1, halfOpenAfter: 500 },
    });
    expect((await http(server.url)).status).toBe(503); // opens the circuit
    const scheduled = next(http, 'retryScheduled');
    const response = http(server.url, { method: 'POST', body: 'x' });
    expect(await scheduled).toMatchObject({ delay: 500 }); // the CircuitOpenError's retryAfter
    await clock.advance(500);
    expect((await response).status).toBe(200);
    expect(server.received.map((r) => r.method)).toEqual(['GET', 'POST']);
  });
});

describe('resilientFetch: a request is never sent twice unless it may be', () => {
  const isOk = (result: unknown): boolean => (result as Response).status === 200;

  it('never re-sends a POST for retryOnResult (one send, that response returned)', async () => {
    server.answer({ status: 200, body: 'first' }, { status: 200 }, { status: 200 });
    const http = resilientFetch({ retry: { ...noDelay, retryOnResult: isOk } });
    const response = await http(server.url, { method: 'POST', body: 'x' });
    expect(await response.text()).toBe('first');
    expect(server.received).toHaveLength(1);
  });

  it('still retries a GET for retryOnResult (the predicate works)', async () => {
    server.answer({ status: 200 }, { status: 200 }, { status: 200, body: 'third' });
    const http = resilientFetch({ retry: { ...noDelay, retryOnResult: isOk } });
    expect(await (await http(server.url)).text()).toBe('third');
    expect(server.received).toHaveLength(3);
  });

  it('cancels the body of a response discarded by a retryOnResult retry', async () => {
    server.answer({ stream: true, status: 200 }, { status: 200, body: 'fresh' });
    const http = resilientFetch({
      retry: { ...noDelay, retryOnResult: (_result, attempt) => attempt === 1 },
    });
    const response = await http(server.url);
    expect(await response.text()).toBe('fresh');
    // The first body never ends: only the client's cancel closes its connection.
    expect(await server.received[0]!.closed).toBe('aborted');
  });

  it('does not cancel the body of the response it returns after retryOnResult', async () => {
    server.answer({ status: 200, body: 'a' }, { status: 200, body: 'last' });
    const http = resilientFetch({ retry: { maxAttempts: 2, backoff: now, retryOnResult: isOk } });
    expect(await (await http(server.url)).text()).toBe('last');
  });

  const streams: [string, () => unknown][] = [
    ['a Node Readable', () => Readable.from([Buffer.from('part 1, '), Buffer.from('part 2')])],
    [
      'an async iterable',
      () =>
        (async function* () {
          yield new TextEncoder().encode('part 1, ');
          yield new TextEncoder().encode('part 2');
        })(),
    ],
    [
      'a ReadableStream',
      () =>
        new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode('part 1, part 2'));
            controller.close();
          },
        }),
    ],
  ];

  it.each(streams)(
    'sends a PUT with %s body once and returns the real 503, not a body error',
    async (_name, makeBody) => {
      server.answer({ status: 503, body: 'busy' }, { status: 200 });
      const http = resilientFetch({ retry: noDelay, circuitBreaker: { consecutiveFailures: 2 } });
      const init = { method: 'PUT', body: makeBody(), duplex: 'half' } as RequestInit;
      const response = await http(server.url, init);
      expect(response.status).toBe(503);
      expect(await response.text()).toBe('busy');
      expect(server.received.map((r) => r.body)).toEqual(['part 1, part 2']);
      // One failure (the 503), not a second one for a body that could not be sent again.
      expect(onlyCircuit(http)).toMatchObject({ state: 'closed', failures: 1 });
    },
  );

  it('never sends a POST twice even when fetch rejects with a primitive and retryOn says yes', async () => {
    let sends = 0;
    const http = resilientFetch({
      retry: { ...noDelay, retryOn: () => true },
      fetch: () => {
        sends++;
        return Promise.reject('connection lost');
      },
    });
    await expect(http(server.url, { method: 'POST', body: 'x' })).rejects.toBe('connection lost');
    expect(sends).toBe(1);
  });
});

describe('resilientFetch: Retry-After', () => {
  it('waits the seconds of Retry-After before the retry', async () => {
    server.answer({ status: 429, headers: { 'retry-after': '2' } }, { status: 200 });
    const clock = new ManualClock();
    const http = resilientFetch({ retry: { maxAttempts: 2 }, clock });
    const response = http(server.url);
    expect(await next(http, 'retryScheduled')).toMatchObject({ attempt: 1, delay: 2_000 });
    await clock.advance(1_999);
    expect(server.received).toHaveLength(1);
    await clock.advance(1);
    expect((await response).status).toBe(200);
    expect(server.received).toHaveLength(2);
  });

  it('waits until the HTTP date of Retry-After', async () => {
    const at = new Date(Date.now() + 30_000).toUTCString();
    server.answer({ status: 503, headers: { 'retry-after': at } }, { status: 200 });
    const clock = new ManualClock();
    const http = resilientFetch({ retry: { maxAttempts: 2 }, clock });
    const response = http(server.url);
    const event = (await next(http, 'retryScheduled')) as { delay: number };
    // An HTTP date has a resolution of one second.
    expect(event.delay).toBeGreaterThan(28_000);
    expect(event.delay).toBeLessThanOrEqual(30_000);
    await clock.advance(event.delay);
    expect((await response).status).toBe(200);
  });

  it('does not retry when Retry-After asks for more than maxRetryAfter', async () => {
    server.answer({ status: 503, headers: { 'retry-after': '120' } }, { status: 200 });
    const http = resilientFetch({ retry: { maxAttempts: 3 }, maxRetryAfter: 60_000 });
    const response = await http(server.url);
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('120');
    expect(server.received).toHaveLength(1);
  });

  // issue 10 item 10: maxRetryAfter bounds the breaker's hint as well as the retry's.
  it.each([
    ['circuitBreaker: options', { consecutiveFailures: 1, halfOpenAfter: 1_000 }],
    ['circuitBreaker: true', true],
  ] as const)(
    'a Retry-After of 31 years opens the circuit for maxRetryAfter at most (%s)',
    async (_label, circuitBreaker) => {
      server.answer({ status: 503, headers: { 'retry-after': '999999999' } });
      const clock = new ManualClock();
      const http = resilientFetch({ retry: { maxAttempts: 3 }, circuitBreaker, clock });
      const events: ResilienceEvent[] = [];
      http.on((event) => events.push(event));
      if (circuitBreaker === true) {
        // The defaults need 20 failures in 100 calls: open it with that many 503s.
        server.answer(
          ...Array.from({ length: 19 }, () => ({
            status: 503,
            headers: { 'retry-after': '999999999' },
          })),
        );
        for (let i = 0; i < 19; i++) await http(server.url);
      }
      const response = await http(server.url);
      expect(response.status).toBe(503);
      expect(events.find((e) => e.type === 'retryAbandoned')).toMatchObject({
        delay: 999_999_999_000,
        remaining: 60_000,
      });
      expect(events.find((e) => e.type === 'circuitOpened')).toMatchObject({ retryAfter: 60_000 });
      expect(onlyCircuit(http)).toMatchObject({ state: 'open', retryAfter: 60_000 });
      expect(http.describe().stages.find((s) => s.stage === 'retry')?.maxRetryAfter).toBe(60_000);
    },
  );

  it('a custom maxRetryAfter bounds both; a stage option of its own wins', async () => {
    server.answer(
      { status: 503, headers: { 'retry-after': '20' } },
      { status: 503, headers: { 'retry-after': '20' } },
      { status: 200 },
    );
    const clock = new ManualClock();
    const http = resilientFetch({
      maxRetryAfter: 10_000,
      retry: { maxAttempts: 2 },
      circuitBreaker: { consecutiveFailures: 1, halfOpenAfter: 1_000 },
      clock,
    });
    expect((await http(server.url)).status).toBe(503);
    expect(server.received).toHaveLength(1); // 20 s > 10 s: not waited for
    expect(onlyCircuit(http)).toMatchObject({ state: 'open', retryAfter: 10_000 });
    const own = resilientFetch({
      maxRetryAfter: 10_000,
      retry: { maxAttempts: 2, maxRetryAfter: 30_000 },
      circuitBreaker: { consecutiveFailures: 2, maxRetryAfter: 2_000 },
      clock,
    });
    const response = own(server.url);
    expect(await next(own, 'retryScheduled')).toMatchObject({ delay: 20_000 });
    expect(own.describe().stages.find((s) => s.stage === 'circuitBreaker')).toMatchObject({
      maxRetryAfter: 2_000,
    });
    await clock.advance(20_000);
    expect((await response).status).toBe(200);
  });

  it('a Retry-After date in the past retries at once', async () => {
    const past = new Date(Date.now() - 60_000).toUTCString();
    server.answer({ status: 503, headers: { 'retry-after': past } }, { status: 200 });
    const clock = new ManualClock();
    const http = resilientFetch({ retry: { maxAttempts: 2, backoff: () => 5_000 }, clock });
    const response = http(server.url);
    expect(await next(http, 'retryScheduled')).toMatchObject({ delay: 0 });
    expect((await response).status).toBe(200);
  });

  it.each([['-5'], ['NaN'], ['1e3'], ['soon']])(
    'a malformed Retry-After (%j) is ignored: the backoff applies',
    async (header) => {
      server.answer({ status: 503, headers: { 'retry-after': header } }, { status: 200 });
      const clock = new ManualClock();
      const http = resilientFetch({ retry: { maxAttempts: 2, backoff: () => 250 }, clock });
      const response = http(server.url);
      expect(await next(http, 'retryScheduled')).toMatchObject({ delay: 250 });
      await clock.advance(250);
      expect((await response).status).toBe(200);
    },
  );

  it('gives up when the total deadline cannot hold the Retry-After wait, returning the response', async () => {
    server.answer({ status: 503, headers: { 'retry-after': '5' }, body: 'busy' }, { status: 200 });
    const http = resilientFetch({
      retry: true,
      timeout: { total: 3_000 },
      clock: new ManualClock(),
    });
    const abandoned = next(http, 'retryAbandoned');
    const response = await http(server.url);
    expect(await abandoned).toMatchObject({ delay: 5_000 });
    expect(await response.text()).toBe('busy');
  });

  it.each([
    ['0', 0],
    ['3', 3_000],
    [' 7 ', 7_000],
    ['Wed, 21 Oct 2015 07:28:10 GMT', 10_000],
    ['Wed, 21 Oct 2015 07:27:00 GMT', 0],
    ['soon', undefined],
    ['-1', undefined],
    ['1.5', undefined],
  ])('parseRetryAfter(%j) is %j ms', (value, expected) => {
    expect(parseRetryAfter(value, Date.parse('Wed, 21 Oct 2015 07:28:00 GMT'))).toBe(expected);
  });

  it('parseRetryAfter(null) is undefined', () => {
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});

describe('resilientFetch: signals and bodies', () => {
  it("aborts the attempt's request on an attempt timeout, then retries", async () => {
    server.answer({ hold: true }, { status: 200, body: 'second' });
    const clock = new ManualClock();
    const http = resilientFetch({ retry: noDelay, timeout: 1_000, clock });
    const response = http(server.url);
    await server.requests(1);
    await clock.advance(1_000);
    expect(await server.received[0]!.closed).toBe('aborted');
    expect(await (await response).text()).toBe('second');
  });

  it("aborts the whole call on the caller's signal, with its reason, and sends nothing more", async () => {
    server.answer({ hold: true }, { status: 200 });
    const controller = new AbortController();
    const http = resilientFetch({ retry: noDelay });
    const response = http(server.url, { signal: controller.signal });
    await server.requests(1);
    const reason = new Error('caller gave up');
    controller.abort(reason);
    await expect(response).rejects.toBe(reason);
    expect(await server.received[0]!.closed).toBe('aborted');
    expect(server.received).toHaveLength(1);
  });

  it("honours the signal of a Request object as the caller's signal", async () => {
    server.answer({ hold: true });
    const controller = new AbortController();
    const http = resilientFetch({ retry: noDelay });
    const response = http(new Request(server.url, { signal: controller.signal }));
    await server.requests(1);
    controller.abort(new Error('stop'));
    await expect(response).rejects.toThrow('stop');
  });

  it('rejects at once, sending nothing, when the signal is already aborted', async () => {
    const http = resilientFetch({ retry: noDelay });
    const reason = new Error('already');
    await expect(http(server.url, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(server.received).toHaveLength(0);
  });

  it('releases the body of a response it retries', async () => {
    server.answer({ stream: true, status: 503 }, { status: 200, body: 'fresh' });
    const http = resilientFetch({ retry: noDelay });
    const response = await http(server.url);
    expect(await response.text()).toBe('fresh');
    // The first response's body never ended: only the client's release closes it.
    expect(await server.received[0]!.closed).toBe('aborted');
  });

  it('passes the init options (headers, method) through to fetch', async () => {
    const seen: RequestInit[] = [];
    const http = resilientFetch({
      fetch: (input, init) => {
        seen.push(init!);
        return fetch(input, init);
      },
    });
    await http(server.url, { method: 'DELETE', headers: { 'x-id': '7' } });
    expect(seen[0]).toMatchObject({ method: 'DELETE', headers: { 'x-id': '7' } });
    expect(seen[0]!.signal).toBeInstanceOf(AbortSignal);
    expect(server.received[0]!.method).toBe('DELETE');
  });
});

describe('resilientFetch: circuit breaker and fallback', () => {
  it('counts retryable statuses as breaker failures and opens the circuit', async () => {
    server.answer({ status: 503 }, { status: 500 }, { status: 200 });
    const http = resilientFetch({ retry: false, circuitBreaker: { consecutiveFailures: 2 } });
    expect((await http(server.url)).status).toBe(503);
    expect((await http(server.url)).status).toBe(500);
    await expect(http(server.url)).rejects.toBeInstanceOf(CircuitOpenError);
    expect(server.received).toHaveLength(2);
  });

  it('does not count other 4xx as breaker failures', async () => {
    server.answer({ status: 404 }, { status: 400 }, { status: 422 });
    const http = resilientFetch({ retry: false, circuitBreaker: { consecutiveFailures: 2 } });
    for (let i = 0; i < 3; i++) await http(server.url);
    expect(onlyCircuit(http)).toMatchObject({ state: 'closed', failures: 0, calls: 3 });
  });

  it('hands a retryable-status response left at the end to the fallback, releasing its body', async () => {
    server.answer({ status: 503 }, { stream: true, status: 503 });
    const errors: unknown[] = [];
    const http = resilientFetch({
      retry: { maxAttempts: 2, backoff: now },
      fallback: (error) => {
        errors.push(error);
        return new Response('from fallback', { status: 200 });
      },
    });
    const response = await http(server.url);
    expect(await response.text()).toBe('from fallback');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(ResponseStatusError);
    expect(await server.received[1]!.closed).toBe('aborted');
  });

  it('lets a fallback return the failed response itself, unreleased', async () => {
    server.answer({ status: 503, body: 'kept' });
    const http = resilientFetch({
      retry: false,
      fallback: (error) => (error as ResponseStatusError).response,
    });
    expect(await (await http(server.url)).text()).toBe('kept');
  });
});

describe('resilientFetch: a circuit per origin', () => {
  /** A fetch where every host whose name starts with `dead` refuses connections. */
  const hosts = (input: FetchInput): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    return url.hostname.startsWith('dead')
      ? Promise.reject(new TypeError('fetch failed'))
      : Promise.resolve(new Response(url.origin));
  };

  it('one dead host opens its own circuit, not the others’ (by origin: scheme, host and port)', async () => {
    const http = resilientFetch({
      retry: false,
      circuitBreaker: { consecutiveFailures: 2 },
      fetch: hosts,
    });
    const events: ResilienceEvent[] = [];
    http.on((e) => events.push(e));
    await expect(http('http://dead.example/a')).rejects.toThrow('fetch failed');
    await expect(http(new Request('http://dead.example/b'))).rejects.toThrow('fetch failed');
    await expect(http('http://dead.example/c')).rejects.toThrow(CircuitOpenError);
    expect(await (await http('http://live.example/a')).text()).toBe('http://live.example');
    // Another port is another origin: its own circuit (closed), so the request is sent.
    await expect(http(new URL('http://dead.example:8080/'))).rejects.toThrow('fetch failed');
    expect(events.find((e) => e.type === 'circuitOpened')).toMatchObject({
      partition: 'http://dead.example',
    });
    expect(http.describe().stages.find((s) => s.stage === 'circuitBreaker')).toMatchObject({
      partition: { by: '[function originOf]', maxPartitions: 1_000 },
    });
  });

  it('`partition: false` gives one circuit for every host; a partition of your own replaces the origin', async () => {
    const one = resilientFetch({
      retry: false,
      circuitBreaker: { consecutiveFailures: 1, partition: false },
      fetch: hosts,
    });
    await expect(one('http://dead.example/')).rejects.toThrow('fetch failed');
    await expect(one('http://live.example/')).rejects.toThrow(CircuitOpenError);
    expect(one.stats().circuitBreaker).toMatchObject({ state: 'open' });

    const byPath = resilientFetch({
      retry: false,
      circuitBreaker: {
        consecutiveFailures: 1,
        partition: {
          by: (input, init) =>
            `${init?.method ?? 'GET'} ${new URL(input instanceof Request ? input.url : input).pathname}`,
        },
      },
      fetch: hosts,
    });
    await expect(byPath('http://dead.example/x')).rejects.toThrow('fetch failed');
    await expect(byPath('http://live.example/x')).rejects.toThrow(CircuitOpenError);
    expect((await byPath('http://live.example/y')).status).toBe(200);
    expect(Object.keys(byPath.stats().partitions!.circuitBreaker!.byKey).sort()).toEqual([
      'GET /x',
      'GET /y',
    ]);
  });
});

describe('resilientFetch: options', () => {
  it('describes the fetch options with their defaults', () => {
    expect(resilientFetch().describe().fetch).toEqual({
      retryOnStatus: [408, 429, 500, 502, 503, 504],
      methods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'],
      maxRetryAfter: 60_000,
      throwOnStatus: false,
      fetch: 'global',
    });
  });

  it('names every bad option in one TypeError', () => {
    const bad = {
      retryOnStatus: [503, 99],
      methods: 'GET',
      maxRetryAfter: -1,
      throwOnStatus: 'yes',
      fetch: 42,
      cache: true,
      retry: { maxAttempts: 0 },
    };
    let error: unknown;
    try {
      resilientFetch(bad as never);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TypeError);
    const message = (error as TypeError).message;
    expect(message).toMatch(/^Invalid resilientFetch options:/);
    for (const part of [
      '`retryOnStatus[1]`',
      '`methods`',
      '`maxRetryAfter`',
      '`throwOnStatus`',
      '`fetch`',
      'Unknown option `cache`',
      '`retry.maxAttempts`',
    ])
      expect(message).toContain(part);
  });

  it('reports a non-function retry.retryOn by name', () => {
    expect(() => resilientFetch({ retry: { retryOn: 1 as never } })).toThrow('`retry.retryOn`');
  });
});

/** The stats of the one circuit a test used: resilientFetch keeps a circuit per origin. */
function onlyCircuit(http: { stats(): PipelineStats }): unknown {
  const partitions = http.stats().partitions?.circuitBreaker;
  const circuits = Object.values(partitions?.byKey ?? {});
  expect(circuits).toHaveLength(1);
  return circuits[0];
}
