// A Cloudflare Worker that runs the behaviour suite on each request and answers with the results as JSON.
// workerd.mjs loads it into workerd (through miniflare), next to the ESM bundle as ./bulwark.mjs.
import * as lib from './bulwark.mjs';
import { runSuite } from './suite.mjs';

export default {
  async fetch(request) {
    const label = new URL(request.url).searchParams.get('label') ?? 'workerd esm';
    const quiet = { log: () => undefined };
    try {
      const { passed, failed, lines } = await runSuite(lib, label, quiet);
      return Response.json({ passed, failed, lines });
    } catch (error) {
      return Response.json({
        passed: 0,
        failed: ['suite crashed'],
        lines: [String(error?.stack ?? error)],
      });
    }
  },
};
