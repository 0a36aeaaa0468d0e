import { JUNK_VERDICTS, type Verdict, type VerdictSource } from '../domain/states.js';
import type { AnalysisResult } from './result.js';
import type { LearnedSender } from './senders.js';
import { FLOOR, type Evidence } from './signals/index.js';

export interface Decision {
  verdict: AnalysisResult['verdict'];
  confidence: number;
  phishingScore: number;
  verdictSource: VerdictSource;
  isSpam: boolean;
  isPhishing: boolean;
  /** Why, for the audit trail, when the source alone does not say it (a learned sender). */
  why?: string;
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

/**
 * Signals-only legit: with no phishing or upstream-spam evidence and few bulk points, a message the
 * signals alone judge is legit, at a confidence kept low because they see no content. On the
 * SpamAssassin corpus (31% spam) 98.3% of the messages at 0 points or below were ham, and 82.5% of
 * those up to 2.5 points; from 2.5 to 7.5 points 83% were spam, so those stay unknown.
 */
export const SIGNALS_LEGIT_BANDS = [
  { maxBulkScore: 0, confidence: 0.5 },
  { maxBulkScore: 2.5, confidence: 0.4 },
] as const;

/** The verdict of the signals alone (--signals-only, a skip rule without a verdict of its own). */
export function decideBySignals(ev: Evidence): Decision {
  const d = decideVerdict(null, ev);
  if (d.verdict !== 'unknown' || ev.phishing > 0 || ev.spam > 0) return d;
  const band = SIGNALS_LEGIT_BANDS.find((b) => ev.bulkScore <= b.maxBulkScore);
  return band ? { ...d, verdict: 'legit', confidence: band.confidence } : d;
}

const isJunk = (v: Verdict) => (JUNK_VERDICTS as readonly Verdict[]).includes(v);

/**
 * The mailbox user's word on the sender (senders.ts) over the verdict of the model, the signals or
 * a rule: a sender they rescued from Junk is not junked again, one they junked is junked (as spam).
 * Deterministic phishing evidence still wins over a rescue: a forged sender address is how
 * phishing gets past a list of trusted senders.
 */
export function applyLearned(d: Decision, learned: LearnedSender | null, ev: Evidence): Decision {
  if (!learned) return d;
  const when = learned.at.toISOString().slice(0, 10);
  if (learned.said === 'legit' && isJunk(d.verdict) && ev.phishing < FLOOR) {
    return { ...d, verdict: 'legit', confidence: 1, isSpam: false, isPhishing: false, verdictSource: 'user', why: `verdict by user: the user said mail from this sender is not junk (${learned.how}, ${when}); ${d.verdictSource} had said ${d.verdict}` };
  }
  if (learned.said === 'junk' && !isJunk(d.verdict)) {
    return { ...d, verdict: 'spam', confidence: 1, isSpam: true, isPhishing: false, verdictSource: 'user', why: `verdict by user: the user said mail from this sender is junk (${learned.how}, ${when}); ${d.verdictSource} had said ${d.verdict}` };
  }
  return d;
}
