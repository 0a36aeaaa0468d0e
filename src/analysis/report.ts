import type { ParsedMessage } from '../mail/parse.js';
import type { AnalysisResult } from './result.js';
import type { Evidence, Signals } from './signals/index.js';
import type { Decision } from './verdict.js';

/** `mailsight analyze`: one message's analysis, for a terminal or as JSON. */

export interface Report {
  message: { subject?: string; from?: string; date?: string; messageId?: string; sizeBytes: number; warnings: string[] };
  verdict: Decision;
  model?: { name: string; promptVersion: string; result: AnalysisResult; promptTokens?: number; completionTokens?: number; ms?: number };
  signals: Signals;
  signalReasons: string[];
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
  };
}

export function formatReport(r: Report): string {
  const lines: string[] = [];
  const m = r.message;
  lines.push(`Subject:  ${m.subject ?? '(none)'}`, `From:     ${m.from ?? '(none)'}`);
  if (m.date) lines.push(`Date:     ${m.date}`);
  lines.push('');
  const v = r.verdict;
  lines.push(`Verdict:  ${v.verdict.toUpperCase()} (confidence ${v.confidence.toFixed(2)}, decided by ${v.verdictSource}; phishing score ${v.phishingScore.toFixed(2)})`);
  const res = r.model?.result;
  if (res) {
    lines.push(`Category: ${res.category}${res.tags.length ? `  [${res.tags.join(', ')}]` : ''}`);
    lines.push(`Priority: ${res.priority}/10 - ${res.priority_reason}`);
    lines.push('', `Summary:  ${res.summary}`);
    if (res.reasons.length) lines.push('', "Model's reasons:", ...res.reasons.map((x) => `  - ${x}`));
    if (res.reply_suggestion) lines.push('', `Reply suggestion: ${res.reply_suggestion}`);
  }
  if (r.signalReasons.length) lines.push('', 'Signals:', ...r.signalReasons.map((x) => `  - ${x}`));
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
