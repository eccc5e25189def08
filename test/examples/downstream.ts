import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the scripted downstream answers to its `n`-th request (1-based). */
export interface Reply {
  status: number;
  body?: unknown;
  /** Milliseconds before it answers. */
  delay?: number;
}

export type Script = (n: number, path: string) => Reply;

/**
 * A flaky inventory service on 127.0.0.1 whose every answer is scripted by the test: `GET /stock/:id`
 * answers `{ id, available: 7 }` unless the script says otherwise.
 */
export interface Downstream {
  readonly url: string;
  /** Requests received so far. */
  readonly hits: number;
  /** Requests received so far for one path. */
  hitsOf(path: string): number;
  /** Replaces the script; the hit count goes on. */
  script(script: Script): void;
  close(): Promise<void>;
}

export const healthy: Script = (_n, path) => ({
  status: 200,
  body: { id: path.split('/').pop(), available: 7 },
});

export async function startDownstream(initial: Script = healthy): Promise<Downstream> {
  let script = initial;
  let hits = 0;
  const byPath = new Map<string, number>();
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    hits++;
    const path = request.url ?? '/';
    byPath.set(path, (byPath.get(path) ?? 0) + 1);
    const reply = script(hits, path);
    const send = () => {
      if (response.destroyed) return;
      response.writeHead(reply.status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(reply.body ?? { error: `status ${reply.status}` }));
    };
    if (reply.delay === undefined) send();
    else {
      const timer = setTimeout(send, reply.delay);
      // A caller that gave up (an attempt timeout aborts its fetch) closes the connection.
      response.on('close', () => clearTimeout(timer));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get hits() {
      return hits;
    },
    hitsOf: (path) => byPath.get(path) ?? 0,
    script(next) {
      script = next;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
