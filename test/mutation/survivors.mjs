// Lists the surviving (and uncovered) mutants of the last `npm run mutation` from its JSON reports (one per batch,
// see batches.mjs).
//
//   node test/mutation/survivors.mjs [report.json ...]   (default: every reports/mutation/batch-*.json)
import { readdirSync, readFileSync } from 'node:fs';

const given = process.argv.slice(2);
const reports = (
  given.length > 0
    ? given
    : readdirSync('reports/mutation')
        .filter((f) => /^batch-\d+\.json$/.test(f))
        .map((f) => `reports/mutation/${f}`)
).map((file) => JSON.parse(readFileSync(file, 'utf8')));

const totals = {};
const rows = [];
for (const [path, { mutants, source }] of reports.flatMap((report) =>
  Object.entries(report.files),
)) {
  const lines = source.split('\n');
  for (const mutant of mutants) {
    totals[mutant.status] = (totals[mutant.status] ?? 0) + 1;
    if (mutant.status !== 'Survived' && mutant.status !== 'NoCoverage') continue;
    const { line, column } = mutant.location.start;
    rows.push({
      where: `${path}:${line}:${column}`,
      status: mutant.status,
      mutator: mutant.mutatorName,
      code: (lines[line - 1] ?? '').trim().slice(0, 100),
      replacement: String(mutant.replacement ?? '')
        .replace(/\s+/g, ' ')
        .slice(0, 80),
    });
  }
}

const detected = (totals.Killed ?? 0) + (totals.Timeout ?? 0);
const valid = detected + (totals.Survived ?? 0) + (totals.NoCoverage ?? 0);
console.log(`mutants: ${JSON.stringify(totals)}`);
console.log(
  `score: ${((detected / valid) * 100).toFixed(2)}% (killed + timeout) / (valid mutants)`,
);
for (const row of rows)
  console.log(
    `${row.status === 'NoCoverage' ? 'NOCOV ' : 'SURV  '}${row.where}  [${row.mutator}]\n      ${row.code}\n   -> ${row.replacement}`,
  );
