import { expect, it } from 'vitest';
import { computeSignals, evidence, promptSignals } from '../../src/analysis/signals/index.js';
import { parseMessage } from '../../src/mail/parse.js';
import { loadCorpus } from '../support/corpus.js';

it('the whole SpamAssassin corpus goes through parsing and signals without one exception', async () => {
  const corpus = loadCorpus();
  // The package ships 6,046 messages (the corpus's 6,047 less one it leaves out).
  expect(corpus.length).toBe(6046);
  const failures: string[] = [];
  let hidden = 0;
  let withLinks = 0;
  for (const m of corpus) {
    try {
      const parsed = await parseMessage(m.raw);
      const signals = computeSignals(parsed);
      evidence(signals);
      promptSignals(signals);
      JSON.stringify(signals);
      if (signals.hiddenText.elements) hidden++;
      if (signals.links.total) withLinks++;
    } catch (err) {
      failures.push(`${m.group}/${m.file}: ${(err as Error).message}`);
    }
  }
  expect(failures).toEqual([]);
  // The signals see something in real mail (a detector that never fires would pass the line above too).
  expect(withLinks).toBeGreaterThan(2000);
  expect(hidden).toBeGreaterThan(10);
}, 120_000);
