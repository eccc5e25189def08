import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * The import graph of src/ has no circle: a layer imports only the layers below it. Every import counts,
 * `import type` included (a type-only circle is still two files that cannot be read one without the
 * other). TypeScript's own `preProcessFile` lists the imports, so no extra tool is needed.
 */
const src = fileURLToPath(new URL('../src/', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Each file of src/ (relative path) and the files of src/ it imports. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(src)) {
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const imports = info.importedFiles
      .map((imported) => imported.fileName)
      .filter((name) => name.startsWith('.'))
      .map((name) => relative(src, resolve(dirname(file), name.replace(/\.js$/, '.ts'))));
    graph.set(relative(src, file), imports);
  }
  return graph;
}

/** Every circle of the graph, each once, as the list of files around it. */
function circles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const seen = new Set<string>();
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (file: string): void => {
    const at = path.indexOf(file);
    if (at >= 0) {
      const circle = path.slice(at);
      const key = [...circle].sort().join(' ');
      if (!seen.has(key)) {
        seen.add(key);
        found.push(circle);
      }
      return;
    }
    if (done.has(file)) return;
    path.push(file);
    for (const next of graph.get(file) ?? []) visit(next);
    path.pop();
    done.add(file);
  };
  for (const file of [...graph.keys()].sort()) visit(file);
  return found;
}

describe('the import graph of src/', () => {
  const graph = importGraph();

  it('reads the imports of every file, type-only imports included', () => {
    expect(graph.get('events.ts')).toBeDefined();
    expect(graph.get('resilient.ts')).toContain(join('core', 'pipeline.ts'));
    // sanity of the circle finder itself
    const circle = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts']],
      ['c.ts', ['a.ts']],
    ]);
    expect(circles(circle)).toEqual([['a.ts', 'b.ts', 'c.ts']]);
  });

  it('has no import circle', () => {
    expect(circles(graph).map((circle) => [...circle, circle[0]].join(' → '))).toEqual([]);
  });
});
