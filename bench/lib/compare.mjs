// Comparisons of `npm run bench:service`'s promises that do not turn noise into a verdict: two shares
// (of calls answered with the downstream's data) measured on a few thousand calls each, and two
// latencies measured once per round.
//
// A strict comparison of two medians turned a tie into a verdict: with the downstream hanging 5 % of
// requests and three attempts per call, a call is lost only when three requests in a row hang
// (0.0125 %, about one call in 8,000), so of 2,000 calls per round a wrapper loses none or one by
// chance, and "100.0 % against 100.0 %" was Kept in one run and Not kept in the next. A share beats
// another here only by more than sampling noise: a one-sided two-proportion z-test on the calls of
// all rounds pooled.

/** Two standard errors: a share that equals ours beats it by chance in about 2.3 % of runs. */
export const Z = 2;

/**
 * Successes and calls of a row, pooled over its rounds. A round records `answered` (calls the service
 * answered) and `successRate`; results written before `answered` was recorded have `requests`.
 *
 * @param {{ rounds?: { answered?: number, requests?: number, successRate: number }[],
 *   successRate: number, requests?: number }} row
 * @returns {{ successes: number, calls: number }}
 */
export function pooledShare(row) {
  const rounds = row.rounds ?? [];
  let successes = 0;
  let calls = 0;
  for (const round of rounds) {
    const n = round.answered ?? round.requests ?? 0;
    if (!(n > 0) || !Number.isFinite(round.successRate)) continue;
    successes += Math.round(round.successRate * n);
    calls += n;
  }
  if (calls === 0) {
    const n = row.requests ?? 0;
    return { successes: Math.round(row.successRate * n), calls: n };
  }
  return { successes, calls };
}

/**
 * Whether `other`'s share beats `ours` by more than sampling noise (z > {@link Z}). A side without
 * calls beats nothing and is beaten by nothing (the caller decides what an empty row means).
 *
 * @param {{ successes: number, calls: number }} other
 * @param {{ successes: number, calls: number }} ours
 */
export function shareBeats(other, ours) {
  if (!(other.calls > 0 && ours.calls > 0)) return false;
  const p1 = other.successes / other.calls;
  const p2 = ours.successes / ours.calls;
  if (p1 <= p2) return false;
  const pooled = (other.successes + ours.successes) / (other.calls + ours.calls);
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / other.calls + 1 / ours.calls));
  return p1 - p2 > Z * se;
}

/**
 * Whether `other`'s latency is lower than `ours` beyond run-to-run noise: lower in its slowest round
 * than ours in our fastest, so that the rounds of the two do not overlap. With one round each it is a
 * plain comparison. A p99 of the hanging scenario is one 500 ms timeout, a 5 ms backoff and a second
 * request: the two wrappers that retry measured 510-512 ms against 510-512 ms in one run and 511 against
 * 509 ms (medians) in the next, which a strict comparison read as Kept, then Not kept.
 *
 * @param {number[]} other - the peer's value in each round (lower is better)
 * @param {number[]} ours
 */
export function lowerBeyondNoise(other, ours) {
  const theirs = other.filter(Number.isFinite);
  const mine = ours.filter(Number.isFinite);
  if (theirs.length === 0 || mine.length === 0) return false;
  return Math.max(...theirs) < Math.min(...mine);
}
