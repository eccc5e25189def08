// Pure helpers of bench/redis.mjs (tested in test/bench-redis.test.ts): how many calls a fleet admitted in
// its busiest window, what a limiter's documented bound allows over a window, percentiles, Markdown
// tables, and the generated section of a README. Times are whole milliseconds (Date.now()).

/**
 * The most timestamps in any window of `window` ms: two calls share a window when they are less than
 * `window` ms apart (a sliding window, placed anywhere, not aligned to a clock). Only timestamps ≥ `from`
 * count. `times` need not be sorted.
 */
export function busiestWindow(times, window, from = -Infinity) {
  const sorted = times.filter((t) => t >= from).sort((a, b) => a - b);
  let best = 0;
  let first = 0;
  for (let last = 0; last < sorted.length; last++) {
    while (sorted[last] - sorted[first] >= window) first++;
    best = Math.max(best, last - first + 1);
  }
  return best;
}

/**
 * The most calls that were both sent and admitted within one window of `window` ms: `calls` are
 * `[sent, admitted]` pairs. A call whose limiter asked Redis when it was sent was granted its token by
 * Redis between the two times, so this is a lower bound on what Redis granted in one window, whatever the
 * delay between Redis's answer and the caller's admission.
 */
export function busiestContained(calls, window) {
  const sorted = [...calls].sort((x, y) => x[0] - y[0]);
  let best = 0;
  for (let i = 0; i < sorted.length; i++) {
    const from = sorted[i][0];
    if (i > 0 && sorted[i - 1][0] === from) continue; // the same window as the previous one
    let n = 0;
    for (let j = i; j < sorted.length && sorted[j][0] - from < window; j++) {
      if (sorted[j][1] - from < window) n++;
    }
    best = Math.max(best, n);
  }
  return best;
}

/** The span of whole-ms timestamps, both ends included (1 for a single call, 0 for none). */
export function span(times) {
  if (times.length === 0) return 0;
  let min = Infinity;
  let max = -Infinity;
  for (const t of times) {
    if (t < min) min = t;
    if (t > max) max = t;
  }
  return max - min + 1;
}

/**
 * bulwark's documented overshoot bound (README, "Many processes"): over any window of `t` ms the fleet
 * admits at most `burst + limit × t / interval + lease`, plus what processes admit while they act
 * locally (`local`, see {@link localAllowance}).
 */
export function gcraBound({ burst, limit, interval, lease }, t, local = 0) {
  return burst + (limit * t) / interval + lease + local;
}

/**
 * What each process may add while it acts on its own (README, "When Redis is slow or down"): its share
 * of the limit for as long as it acted locally. `episodes` are `[from, to, share]`: whole-ms times, both
 * ends included, and the share of the limit (calls per `interval`) the process applied.
 */
export function localAllowance(episodes, interval) {
  let sum = 0;
  for (const [from, to, share] of episodes) sum += (share * (to - from + 1)) / interval;
  return sum;
}

/**
 * A fixed-window limiter's bound (rate-limiter-flexible's RateLimiterRedis: at most `points` calls per
 * window of `duration` ms, a window starting at the first call after the last one ended): `t` ms of
 * whole-ms timestamps touch at most `floor((t − 2) / duration) + 2` windows (every window but the first
 * and the last lies inside them, and those two take at least one ms each).
 */
export function fixedWindowBound({ points, duration }, t) {
  if (t <= 0) return 0;
  if (t === 1) return points;
  return points * (Math.floor((t - 2) / duration) + 2);
}

/** The nearest-rank percentile `q` (0–1) of ascending `sorted` (NaN when empty). */
export function percentile(sorted, q) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** A Markdown table: `columns` are `[title, align]` (`'l'` or `'r'`), `rows` arrays of cells. */
export function markdownTable(columns, rows) {
  const esc = (cell) => String(cell).replaceAll('|', '\\|');
  return [
    `| ${columns.map(([title]) => esc(title)).join(' | ')} |`,
    `| ${columns.map(([, align]) => (align === 'r' ? '--:' : ':--')).join(' | ')} |`,
    ...rows.map((cells) => `| ${cells.map(esc).join(' | ')} |`),
  ].join('\n');
}

/**
 * `text` with the lines between `<!-- name:start -->` and `<!-- name:end -->` replaced by `body`.
 * Throws when the markers are missing or out of order (nothing is appended by surprise).
 */
export function replaceSection(text, name, body) {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i < 0 || j < i) throw new Error(`no ${start} … ${end} section`);
  return `${text.slice(0, i + start.length)}\n${body.trimEnd()}\n${text.slice(j)}`;
}
