// Lists the surviving (and uncovered) mutants of the last `npm run mutation` from its JSON report.
//
//   node test/mutation/survivors.mjs [reports/mutation/mutation.json]
import { readFileSync } from 'node:fs';

const file = process.argv[2] ?? 'reports/mutation/mutation.json';
const report = JSON.parse(readFileSync(file, 'utf8'));

const totals = {};
const rows = [];
for (const [path, { mutants, source }] of Object.entries(report.files)) {
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
