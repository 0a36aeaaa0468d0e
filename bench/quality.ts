// Verdict quality against a real model: `npm run bench:quality -- --ollama <url> --model <name> --limit N`.
// Labelled SpamAssassin corpus messages go through the same parsing, signals, prompt, LLM call and
// verdict floor as the service; precision and recall of "unwanted" (spam, scam, phishing) per kind of mail.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { LlmClient } from '../src/analysis/llm.js';
import { buildPrompt, PROMPT_VERSION } from '../src/analysis/prompt.js';
import { computeSignals, evidence, promptSignals } from '../src/analysis/signals/index.js';
import { decideVerdict } from '../src/analysis/verdict.js';
import { parseMessage } from '../src/mail/parse.js';
import { GROUPS, loadCorpus } from '../test/support/corpus.js';
import { table, writeResult } from './lib.js';

const { values } = parseArgs({
  options: {
    ollama: { type: 'string', default: process.env.OLLAMA_HOST ?? 'http://127.0.0.1:11434' },
    model: { type: 'string', default: process.env.OLLAMA_MODEL ?? 'llama3.2:3b' },
    limit: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '2' },
    'max-chars': { type: 'string', default: '4000' },
    /** Where the JSON goes (default bench/results/quality.json). */
    out: { type: 'string' },
  },
});
const limit = Number(values.limit);
const host = /^[a-z]+:\/\//i.test(values.ollama!) ? values.ollama! : `http://${values.ollama}`;
const llm = new LlmClient({ host, model: values.model!, timeoutMs: 600_000 });
await llm.check();

const corpus = loadCorpus(limit);
const unwanted = (v: string) => v === 'spam' || v === 'scam' || v === 'phishing';
type Tally = { n: number; tp: number; fp: number; fn: number; tn: number; failed: number };
const tallies = Object.fromEntries(GROUPS.map((g) => [g, { n: 0, tp: 0, fp: 0, fn: 0, tn: 0, failed: 0 } as Tally]));
let next = 0;
let done = 0;
const started = performance.now();
async function worker() {
  for (;;) {
    const m = corpus[next++];
    if (!m) return;
    const t = tallies[m.group]!;
    t.n++;
    try {
      const parsed = await parseMessage(m.raw);
      const signals = computeSignals(parsed);
      const prompt = buildPrompt(parsed, { maxBodyChars: Number(values['max-chars']), replySuggestion: false, signals: promptSignals(signals) });
      const { result } = await llm.analyse(prompt);
      const flagged = unwanted(decideVerdict(result, evidence(signals)).verdict);
      const isSpam = m.label === 'spam';
      if (flagged && isSpam) t.tp++;
      else if (flagged) t.fp++;
      else if (isSpam) t.fn++;
      else t.tn++;
    } catch (err) {
      t.failed++;
      process.stderr.write(`${m.group}/${m.file}: ${(err as Error).message}\n`);
    }
    if (++done % 20 === 0) process.stderr.write(`${done}/${corpus.length}\n`);
  }
}
await Promise.all(Array.from({ length: Number(values.concurrency) }, worker));

const pct = (a: number, b: number) => (b ? (100 * a) / b : NaN);
const rows = Object.entries(tallies)
  .filter(([, t]) => t.n)
  .map(([group, t]) => ({
    mail: group,
    messages: t.n,
    'flagged %': pct(t.tp + t.fp, t.n - t.failed),
    'recall %': group.startsWith('spam') ? pct(t.tp, t.tp + t.fn) : '-',
    failed: t.failed,
  }));
const all = Object.values(tallies).reduce((a, t) => ({ tp: a.tp + t.tp, fp: a.fp + t.fp, fn: a.fn + t.fn, tn: a.tn + t.tn }), { tp: 0, fp: 0, fn: 0, tn: 0 });
console.log(`model ${values.model} on ${host}, prompt ${PROMPT_VERSION}, ${corpus.length} messages in ${((performance.now() - started) / 1000).toFixed(1)} s`);
table(rows);
const precision = pct(all.tp, all.tp + all.fp);
const recall = pct(all.tp, all.tp + all.fn);
console.log(`unwanted mail (spam, scam, phishing): precision ${precision.toFixed(1)}%, recall ${recall.toFixed(1)}%, ham falsely flagged ${pct(all.fp, all.fp + all.tn).toFixed(2)}%`);
const result = { model: values.model, host, promptVersion: PROMPT_VERSION, messages: corpus.length, byGroup: tallies, precision, recall };
if (values.out) writeFileSync(values.out, JSON.stringify(result, null, 2));
console.log(`written ${values.out ?? writeResult('quality', result)}`);
process.exit(0);
