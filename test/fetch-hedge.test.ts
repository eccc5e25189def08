import { describe, expect, it } from 'vitest';
import { resilientFetch } from '../src/index.js';
import { ManualClock } from './helpers/manual-clock.js';
import { track } from './helpers/promises.js';

/** A fetch that answers only when the test says so; it counts the requests sent, per method. */
function slowFetch() {
  const sent: { method: string; signal: AbortSignal; answer: (r: Response) => void }[] = [];
  const fetch = (input: string | URL | Request, init?: RequestInit): Promise<Response> =>
    new Promise((resolve) => {
      sent.push({ method: init?.method ?? 'GET', signal: init!.signal!, answer: resolve });
      void input;
    });
  return { sent, fetch };
}

describe('resilientFetch with hedge', () => {
  it('hedges a slow GET: the second request answers, the first is aborted', async () => {
    const clock = new ManualClock();
    const f = slowFetch();
    const get = resilientFetch({ hedge: { delay: 50 }, retry: false, fetch: f.fetch, clock });
    const call = track(get('http://127.0.0.1:1/users/1'));
    await clock.advance(50);
    expect(f.sent).toHaveLength(2);
    f.sent[1]!.answer(new Response('second'));
    await clock.advance(0);
    expect(await call.value!.text()).toBe('second');
    expect(f.sent[0]!.signal.aborted).toBe(true);
  });

  it('never hedges a POST, nor a body that can be read once', async () => {
    const clock = new ManualClock();
    const f = slowFetch();
    const send = resilientFetch({
      hedge: { delay: 50, maxHedgedAttempts: 3 },
      fetch: f.fetch,
      clock,
    });
    const hedged: unknown[] = [];
    send.on((event) => {
      if (event.type === 'attemptHedged') hedged.push(event);
    });
    const post = track(send('http://127.0.0.1:1/orders', { method: 'POST', body: '{}' }));
    await clock.advance(10_000);
    expect(f.sent.map((s) => s.method)).toEqual(['POST']);
    f.sent[0]!.answer(new Response('created', { status: 201 }));
    await clock.advance(0);
    expect(post.value!.status).toBe(201);
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('x'));
        controller.close();
      },
    });
    void send('http://127.0.0.1:1/upload', {
      method: 'PUT',
      body: stream,
      duplex: 'half',
    });
    await clock.advance(10_000);
    expect(f.sent.map((s) => s.method)).toEqual(['POST', 'PUT']);
    // Not even a second attempt that would wait on the first send (holding a breaker permit and a slot).
    expect(hedged).toEqual([]);
  });
});
