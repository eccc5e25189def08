// Turns the results of a run into terminal and Markdown tables and checks issue 4's targets.

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

const COLUMNS = [
  { title: 'case', get: (r) => r.lib, align: 'left' },
  { title: 'configuration', get: (r) => r.label, align: 'left' },
  { title: 'ns/call', get: (r) => fmtNs(r.time?.seq?.ns) },
  { title: 'fastest', get: (r) => fmtNs(r.time?.seq?.minNs) },
  { title: '× bare', get: (r) => fmtRatio(r.time?.seq?.ratio) },
  { title: '× best peer', get: (r) => fmtRatio(r.time?.seq?.vsBestPeer) },
  { title: 'B/call', get: (r) => fmtBytes(r.alloc?.bytes) },
  { title: 'B extra', get: (r) => fmtExtra(r.alloc?.extraBytes) },
  { title: '100 conc ns', get: (r) => fmtNs(r.time?.conc?.ns) },
  { title: '× bare', get: (r) => fmtRatio(r.time?.conc?.ratio) },
  { title: 'setImmediate ns', get: (r) => fmtNs(r.time?.seqImmediate?.ns) },
  { title: '× bare', get: (r) => fmtRatio(r.time?.seqImmediate?.ratio) },
  { title: 'setImm. 100 conc ns', get: (r) => fmtNs(r.time?.concImmediate?.ns) },
  { title: '× bare', get: (r) => fmtRatio(r.time?.concImmediate?.ratio) },
];

function groups(rows) {
  const out = [];
  for (const category of CATEGORIES) {
    const members = rows.filter((r) => r.category === category.id);
    if (members.length > 0) out.push({ category, rows: members });
  }
  return out;
}

/** The results table for a terminal. */
export function terminalTable(rows, { color = false, width = 44 } = {}) {
  const bold = (s) => (color ? `\x1b[1m${s}\x1b[22m` : s);
  const blue = (s) => (color ? `\x1b[36m${s}\x1b[39m` : s);
  const cut = (s) => (s.length > width ? `${s.slice(0, width - 1)}…` : s);
  const cells = (r) => COLUMNS.map((c, i) => (i === 1 ? cut(c.get(r)) : c.get(r)));
  const all = rows.map(cells);
  const widths = COLUMNS.map((c, i) => Math.max(c.title.length, ...all.map((cs) => cs[i].length)));
  const line = (cs) =>
    cs
      .map((s, i) => (COLUMNS[i].align === 'left' ? s.padEnd(widths[i]) : s.padStart(widths[i])))
      .join('  ');
  const out = [bold(line(COLUMNS.map((c) => c.title)))];
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

/**
 * Checks bulwark's rows against issue 4's targets (sequential calls of the async target). Returns one
 * entry per check: `{ category, what, limit, value, met, text }`.
 */
export function evaluateTargets(rows) {
  const checks = [];
  for (const row of rows) {
    if (row.lib !== 'bulwark') continue;
    const target = CATEGORY.get(row.category)?.target;
    if (target === undefined) continue;
    const title = CATEGORY.get(row.category).title;
    const seq = row.time?.seq;
    if (target.ratio !== undefined) {
      const value = seq?.ratio;
      checks.push({
        category: row.category,
        title,
        what: 'time × bare',
        limit: target.ratio,
        value,
        met: value <= target.ratio,
        text: `${fmtRatio(value)} (limit ${fmtRatio(target.ratio)})`,
      });
    }
    if (target.extraBytes !== undefined) {
      const value = row.alloc?.extraBytes;
      checks.push({
        category: row.category,
        title,
        what: 'bytes beyond bare',
        limit: target.extraBytes,
        value,
        // Allow half a byte of measurement noise (the method resolves fractions of a byte).
        met: value <= target.extraBytes + 0.5,
        text: `${fmtExtra(value)} B (limit +${target.extraBytes} B)`,
      });
    }
    if (target.ns !== undefined) {
      const value = seq?.ns;
      checks.push({
        category: row.category,
        title,
        what: 'ns per rejection',
        limit: target.ns,
        value,
        met: value <= target.ns,
        text: `${fmtNs(value)} (limit ${fmtNs(target.ns)})`,
      });
    }
  }
  return checks;
}

/** How much faster bulwark's all-seven row is than the peers' combined policies (issue 4's claims). */
export function headlineComparisons(rows) {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const ours = byId.get('bulwark:allSeven')?.time?.seq;
  const out = [];
  for (const [id, name] of [
    ['cockatiel:wrap5', "cockatiel's five-policy wrap"],
    ['opossum:timeout', 'opossum with its default timeout'],
    ['opossum:full', 'opossum with timeout, capacity and fallback'],
    ['mollitia:all7', 'mollitia with all seven modules'],
  ]) {
    const peer = byId.get(id)?.time?.seq;
    if (ours && peer) out.push({ id, name, times: peer.ratio / ours.ratio });
  }
  return out;
}

const cap = (s) => s[0].toUpperCase() + s.slice(1);

export function targetsMarkdown(rows) {
  const checks = evaluateTargets(rows);
  const out = ['| target | measured | met |', '| :-- | --: | :-: |'];
  for (const c of checks) {
    out.push(`| ${c.title}: ${c.what} | ${c.text} | ${c.met ? 'yes' : '**no**'} |`);
  }
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
  const out = [];
  for (const c of evaluateTargets(rows)) {
    const mark = c.met ? green('met   ') : red('MISSED');
    out.push(`  ${mark} ${`${c.title}: ${c.what}`.padEnd(58)} ${c.text}`);
  }
  for (const h of headlineComparisons(rows))
    out.push(`  ${h.name} takes ${fmtRatio(h.times)} the time of bulwark's all seven stages`);
  return out.join('\n');
}

/**
 * The summary the top-level README shows: per category, bulwark's row against the bare call and
 * against the best peer, for each results file (one per Node major), sequential calls of the async
 * target and of the `setImmediate` target.
 */
export function summaryMarkdown(resultsList) {
  const versions = resultsList.map((r) => `Node ${r.machine.nodeMajor}`);
  const head = [
    '| stage (sequential calls) | ' +
      versions
        .map((v) => `${v}: × bare | ${v}: bytes extra | ${v}: best peer (× bare)`)
        .join(' | ') +
      ' | setImmediate target, × bare |',
    `| :-- | ${versions.map(() => '--: | --: | :--').join(' | ')} | --: |`,
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
      const ns = g.category.target?.ns !== undefined;
      cells.push(
        ns ? ours.map((r) => fmtNs(r.time?.seq?.ns)).join(' / ') : time,
        bytes,
        best === undefined
          ? '—'
          : `${best.lib} ${ns ? fmtNs(best.time.seq.ns) : fmtRatio(best.time.seq.ratio)}`,
      );
      if (results === first) {
        immediate = ours.map((r) => fmtRatio(r.time?.seqImmediate?.ratio)).join(' / ');
      }
    }
    lines.push(`| ${g.category.title} | ${cells.join(' | ')} | ${immediate} |`);
  }
  return lines.join('\n');
}
