import type { ParsedMessage } from '../mail/parse.js';
import type { AnalysisResult } from './result.js';
import { BULK_SPAM_SCORE } from './signals/bulk.js';
import { FLOOR, type Evidence, type Signals } from './signals/index.js';
import type { Decision } from './verdict.js';

/** `mailsight analyze`: one message's analysis, for a terminal or as JSON. */

export interface Report {
  message: { subject?: string; from?: string; date?: string; messageId?: string; sizeBytes: number; warnings: string[] };
  verdict: Decision;
  model?: { name: string; promptVersion: string; result: AnalysisResult; promptTokens?: number; completionTokens?: number; ms?: number };
  signals: Signals;
  signalReasons: string[];
  /** How the signals add up: each sign with its points or weight, against the threshold it is judged by. */
  evidence: {
    bulk: { points: number; threshold: number; signs: { name: string; points: number }[] };
    phishing: { score: number; floor: number; items: { weight: number; reason: string }[] };
    spam: { score: number; floor: number; items: { weight: number; reason: string }[] };
  };
}

export function buildReport(
  parsed: ParsedMessage,
  signals: Signals,
  ev: Evidence,
  verdict: Decision,
  model?: Report['model'],
): Report {
  const from = parsed.from ? `${parsed.from.name ? `${parsed.from.name} ` : ''}<${parsed.from.address ?? '?'}>` : undefined;
  return {
    message: {
      subject: parsed.subject,
      from,
      date: parsed.date?.toISOString(),
      messageId: parsed.messageId,
      sizeBytes: parsed.sizeBytes,
      warnings: parsed.warnings,
    },
    verdict,
    ...(model ? { model } : {}),
    signals,
    signalReasons: ev.reasons,
    evidence: {
      bulk: { points: ev.bulkScore, threshold: BULK_SPAM_SCORE, signs: ev.bulkSigns },
      phishing: { score: ev.phishing, floor: FLOOR, items: ev.items.filter((i) => i.kind === 'phishing').map(({ weight, reason }) => ({ weight, reason })) },
      spam: { score: ev.spam, floor: FLOOR, items: ev.items.filter((i) => i.kind === 'spam').map(({ weight, reason }) => ({ weight, reason })) },
    },
  };
}

/** Without a model: why the signals came to this verdict, in one line. */
function signalsOnlyWhy(r: Report): string {
  const e = r.evidence;
  const v = r.verdict;
  if (v.verdict === 'legit') {
    return `no phishing or spam evidence and ${e.bulk.points} bulk-mail points; the signals see no content, so they vouch for little (confidence ${v.confidence.toFixed(2)})`;
  }
  if (v.verdict === 'unknown') {
    const phishing = e.phishing.score > 0 ? `phishing evidence ${score(e.phishing.score)}, below ${score(e.phishing.floor)}` : 'no phishing evidence';
    return `${e.bulk.points} bulk-mail points, below ${e.bulk.threshold}, and ${phishing}: too few signs to call it spam, too many to call it legit`;
  }
  if (e.phishing.score >= e.phishing.floor) return `phishing evidence ${score(e.phishing.score)}, at or above ${score(e.phishing.floor)}`;
  if (e.spam.score >= e.spam.floor) return `an upstream filter said spam (${score(e.spam.score)}, at or above ${score(e.spam.floor)})`;
  return `${e.bulk.points} bulk-mail points, at or above ${e.bulk.threshold}`;
}

const signed = (n: number) => `${n > 0 ? '+' : ''}${n}`;
const score = (n: number) => (Math.round(n * 100) / 100).toFixed(2);

/** Every sign with its points or weight, and the threshold each group is judged by. */
function evidenceLines(e: Report['evidence'], withModel: boolean): string[] {
  const lines = ['', 'How the signals add up:'];
  const b = e.bulk;
  const verdictAt = withModel ? 'counts only when no model is asked' : 'spam at that or more';
  lines.push(`  bulk-mail signs: ${b.points} points (threshold ${b.threshold}: ${verdictAt})${b.signs.length ? '' : ', none found'}`);
  const width = Math.max(0, ...b.signs.map((x) => signed(x.points).length));
  for (const x of b.signs) lines.push(`    ${signed(x.points).padStart(width)}  ${x.name}`);
  for (const [name, g] of [['phishing evidence', e.phishing], ['upstream spam filters', e.spam]] as const) {
    lines.push(`  ${name}: ${score(g.score)} (decides at ${score(g.floor)}, whatever the model says)${g.items.length ? '' : ', none found'}`);
    for (const i of g.items) lines.push(`    ${score(i.weight)}  ${i.reason}`);
  }
  return lines;
}

export function formatReport(r: Report): string {
  const lines: string[] = [];
  const m = r.message;
  lines.push(`Subject:  ${m.subject ?? '(none)'}`, `From:     ${m.from ?? '(none)'}`);
  if (m.date) lines.push(`Date:     ${m.date}`);
  lines.push('');
  const v = r.verdict;
  lines.push(`Verdict:  ${v.verdict.toUpperCase()} (confidence ${v.confidence.toFixed(2)}, decided by ${v.verdictSource}; phishing score ${v.phishingScore.toFixed(2)})`);
  if (!r.model) lines.push(`Why:      ${signalsOnlyWhy(r)}`);
  const res = r.model?.result;
  if (res) {
    lines.push(`Category: ${res.category}${res.tags.length ? `  [${res.tags.join(', ')}]` : ''}`);
    lines.push(`Priority: ${res.priority}/10 - ${res.priority_reason}`);
    lines.push('', `Summary:  ${res.summary}`);
    if (res.reasons.length) lines.push('', "Model's reasons:", ...res.reasons.map((x) => `  - ${x}`));
    if (res.reply_suggestion) lines.push('', `Reply suggestion: ${res.reply_suggestion}`);
  }
  lines.push(...evidenceLines(r.evidence, Boolean(r.model)));
  const s = r.signals;
  const auth = Object.entries(s.auth).map(([k, val]) => `${k.toUpperCase()}=${val}`).join(' ');
  if (auth) lines.push(`  authentication: ${auth}`);
  const sensitive = [...new Set([...(res?.sensitive ?? []), ...Object.keys(s.sensitive)])];
  if (sensitive.length) lines.push('', `Sensitive data: ${sensitive.join(', ')}`);
  lines.push('', `Links: ${s.links.total}, bulk-mail score ${s.bulk.score}${m.warnings.length ? `, warnings: ${m.warnings.join('; ')}` : ''}`);
  if (r.model) {
    lines.push(`Model:    ${r.model.name}, prompt ${r.model.promptVersion}${r.model.ms !== undefined ? `, ${r.model.ms} ms` : ''}${r.model.promptTokens !== undefined ? `, ${r.model.promptTokens}+${r.model.completionTokens} tokens` : ''}`);
  } else {
    lines.push('Model:    none (--signals-only)');
  }
  return lines.join('\n');
}
