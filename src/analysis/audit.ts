import { appendFile } from 'node:fs/promises';
import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { auditLog } from '../db/schema.js';
import { errorText, type Logger } from '../logger.js';
import { keyEquals, type MessageKey } from '../domain/message-key.js';
import type { AuditAction } from '../domain/states.js';

/** llm_audit_log: one row per decision about a message and per action taken on it. */

export type { AuditAction };

export type AuditEntry = MessageKey &
  Partial<Pick<typeof auditLog.$inferInsert, 'messageId' | 'verdict' | 'confidence' | 'rule' | 'reason' | 'details'>> & {
    action: AuditAction;
  };

/**
 * Inserting audit rows given as JSON (auditRow's shape), in one statement: `onlyEnded` restricts them to
 * the jobs a CTE named `ended` lists (the queue's finish statement).
 */
export function insertAuditRows(json: string, opts: { onlyEnded?: boolean } = {}) {
  return sql`
    insert into llm_audit_log (mailbox, folder, uidvalidity, uid, message_id, verdict, confidence, rule, action, reason, details)
    select a.mailbox, a.folder, a.uidvalidity, a.uid, a.message_id, a.verdict, a.confidence, a.rule, a.action, a.reason, a.details
      from json_to_recordset(${json}::json)
        as a(job_id bigint, mailbox text, folder text, uidvalidity bigint, uid bigint, message_id text, verdict text,
             confidence real, rule text, action text, reason text, details jsonb)
      ${opts.onlyEnded ? sql`join ended on ended.id = a.job_id` : sql``}`;
}

/** The row as SQL's json_to_recordset reads it (snake_case), optionally tagged with its job. */
export function auditRow(e: AuditEntry, jobId?: number) {
  return {
    job_id: jobId ?? null,
    mailbox: e.mailbox,
    folder: e.folder,
    uidvalidity: e.uidvalidity,
    uid: e.uid,
    message_id: e.messageId ?? null,
    verdict: e.verdict ?? null,
    confidence: e.confidence ?? null,
    rule: e.rule ?? null,
    action: e.action,
    reason: e.reason ?? null,
    details: e.details ?? null,
  };
}

/**
 * Audit entries: to the table (decisions go with the job's end in the queue's finish statement;
 * an action taken in a mailbox is written at once, by write()) and, with AUDIT_FILE, as JSON lines.
 */
export class AuditSink {
  private fileWrites: Promise<void> = Promise.resolve();

  constructor(
    private readonly file?: string,
    private readonly logger?: Logger,
  ) {}

  /** Stores entries now (a mailbox changed: its record must not wait for anything else). */
  async write(db: Db, entries: AuditEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await db.rows(insertAuditRows(JSON.stringify(entries.map((e) => auditRow(e)))));
    await this.appendToFile(entries);
  }

  /** The AUDIT_FILE copy of entries the table has; a failure to append is logged, never thrown. */
  async appendToFile(entries: AuditEntry[]): Promise<void> {
    if (!this.file || entries.length === 0) return;
    const at = new Date().toISOString();
    const lines = entries.map((e) => {
      const { job_id: _job, details: _details, ...row } = auditRow(e);
      return JSON.stringify({ ts: at, ...row });
    });
    const file = this.file;
    // One append at a time, in order; the table is the record, the file a copy for existing tooling.
    this.fileWrites = this.fileWrites
      .then(() => appendFile(file, `${lines.join('\n')}\n`, { mode: 0o640 }))
      .catch((err) => this.logger?.warn({ file, err: errorText(err) }, 'AUDIT_FILE: could not append (the table has the entry)'));
    await this.fileWrites;
  }
}

/** One entry, now (an API request's record). */
export async function writeAudit(db: Db, entry: AuditEntry): Promise<void> {
  await db.rows(insertAuditRows(JSON.stringify([auditRow(entry)])));
}

/**
 * Copies the message's current analysis into the audit trail before a forced re-analysis replaces
 * it, so the earlier verdict stays on record.
 */
export async function archiveAnalysis(db: Db, key: MessageKey, reason: string): Promise<void> {
  await db.rows(sql`
    insert into llm_audit_log (mailbox, folder, uidvalidity, uid, message_id, verdict, confidence, action, reason, details)
    select mailbox, folder, uidvalidity, uid, message_id, verdict, confidence, 'analysis_replaced', ${reason},
      jsonb_build_object(
        'status', status, 'summary', summary, 'category', category, 'tags', to_jsonb(tags), 'reasons', reasons,
        'priority', priority, 'sensitive', sensitive, 'error', error, 'model', model, 'prompt_version', prompt_version,
        'analyzed_at', created_at, 'updated_at', updated_at,
        'sealed_headers', sealed_headers, 'sealed_content', sealed_content, 'key_id', key_id)
    from llm_email_analysis
    where ${keyEquals(key)}
    returning id`);
}
