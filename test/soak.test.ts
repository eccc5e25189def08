import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The quick soak (50,000 calls through the full pipeline of the built package, real clock) as a child
// process: `npm test` builds dist/ first. The full run is `npm run soak`.

const root = fileURLToPath(new URL('..', import.meta.url));

interface SoakSummary {
  ok: boolean;
  mode: string;
  calls: number;
  outcomes: { resolved: number; fallback: number; rejected: number };
  faults: Record<string, number>;
  faultsTotal: number;
  heapDriftMB: number;
  heapDriftBoundMB: number;
  handlesLeft: string[];
  timersLeft: number;
  listenersLeft: { shutdownSignal: number; callerSignals: number };
  unhandledRejections: number;
  unsettled: number;
  settledMoreThanOnce: number;
  checks: Record<string, boolean>;
  failures: string[];
}

function runQuickSoak(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--expose-gc', 'test/soak/run.mjs', '--quick'],
      { cwd: root, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('soak (quick mode)', () => {
  it('settles every call once, leaks nothing and keeps the heap flat', async () => {
    const { code, stdout, stderr } = await runQuickSoak();
    const line = stdout.split('\n').find((l) => l.startsWith('SOAK_SUMMARY '));
    expect(line, `no summary line; stderr:\n${stderr}\nstdout:\n${stdout}`).toBeDefined();
    const summary = JSON.parse(line!.slice('SOAK_SUMMARY '.length)) as SoakSummary;
    expect(summary.failures).toEqual([]);
    expect(summary.checks).toEqual({
      everyCallSettledOnce: true,
      countsAddUp: true,
      noUnhandledRejection: true,
      heapFlat: true,
      noHandleLeft: true,
      noTimerLeft: true,
      noListenerLeft: true,
      pipelineIdle: true,
      outcomesAsExpected: true,
      latencyBounded: true,
    });
    expect(code).toBe(0);
    expect(summary.ok).toBe(true);
    expect(summary.mode).toBe('quick');
    expect(summary.calls).toBe(50_000);
    const { resolved, fallback, rejected } = summary.outcomes;
    expect(resolved + fallback + rejected).toBe(summary.calls);
    // Every outcome and every kind of fault actually happened.
    expect(resolved).toBeGreaterThan(0);
    expect(fallback).toBeGreaterThan(0);
    expect(rejected).toBeGreaterThan(0);
    for (const [kind, count] of Object.entries(summary.faults))
      expect(count, `fault kind ${kind}`).toBeGreaterThan(0);
    expect(Math.abs(summary.heapDriftMB)).toBeLessThan(summary.heapDriftBoundMB);
    expect(summary.handlesLeft).toEqual([]);
    expect(summary.timersLeft).toBe(0);
    expect(summary.listenersLeft).toEqual({ shutdownSignal: 0, callerSignals: 0 });
    expect(summary.unhandledRejections).toBe(0);
    expect(summary.unsettled).toBe(0);
    expect(summary.settledMoreThanOnce).toBe(0);
  }, 300_000);
});
