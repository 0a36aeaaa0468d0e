import { sql, type SQL } from 'drizzle-orm';

/** The words mailsight stores for its states and kinds, each list once; the schema types its columns with them. */

/** A queue row: queued -> processing -> one of the final states. */
export const JOB_STATES = ['queued', 'processing', 'done', 'skipped', 'failed', 'dead', 'gone', 'stale'] as const;
export type JobState = (typeof JOB_STATES)[number];
export const FINAL_STATES = ['done', 'skipped', 'failed', 'dead', 'gone', 'stale'] as const satisfies readonly JobState[];
export type FinalState = (typeof FINAL_STATES)[number];

/** Who asked for a job. */
export const JOB_SOURCES = ['api', 'push', 'reconcile', 'backfill', 'campaign'] as const;
export type JobSource = (typeof JOB_SOURCES)[number];

/** An analysis row. */
export const ANALYSIS_STATUSES = ['analyzed', 'skipped', 'failed'] as const;
export type AnalysisStatus = (typeof ANALYSIS_STATUSES)[number];

/** A message's state as the API shows it: its analysis's status when it has one, else its job's state. */
export const MESSAGE_STATES = [...new Set([...JOB_STATES, ...ANALYSIS_STATUSES])] as (JobState | AnalysisStatus)[];
export type MessageState = JobState | AnalysisStatus;

/** The verdict on a message. */
export const VERDICTS = ['legit', 'spam', 'scam', 'phishing', 'unknown'] as const;
export type Verdict = (typeof VERDICTS)[number];

/** Verdicts that call a message junk (the Junk folder's kind of mail); legit and unknown do not. */
export const JUNK_VERDICTS = ['spam', 'scam', 'phishing'] as const satisfies readonly Verdict[];

/**
 * Who settled a verdict: the model; the deterministic signals' floor; an escalation rule; the
 * mailbox's user (a sender learned from their Junk / Not junk); a campaign another message settled.
 */
export const VERDICT_SOURCES = ['model', 'signals', 'rule', 'user', 'campaign'] as const;
export type VerdictSource = (typeof VERDICT_SOURCES)[number];

/** What a user said of a message (feedback), and how they said it. */
export const FEEDBACK_SAID = ['junk', 'legit'] as const;
export type FeedbackSaid = (typeof FEEDBACK_SAID)[number];
export const FEEDBACK_HOW = ['keyword', 'move', 'dashboard', 'api'] as const;
export type FeedbackHow = (typeof FEEDBACK_HOW)[number];

/** What an audit entry records: a decision, a mailbox action (or the one DRY_RUN left out), or a request on the record. */
export const AUDIT_ACTIONS = [
  'analyzed',
  'skipped',
  'kept',
  'moved',
  'would_move',
  'flagged',
  'would_flag',
  'move_failed',
  'error',
  'analysis_requested',
  'reanalysis_requested',
  'analysis_replaced',
  'feedback',
  'campaign',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

type StoredWord = JobState | JobSource | AnalysisStatus | Verdict | AuditAction;

/**
 * Stored words for raw SQL: `lit('queued')` is `'queued'`, `lit('queued', 'processing')` is
 * `'queued', 'processing'` (for `in (…)`). Checked against the unions above when compiled, and still
 * literals in the query, so the planner matches them to the partial indexes' predicates.
 */
export function lit(...words: StoredWord[]): SQL {
  return sql.raw(words.map((w) => `'${w}'`).join(', '));
}
