// Signals only, no LLM, over the labelled SpamAssassin corpus (issue: signals, rules, actions): `npm run bench signals`.
import { compileRules, RECOMMENDED_RULES } from '../src/analysis/rules.js';
import { computeSignals, evidence } from '../src/analysis/signals/index.js';
import { decideVerdict } from '../src/analysis/verdict.js';
import { parseMessage } from '../src/mail/parse.js';
import { GROUPS, loadCorpus } from '../test/support/corpus.js';
import { table, writeResult } from './lib.js';

const TARGET_SPAM = 0.5;
const TARGET_HAM = 0.01;

export async function runSignalsBench() {
  const corpus = loadCorpus();
  const rules = compileRules(RECOMMENDED_RULES);
  const byGroup = Object.fromEntries(GROUPS.map((g) => [g, { messages: 0, flagged: 0, skippedByRules: 0 }]));
  let ms = 0;
  for (const m of corpus) {
    const t0 = performance.now();
    const parsed = await parseMessage(m.raw);
    const signals = computeSignals(parsed);
    const d = decideVerdict(null, evidence(signals));
    const ruled = rules(parsed, signals);
    ms += performance.now() - t0;
    const g = byGroup[m.group]!;
    g.messages++;
    if (d.verdict === 'spam' || d.verdict === 'scam' || d.verdict === 'phishing') g.flagged++;
    if (ruled.action === 'skip') g.skippedByRules++;
  }
  const sum = (label: 'spam' | 'ham', k: 'messages' | 'flagged' | 'skippedByRules') =>
    Object.entries(byGroup).filter(([g]) => g.startsWith(label === 'spam' ? 'spam' : 'easy-ham') || (label === 'ham' && g.startsWith('hard-ham'))).reduce((n, [, v]) => n + v[k], 0);
  const spamShare = sum('spam', 'flagged') / sum('spam', 'messages');
  const hamShare = sum('ham', 'flagged') / sum('ham', 'messages');
  const skipped = (sum('spam', 'skippedByRules') + sum('ham', 'skippedByRules')) / corpus.length;
  table(Object.entries(byGroup).map(([group, v]) => ({ group, messages: v.messages, flagged: v.flagged, 'flagged %': (100 * v.flagged) / v.messages, 'kept from LLM by rules': v.skippedByRules })));
  console.log(`spam flagged: ${(100 * spamShare).toFixed(1)}% (target >= ${100 * TARGET_SPAM}%); ham falsely flagged: ${(100 * hamShare).toFixed(2)}% (target <= ${100 * TARGET_HAM}%)`);
  console.log(`kept away from the LLM by the recommended rules: ${(100 * skipped).toFixed(1)}% (this corpus carries no upstream filter headers)`);
  console.log(`parse + signals: ${(ms / corpus.length).toFixed(2)} ms per message`);
  console.log(`written ${writeResult('signals', { messages: corpus.length, byGroup, spamShare, hamShare, skippedByRecommendedRules: skipped, msPerMessage: ms / corpus.length, targets: { spam: TARGET_SPAM, ham: TARGET_HAM } })}`);
}
