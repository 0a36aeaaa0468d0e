import type { AnalysisResult } from './result.js';
import { FLOOR, type Evidence } from './signals/index.js';

export interface Decision {
  verdict: AnalysisResult['verdict'];
  confidence: number;
  phishingScore: number;
  verdictSource: 'model' | 'signals' | 'rule';
  isSpam: boolean;
  isPhishing: boolean;
}

const combine = (a: number, b: number) => 1 - (1 - a) * (1 - b);
const round = (x: number) => Math.round(x * 1000) / 1000;

/**
 * The verdict stored: the model's, unless deterministic evidence at or above the floor says
 * phishing or (from an upstream filter) spam, which the model cannot talk away. The phishing score
 * combines both. Without a model (a skip rule, --signals-only) the bulk-mail signs count too.
 */
export function decideVerdict(model: Pick<AnalysisResult, 'verdict' | 'confidence'> | null, ev: Evidence): Decision {
  const modelPhishing = model?.verdict === 'phishing' ? model.confidence : 0;
  const phishingScore = round(combine(modelPhishing, ev.phishing));
  let verdict = model?.verdict ?? 'unknown';
  let confidence = model?.confidence ?? 0;
  let verdictSource: Decision['verdictSource'] = model ? 'model' : 'rule';
  if (ev.phishing >= FLOOR && verdict !== 'phishing') {
    verdict = 'phishing';
    confidence = phishingScore;
    verdictSource = model ? 'signals' : 'rule';
  } else if (ev.spam >= FLOOR && (verdict === 'legit' || verdict === 'unknown')) {
    verdict = 'spam';
    confidence = round(ev.spam);
    verdictSource = model ? 'signals' : 'rule';
  } else if (!model && ev.bulk >= FLOOR) {
    // The message's own bulk signs decide only when no model was asked: they never overrule one.
    verdict = 'spam';
    confidence = round(ev.bulk);
  } else if (verdict === 'phishing') {
    confidence = Math.max(confidence, phishingScore);
  }
  return { verdict, confidence, phishingScore, verdictSource, isSpam: verdict === 'spam' || verdict === 'scam', isPhishing: verdict === 'phishing' };
}
