// A horizontal bar chart of each case's time as a multiple of the bare call, on a log scale, with
// bulwark's bar first in each category and the peers beside it. Plain SVG, no dependency.

import { CATEGORIES } from '../cases.mjs';
import { fmtRatio } from './report.mjs';

const esc = (s) =>
  String(s).replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

/**
 * @param {object} results - a results object as written to bench/results/latest.json
 * @param {object} [options]
 * @param {string} [options.variant='seq'] - which timing variant to draw
 * @returns {string} the SVG document
 */
export function renderChart(results, { variant = 'seq' } = {}) {
  const rows = results.rows.filter((r) => r.time?.[variant] !== undefined);
  const wrapper = rows.find((r) => r.id === 'async-wrapper')?.time[variant].ratio;
  const floor = rows.find((r) => r.id === 'floor')?.time[variant].ratio;
  const groups = [];
  for (const category of CATEGORIES) {
    if (category.id === 'reference') continue;
    const members = rows.filter((r) => r.category === category.id);
    if (members.length > 0) groups.push({ category, rows: members });
  }

  const ratios = groups.flatMap((g) => g.rows.map((r) => r.time[variant].ratio));
  const minExp = Math.min(-1, Math.floor(Math.log10(Math.min(...ratios))));
  const maxExp = Math.max(1, Math.ceil(Math.log10(Math.max(...ratios))));

  const W = 900;
  const labelW = 150;
  const left = 10 + labelW;
  const right = W - 70;
  const barH = 14;
  const gap = 4;
  const headerH = 22;
  const top = 76;
  const x = (ratio) =>
    left +
    ((Math.log10(Math.max(ratio, 10 ** minExp)) - minExp) / (maxExp - minExp)) * (right - left);

  const parts = [];
  let y = top;
  for (const g of groups) {
    y += headerH;
    parts.push(
      `<text x="10" y="${y - 6}" class="h">${esc(g.category.title)}</text>`,
      `<line x1="10" x2="${right}" y1="${y - 2}" y2="${y - 2}" class="sep"/>`,
    );
    for (const r of g.rows) {
      const ratio = r.time[variant].ratio;
      const ours = r.lib === 'bulwark';
      const x0 = x(10 ** minExp);
      const x1 = x(ratio);
      parts.push(
        `<text x="${left - 6}" y="${y + barH - 3}" class="l${ours ? ' b' : ''}" text-anchor="end">${esc(r.lib)}</text>`,
        `<rect x="${x0}" y="${y}" width="${Math.max(1, x1 - x0).toFixed(1)}" height="${barH}" class="${ours ? 'us' : 'peer'}"><title>${esc(`${r.lib}: ${r.label} — ${fmtRatio(ratio)} the bare call`)}</title></rect>`,
        `<text x="${(x1 + 4).toFixed(1)}" y="${y + barH - 3}" class="v${ours ? ' b' : ''}">${fmtRatio(ratio)}</text>`,
      );
      y += barH + gap;
    }
  }
  const bottom = y + 8;

  const grid = [];
  for (let e = minExp; e <= maxExp; e++) {
    const gx = x(10 ** e).toFixed(1);
    const label = e < 0 ? `${10 ** e}×` : `${(10 ** e).toLocaleString('en-US')}×`;
    grid.push(
      `<line x1="${gx}" x2="${gx}" y1="${top}" y2="${bottom}" class="${e === 0 ? 'one' : 'grid'}"/>`,
      `<text x="${gx}" y="${top - 4}" class="t" text-anchor="middle">${label}</text>`,
    );
  }
  if (wrapper !== undefined) {
    const wx = x(wrapper).toFixed(1);
    grid.push(
      `<line x1="${wx}" x2="${wx}" y1="${top}" y2="${bottom}" class="ref"/>`,
      `<text x="${wx}" y="${bottom + 14}" class="t" text-anchor="middle">plain async wrapper ${fmtRatio(wrapper)}</text>`,
    );
  }

  if (floor !== undefined) {
    const fx = x(floor).toFixed(1);
    grid.push(
      `<line x1="${fx}" x2="${fx}" y1="${top}" y2="${bottom}" class="floor"/>`,
      `<text x="${fx}" y="${bottom + 26}" class="t" text-anchor="middle">observation floor ${fmtRatio(floor)}</text>`,
    );
  }

  const m = results.machine;
  const subtitle = `${m.node} (V8 ${m.v8}) · ${m.cpu} · ${m.cores} cores · ${results.date.slice(0, 10)} · sequential awaited calls of async () => 42`;
  const H = bottom + 36;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif">
<style>
  .title { font-size: 16px; font-weight: 600; fill: #111827; }
  .sub { font-size: 11px; fill: #4b5563; }
  .h { font-size: 12px; font-weight: 600; fill: #111827; }
  .l { font-size: 11px; fill: #374151; }
  .v { font-size: 10px; fill: #374151; }
  .b { font-weight: 700; fill: #1d4ed8; }
  .t { font-size: 10px; fill: #6b7280; }
  .us { fill: #2563eb; }
  .peer { fill: #9ca3af; }
  .grid { stroke: #e5e7eb; stroke-width: 1; }
  .one { stroke: #111827; stroke-width: 1; }
  .ref { stroke: #f59e0b; stroke-width: 1; stroke-dasharray: 4 3; }
  .floor { stroke: #16a34a; stroke-width: 1; stroke-dasharray: 2 2; }
  .sep { stroke: #d1d5db; stroke-width: 0.5; }
</style>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="10" y="22" class="title">Time per call as a multiple of the bare call (log scale; lower is better)</text>
<text x="10" y="40" class="sub">${esc(subtitle)}</text>
<text x="10" y="54" class="sub">bulwark in blue, peers in grey; 1× is the bare await fn(); green: the observation floor fn().then(ok, err); orange: a plain async wrapper</text>
${grid.join('\n')}
${parts.join('\n')}
</svg>
`;
}
