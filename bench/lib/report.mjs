// Turns the results of a run into terminal and Markdown tables, checks bulwark's promises (the
// `target` of each category in cases.mjs) and says when the machine was too noisy to trust them.

import { CATEGORIES } from '../cases.mjs';

const CATEGORY = new Map(CATEGORIES.map((c) => [c.id, c]));

export function fmtNs(ns) {
  if (!Number.isFinite(ns)) return '—';
  if (ns >= 10_000) return `${(ns / 1000).toFixed(1)} µs`;
  if (ns >= 1000) return `${(ns / 1000).toFixed(2)} µs`;
  return `${ns.toFixed(ns >= 100 ? 0 : 1)} ns`;
}

export function fmtRatio(ratio) {
  if (!Number.isFinite(ratio)) return '—';
  if (ratio >= 100) return `${ratio.toFixed(0)}×`;
  if (ratio >= 10) return `${ratio.toFixed(1)}×`;
  return `${ratio.toFixed(2)}×`;
}

export function fmtBytes(bytes) {
  if (!Number.isFinite(bytes)) return '—';
  return `${Math.round(bytes).toLocaleString('en-US')}`;
}

function fmtExtra(bytes) {
  if (!Number.isFinite(bytes)) return '—';
  const rounded = Math.round(bytes);
  return `${rounded > 0 ? '+' : ''}${rounded.toLocaleString('en-US')}`;
}

/**
 * Adds `vsBestPeer` to every row of every timing variant: the row's ratio to bare divided by the best
 * (lowest) peer's ratio to bare in the same category. Ratios to bare are compared rather than raw ns
 * because each case runs in its own process, next to its own bare call.
 */
export function addPeerRatios(rows, variants) {
  for (const variant of variants) {
    const best = new Map();
    for (const row of rows) {
      const v = row.time?.[variant];
      if (row.lib === 'bulwark' || row.category === 'reference' || v === undefined) continue;
      if (!(best.get(row.category) <= v.ratio)) best.set(row.category, v.ratio);
    }
    for (const row of rows) {
      const v = row.time?.[variant];
      if (v === undefined) continue;
      const b = best.get(row.category);
      v.vsBestPeer = b === undefined ? undefined : v.ratio / b;
    }
  }
}

/** `q1–q3` of a row's per-run ratios: its spread. */
function fmtSpread(q1, q3) {
  if (!Number.isFinite(q1) || !Number.isFinite(q3)) return '—';
  return `${fmtRatio(q1).slice(0, -1)}–${fmtRatio(q3)}`;
}

/** A row whose middle half of runs spans more than this fraction of its median is marked noisy. */
export const NOISY_SPREAD = 0.15;

function noisy(v) {
  return v !== undefined && (v.q3 - v.q1) / v.ratio > NOISY_SPREAD;
}

const COLUMNS = [
  { title: 'case', get: (r) => r.lib, align: 'left', terminal: true },
  { title: 'configuration', get: (r) => r.label, align: 'left', terminal: true },
  { title: 'ns/call', get: (r) => fmtNs(r.time?.seq?.ns), terminal: true },
  { title: 'fastest', get: (r) => fmtNs(r.time?.seq?.minNs) },
  { title: '× bare', get: (r) => fmtRatio(r.time?.seq?.ratio), terminal: true },
  {
    title: 'spread',
    get: (r) => `${fmtSpread(r.time?.seq?.q1, r.time?.seq?.q3)}${noisy(r.time?.seq) ? ' ~' : ''}`,
    terminal: true,
  },
  { title: '× floor', get: (r) => fmtRatio(r.time?.seq?.floorRatio), terminal: true },
  {
    title: 'spread',
    get: (r) => fmtSpread(r.time?.seq?.floorQ1, r.time?.seq?.floorQ3),
    terminal: true,
  },
  { title: '× best peer', get: (r) => fmtRatio(r.time?.seq?.vsBestPeer) },
  { title: 'B/call', get: (r) => fmtBytes(r.alloc?.bytes) },
  { title: 'B extra', get: (r) => fmtExtra(r.alloc?.extraBytes), terminal: true },
  { title: '100 conc ns', get: (r) => fmtNs(r.time?.conc?.ns) },
  { title: '× bare', get: (r) => fmtRatio(r.time?.conc?.ratio), terminal: '100 conc' },
  { title: 'setImmediate ns', get: (r) => fmtNs(r.time?.seqImmediate?.ns) },
  { title: '× bare', get: (r) => fmtRatio(r.time?.seqImmediate?.ratio), terminal: 'setImm.' },
  { title: 'setImm. 100 conc ns', get: (r) => fmtNs(r.time?.concImmediate?.ns) },
  {
    title: '× bare',
    get: (r) => fmtRatio(r.time?.concImmediate?.ratio),
    terminal: 'setImm. 100',
  },
];

function groups(rows) {
  const out = [];
  for (const category of CATEGORIES) {
    const members = rows.filter((r) => r.category === category.id);
    if (members.length > 0) out.push({ category, rows: members });
  }
  return out;
}

/** The results table for a terminal: the columns marked `terminal` (a string renames the column). */
export function terminalTable(rows, { color = false, width = 40 } = {}) {
  const bold = (s) => (color ? `\x1b[1m${s}\x1b[22m` : s);
  const blue = (s) => (color ? `\x1b[36m${s}\x1b[39m` : s);
  const cut = (s) => (s.length > width ? `${s.slice(0, width - 1)}…` : s);
  const columns = COLUMNS.filter((c) => c.terminal).map((c) => ({
    ...c,
    title: typeof c.terminal === 'string' ? `${c.terminal} ${c.title}` : c.title,
  }));
  const cells = (r) => columns.map((c, i) => (i === 1 ? cut(c.get(r)) : c.get(r)));
  const all = rows.map(cells);
  const widths = columns.map((c, i) => Math.max(c.title.length, ...all.map((cs) => cs[i].length)));
  const line = (cs) =>
    cs
      .map((s, i) => (columns[i].align === 'left' ? s.padEnd(widths[i]) : s.padStart(widths[i])))
      .join('  ');
  const out = [bold(line(columns.map((c) => c.title)))];
  for (const g of groups(rows)) {
    out.push(bold(`── ${g.category.title}`));
    for (const r of g.rows) {
      const text = r.error
        ? `${r.lib.padEnd(widths[0])}  ERROR: ${r.error.split('\n')[0]}`
        : line(cells(r));
      out.push(r.lib === 'bulwark' ? blue(text) : text);
    }
  }
  return out.join('\n');
}

/** The results table in Markdown. */
export function markdownTable(rows) {
  const esc = (s) => String(s).replaceAll('|', '\\|');
  const out = [
    `| ${COLUMNS.map((c) => c.title).join(' | ')} |`,
    `| ${COLUMNS.map((c) => (c.align === 'left' ? ':--' : '--:')).join(' | ')} |`,
  ];
  for (const g of groups(rows)) {
    out.push(`| **${esc(g.category.title)}** |${' |'.repeat(COLUMNS.length - 1)}`);
    for (const r of g.rows) {
      if (r.error) {
        out.push(
          `| ${r.lib} | error: ${esc(r.error.split('\n')[0])} |${' |'.repeat(COLUMNS.length - 2)}`,
        );
        continue;
      }
      const cs = COLUMNS.map((c) => esc(c.get(r)));
      if (r.lib === 'bulwark') cs[0] = `**${cs[0]}**`;
      cs[1] = `\`${cs[1]}\``;
      out.push(`| ${cs.join(' | ')} |`);
    }
  }
  return out.join('\n');
}

const fmtLimitBytes = (bytes) => (bytes === 0 ? 'nothing' : `at most ${bytes} B`);

/**
 * Checks bulwark's rows against the promises of cases.mjs (sequential calls of the async target).
 * Returns one entry per promise: `{ category, promise, value, limit, met, withinSpread, text }`;
 * `withinSpread` says a missed promise is met by the better quarter of the runs (noise may explain it).
 */
export function evaluateTargets(rows) {
  const checks = [];
  const byId = new Map(rows.map((r) => [r.id, r]));
  for (const row of rows) {
    if (row.lib !== 'bulwark') continue;
    const category = CATEGORY.get(row.category);
    const target = category?.target;
    if (target === undefined) continue;
    const what = category.what ?? category.title;
    const seq = row.time?.seq;
    const add = (promise, value, limit, text, q1) =>
      checks.push({
        category: row.category,
        promise,
        value,
        limit,
        met: value <= limit,
        withinSpread: !(value <= limit) && q1 <= limit,
        text,
      });
    if (target.floor !== undefined) {
      add(
        `${what} costs at most ${fmtRatio(target.floor)} the observation floor`,
        seq?.floorRatio,
        target.floor,
        `${fmtRatio(seq?.floorRatio)} (spread ${fmtSpread(seq?.floorQ1, seq?.floorQ3)})`,
        seq?.floorQ1,
      );
    }
    if (target.bare !== undefined) {
      add(
        target.bare === 1
          ? `${what} costs no more than the bare call`
          : `${what} costs at most ${fmtRatio(target.bare)} the bare call`,
        seq?.ratio,
        target.bare,
        `${fmtRatio(seq?.ratio)} bare (spread ${fmtSpread(seq?.q1, seq?.q3)})`,
        seq?.q1,
      );
    }
    if (target.extraBytes !== undefined) {
      const value = row.alloc?.extraBytes;
      // Half a byte of measurement noise is allowed (the method resolves fractions of a byte).
      add(
        `${what} allocates ${fmtLimitBytes(target.extraBytes)} per call beyond the bare call`,
        value,
        target.extraBytes + 0.5,
        `${fmtExtra(value)} B`,
        undefined,
      );
    }
    if (target.faster !== undefined) {
      const peer = byId.get(target.faster.id)?.time?.seq;
      const times = peer && seq ? peer.ratio / seq.ratio : undefined;
      // Ratios to the bare call are compared: each case runs in its own process.
      checks.push({
        category: row.category,
        promise: `${what} is at least ${fmtRatio(target.faster.times)} faster than ${target.faster.name}`,
        value: times,
        limit: target.faster.times,
        met: times >= target.faster.times,
        withinSpread: false,
        text: times === undefined ? 'not measured' : `${fmtRatio(times)} faster`,
      });
    }
  }
  return checks;
}

/** How much faster bulwark's all-seven row is than the peers' combined policies. */
export function headlineComparisons(rows) {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const ours = byId.get('bulwark:allSeven')?.time?.seq;
  const out = [];
  for (const [id, name] of [
    ['cockatiel:wrap5', "cockatiel's five-policy wrap"],
    ['opossum:timeout', "opossum's `new CircuitBreaker(fn)` (default 10 s timeout)"],
    ['opossum:full', 'opossum with timeout, capacity and fallback'],
    ['mollitia:all7', 'mollitia with all seven modules'],
  ]) {
    const peer = byId.get(id)?.time?.seq;
    if (ours && peer) out.push({ id, name, times: peer.ratio / ours.ratio });
  }
  return out;
}

/**
 * Why the numbers of a run may not be trusted, as sentences (empty when nothing says so): the bare
 * call measured against itself drifted, the load average says other processes competed for the CPU,
 * or rows moved a lot between runs.
 */
export function noiseWarnings(results) {
  const out = [];
  const control = results.rows.find((r) => r.id === 'bare')?.time?.seq;
  if (control !== undefined) {
    const off = Math.abs(control.ratio - 1);
    const width = control.q3 - control.q1;
    if (off > 0.1 || width > 0.1) {
      out.push(
        `The bare call measured against itself came out ${fmtRatio(control.ratio)} (spread ${fmtSpread(control.q1, control.q3)}), where a quiet machine gives 1.00×: differences of ${Math.round(Math.max(off, width) * 100)} % and more between rows can be noise.`,
      );
    }
  }
  const m = results.machine;
  const loads = [m.loadavg?.[0], m.loadavgMax, m.loadavgEnd?.[0]].filter(Number.isFinite);
  const peak = Math.max(...loads);
  // The bench itself keeps about one core busy; more than three quarters of the machine means others.
  if (loads.length > 0 && peak > m.cores * 0.75) {
    out.push(
      `The load average reached ${peak.toFixed(2)} on ${m.cores} cores (the bench itself accounts for about 1): other processes competed for the CPU, and rows can be off by more than their spread. Rerun on a quiet machine before comparing with the published figures.`,
    );
  }
  const moving = results.rows.filter((r) => !r.error && noisy(r.time?.seq));
  if (moving.length > 0) {
    out.push(
      `${moving.length} row${moving.length === 1 ? '' : 's'} (marked ~) moved by more than ${NOISY_SPREAD * 100} % of ${moving.length === 1 ? 'its' : 'their'} median between runs: ${moving.map((r) => r.id).join(', ')}.`,
    );
  }
  return out;
}

const cap = (s) => s[0].toUpperCase() + s.slice(1);

function verdict(c) {
  if (c.met) return 'yes';
  return c.withinSpread ? '**no** (within the spread)' : '**no**';
}

export function targetsMarkdown(rows) {
  const checks = evaluateTargets(rows);
  const out = ['| promise | measured | kept |', '| :-- | --: | :-: |'];
  for (const c of checks) out.push(`| ${c.promise} | ${c.text} | ${verdict(c)} |`);
  const headline = headlineComparisons(rows);
  if (headline.length > 0) {
    out.push('');
    for (const h of headline)
      out.push(
        `- ${cap(h.name)} takes **${fmtRatio(h.times)}** the time of bulwark's all seven stages.`,
      );
  }
  return out.join('\n');
}

export function targetsTerminal(rows, { color = false } = {}) {
  const green = (s) => (color ? `\x1b[32m${s}\x1b[39m` : s);
  const red = (s) => (color ? `\x1b[31m${s}\x1b[39m` : s);
  const yellow = (s) => (color ? `\x1b[33m${s}\x1b[39m` : s);
  const out = [];
  for (const c of evaluateTargets(rows)) {
    const mark = c.met ? green('kept  ') : c.withinSpread ? yellow('noise?') : red('BROKEN');
    out.push(`  ${mark} ${c.promise.replaceAll('`', '').padEnd(96)} ${c.text}`);
  }
  for (const h of headlineComparisons(rows))
    out.push(
      `  ${cap(h.name.replaceAll('`', ''))} takes ${fmtRatio(h.times)} the time of bulwark's all seven stages`,
    );
  return out.join('\n');
}

/**
 * The summary the top-level README shows: per category, bulwark's row against the bare call, the
 * observation floor and the best peer, for each results file (one per Node major), sequential calls of the async
 * target and of the `setImmediate` target.
 */
export function summaryMarkdown(resultsList) {
  const versions = resultsList.map((r) => `Node ${r.machine.nodeMajor}`);
  const head = [
    '| stage (sequential calls) | ' +
      versions
        .map((v) => `${v}: × bare | ${v}: × floor | ${v}: bytes extra | ${v}: best peer (× bare)`)
        .join(' | ') +
      ' | setImmediate target, × bare |',
    `| :-- | ${versions.map(() => '--: | --: | --: | :--').join(' | ')} | --: |`,
  ];
  const lines = [...head];
  const first = resultsList[0];
  for (const g of groups(first.rows)) {
    if (g.category.id === 'reference') continue;
    const cells = [];
    let immediate = '';
    for (const results of resultsList) {
      const rows = results.rows.filter((r) => r.category === g.category.id);
      const ours = rows.filter((r) => r.lib === 'bulwark');
      const peers = rows.filter((r) => r.lib !== 'bulwark' && r.time?.seq?.ratio);
      const best = peers.sort((a, b) => a.time.seq.ratio - b.time.seq.ratio)[0];
      const time = ours.map((r) => fmtRatio(r.time?.seq?.ratio)).join(' / ');
      const bytes = ours.map((r) => fmtExtra(r.alloc?.extraBytes)).join(' / ');
      const floor = ours.map((r) => fmtRatio(r.time?.seq?.floorRatio)).join(' / ');
      cells.push(
        time,
        floor,
        bytes,
        best === undefined ? '—' : `${best.lib} ${fmtRatio(best.time.seq.ratio)}`,
      );
      if (results === first) {
        immediate = ours.map((r) => fmtRatio(r.time?.seqImmediate?.ratio)).join(' / ');
      }
    }
    lines.push(`| ${g.category.title} | ${cells.join(' | ')} | ${immediate} |`);
  }
  return lines.join('\n');
}
