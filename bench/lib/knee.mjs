// A downstream with a capacity knee, in virtual time: latency is flat (a seeded 8–12 ms) up to KNEE calls
// in flight, then grows in proportion to the overload (2× the calls in flight, 2× the latency). Shared by
// the adaptive-concurrency tests (virtual time) and bench/tail.mjs (real time).
export const KNEE = 20;

/** A seeded PRNG (mulberry32): uniform in [0, 1). */
export function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The latency of a call that starts with `inFlight` calls (itself included) in flight. */
export function kneeLatency(inFlight, random, base = 10) {
  const noLoad = base * (0.8 + 0.4 * random());
  return noLoad * Math.max(1, inFlight / KNEE);
}
