import type { Db } from '../db/client.js';
import { keyOf } from '../domain/message-key.js';
import type { Preferences } from '../domain/preferences.js';
import { errorText } from '../logger.js';
import { planActions, type ActHooks, type ActionSettings } from '../mail/actions.js';
import type { AuditEntry, AuditSink } from './audit.js';
import type { Job } from './jobs.js';
import type { MessageSource } from './message-source.js';
import type { Evidence } from './signals/index.js';
import { clearMoving, recordActions, recordMoving } from './store.js';
import { recordFlagging } from './feedback.js';
import type { Decision } from './verdict.js';

/** The pipeline's "act" and "audit" steps: what a decision does in the mailbox, and its record. */

export interface ActInput {
  db: Db;
  source: MessageSource;
  audit: AuditSink;
  settings: ActionSettings;
  dryRun: boolean;
  job: Job;
  prefs: Preferences;
  messageId: string | undefined;
  decision: Decision;
  evidence: Evidence;
  /** What the model (or a rule) said of the message's category and priority. */
  result: { category?: string | null; priority?: number | null };
  /** The decision's entry: analysed, skipped, or a verdict raised by a campaign. */
  decided: 'analyzed' | 'skipped' | 'campaign';
  /** Recorded with the decision's entry (a campaign's: the message that marked it). */
  details?: Record<string, unknown>;
  rule: string | undefined;
}

/**
 * Carries out (or, with DRY_RUN, only plans) the mailbox actions a decision calls for, and returns
 * the audit entries for the job's end. When a mailbox was changed, its entries are written at
 * once instead: that record must not depend on the job's end. An action that fails is recorded;
 * the analysis stands and the job still ends.
 */
export async function act(i: ActInput): Promise<AuditEntry[]> {
  const { db, source, job, decision: d } = i;
  const key = keyOf(job);
  const common = { ...key, messageId: i.messageId, verdict: d.verdict, confidence: d.confidence, rule: i.rule };
  // Reasons from the signals only: the model's reasons may quote the message, and the trail is not sealed.
  const reasons = i.evidence.reasons;
  const why = d.why ?? (d.verdictSource === 'model' ? 'verdict by the model' : `verdict by ${d.verdictSource}${reasons.length ? `: ${reasons.slice(0, 3).join('; ')}` : ''}`);
  const entries: AuditEntry[] = [{ ...common, action: i.decided, reason: why, ...(i.details ? { details: i.details } : {}) }];
  const plan = planActions(d, i.result, i.prefs, i.settings, job.folder);
  if (plan.keywords.length === 0 && !plan.moveToJunk) {
    entries.push({ ...common, action: 'kept', reason: 'no action for this verdict' });
    return entries;
  }
  if (i.dryRun || !source.act) {
    if (plan.keywords.length) entries.push({ ...common, action: 'would_flag', reason: `DRY_RUN: keywords ${plan.keywords.join(' ')}` });
    if (plan.moveToJunk) entries.push({ ...common, action: 'would_move', reason: `DRY_RUN: to the Junk folder${plan.markSeen ? ', marked read' : ''}` });
    return entries;
  }
  // Keywords and the move are recorded before they are made: their pushes (FlagsSet; MessageAppend
  // and the source's expunge) can arrive before the STORE and the MOVE return, and must find them
  // (analysis/feedback.ts, push/receive.ts, queue/jobs.ts markExpunged).
  const hooks: ActHooks = { beforeFlag: (keywords) => recordFlagging(db, key, keywords), beforeMove: (target) => recordMoving(db, key, target) };
  try {
    const out = await source.act(key, plan, hooks);
    if (out.status === 'done') {
      if (out.keywords.length) entries.push({ ...common, action: 'flagged', reason: `keywords ${out.keywords.join(' ')}` });
      if (out.movedTo) {
        entries.push({ ...common, action: 'moved', reason: `to ${out.movedTo.folder}${out.movedTo.uid ? ` as UID ${out.movedTo.uid}` : ''}`, details: { folder: out.movedTo.folder, uid: out.movedTo.uid ?? null } });
      }
      await recordActions(db, key, out.keywords, out.movedTo);
    } else {
      const reason = out.status === 'gone' ? 'the message is no longer in the folder' : `UIDVALIDITY of ${job.folder} changed`;
      entries.push({ ...common, action: plan.moveToJunk ? 'move_failed' : 'error', reason });
    }
  } catch (err) {
    entries.push({ ...common, action: plan.moveToJunk ? 'move_failed' : 'error', reason: errorText(err) });
  }
  if (!entries.some((e) => e.action === 'moved')) await clearMoving(db, key);
  await i.audit.write(db, entries);
  return [];
}
