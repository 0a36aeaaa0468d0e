import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/** The import graph of src/ (type-only imports included): one way from the HTTP and analysis layers down. */

const SRC = resolve(import.meta.dirname, '../../src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return files(path);
    return /\.tsx?$/.test(name) && !name.endsWith('.d.ts') ? [path] : [];
  });
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]/g;

function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const file of files(SRC)) {
    const from = relative(SRC, file);
    const to = [...readFileSync(file, 'utf8').matchAll(IMPORT)].map((m) => {
      const target = resolve(dirname(file), m[1]!).replace(/\.js$/, '');
      const ts = [`${target}.ts`, `${target}.tsx`].find((f) => {
        try {
          return statSync(f).isFile();
        } catch {
          return false;
        }
      });
      return relative(SRC, ts ?? target);
    });
    g.set(from, to);
  }
  return g;
}

/** Strongly connected components with more than one file (or a file importing itself): the cycles. */
function cycles(g: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of g.get(v) ?? []) {
      if (!g.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (g.get(v) ?? []).includes(v)) out.push(scc.sort());
    }
  };
  for (const v of g.keys()) if (!idx.has(v)) visit(v);
  return out;
}

describe('the import graph of src/', () => {
  const g = graph();

  it('has no cycle', () => {
    expect(cycles(g)).toEqual([]);
  });

  it('has no import from queue/, db/, mail/ or domain/ up into analysis/, queries/, routes/ or http/', () => {
    const upward = [...g].flatMap(([from, tos]) =>
      /^(queue|db|mail|domain)\//.test(from) ? tos.filter((to) => /^(analysis|queries|routes|http|dashboard)\//.test(to)).map((to) => `${from} -> ${to}`) : [],
    );
    expect(upward).toEqual([]);
  });
});
