import type { emailAnalysis, processingQueue } from '../db/schema.js';
import type { Config } from '../config.js';
import { Sealer } from './sealer.js';

/**
 * What of a message's content is stored, and how: sealed under ENCRYPTION_KEY, in plaintext without
 * one, or not at all (PRIVACY_KEEP_HEADERS=false drops subject and sender). Every write of content
 * goes through protect*, every read through reveal*; metadata (verdict, category, priority, dates,
 * mailbox) is never sealed, so filters keep working.
 */

type AnalysisInsert = typeof emailAnalysis.$inferInsert;
type AnalysisRow = typeof emailAnalysis.$inferSelect;
type QueueRow = typeof processingQueue.$inferSelect;

interface AnalysisHeaders {
  subject?: string | null;
  fromAddress?: string | null;
  fromName?: string | null;
}
interface AnalysisContent {
  summary?: string | null;
  tags?: string[];
  reasons?: string[];
  priorityReason?: string | null;
  replySuggestion?: string | null;
}
type Sealed = Pick<AnalysisInsert, 'sealedHeaders' | 'sealedContent' | 'keyId'>;
interface QueueHeaders {
  fromHeader?: string | null;
  subject?: string | null;
}

const NO_HEADERS = { subject: null, fromAddress: null, fromName: null } as const;
const NO_CONTENT = { summary: null, tags: [], reasons: [], priorityReason: null, replySuggestion: null } as const;

export interface ProtectionOptions {
  sealer: Sealer | null;
  /** false: subject and sender are not stored at all. */
  keepHeaders: boolean;
}

export class ContentProtection {
  constructor(private readonly opts: ProtectionOptions) {}

  get sealing(): boolean {
    return this.opts.sealer !== null;
  }

  get sealer(): Sealer | null {
    return this.opts.sealer;
  }

  /** false (PRIVACY_KEEP_HEADERS=false): no sender or subject is stored in any form. */
  get keepsHeaders(): boolean {
    return this.opts.keepHeaders;
  }

  /**
   * How a sender learned in a mailbox is looked up: its address in lower case, or with
   * ENCRYPTION_KEY keyed hashes of mailbox and address (current key first, then earlier ones), so a
   * stolen table shows neither the address nor which mailboxes learned the same sender.
   */
  senderKeys(mailbox: string, address: string): string[] {
    const a = address.trim().toLowerCase();
    return this.opts.sealer ? this.opts.sealer.tags(`${mailbox}\0${a}`, 'sender') : [a];
  }

  /** A learned sender as it is stored: plain, or sealed under the current key. */
  protectSender(mailbox: string, address: string): { senderKey: string; sender: string | null; sealedSender: string | null; keyId: string | null } {
    const a = address.trim().toLowerCase();
    const sealer = this.opts.sealer;
    if (!sealer) return { senderKey: a, sender: a, sealedSender: null, keyId: null };
    return { senderKey: this.senderKeys(mailbox, a)[0]!, sender: null, sealedSender: sealer.seal(a, mailbox), keyId: sealer.currentId };
  }

  /** A learned sender's address for display; null when its key is not configured. */
  revealSender(row: { mailbox: string; sender: string | null; sealedSender: string | null }): string | null {
    if (!row.sealedSender) return row.sender;
    try {
      return this.open<string>(row.sealedSender, row.mailbox);
    } catch {
      return null;
    }
  }

  /** The From and Subject a push carried, as the queue row stores them. */
  protectQueueHeaders(mailbox: string, h: QueueHeaders): { fromHeader: string | null; subject: string | null; sealedHeaders: string | null; keyId: string | null } {
    const headers = { fromHeader: h.fromHeader ?? null, subject: h.subject ?? null };
    if (!this.opts.keepHeaders || (headers.fromHeader === null && headers.subject === null)) {
      return { fromHeader: null, subject: null, sealedHeaders: null, keyId: null };
    }
    const sealer = this.opts.sealer;
    // Built field by field, not spread: on the push path a spread plus more fields kept each push's
    // objects alive through V8's young collections (see NO_SPREAD_ON_PUSH_PATH in push/receive.ts).
    if (!sealer) return { fromHeader: headers.fromHeader, subject: headers.subject, sealedHeaders: null, keyId: null };
    return { fromHeader: null, subject: null, sealedHeaders: sealer.seal(headers, mailbox), keyId: sealer.currentId };
  }

  revealQueueHeaders(row: Pick<QueueRow, 'mailbox' | 'fromHeader' | 'subject' | 'sealedHeaders'>): QueueHeaders {
    if (!row.sealedHeaders) return { fromHeader: row.fromHeader, subject: row.subject };
    return this.open<QueueHeaders>(row.sealedHeaders, row.mailbox);
  }

  /** An analysis row as it is written: content sealed (or headers dropped) per the settings. */
  protectAnalysis<T extends AnalysisInsert>(row: T): T & Sealed {
    const headers: AnalysisHeaders = { subject: row.subject ?? null, fromAddress: row.fromAddress ?? null, fromName: row.fromName ?? null };
    const content: AnalysisContent = {
      summary: row.summary ?? null,
      tags: row.tags ?? [],
      reasons: row.reasons ?? [],
      priorityReason: row.priorityReason ?? null,
      replySuggestion: row.replySuggestion ?? null,
    };
    const out: T & Sealed = { ...row };
    if (!this.opts.keepHeaders) Object.assign(out, NO_HEADERS);
    const sealer = this.opts.sealer;
    if (!sealer) return out;
    const hasHeaders = this.opts.keepHeaders && Object.values(headers).some((v) => v !== null);
    Object.assign(out, NO_HEADERS, NO_CONTENT, {
      sealedHeaders: hasHeaders ? sealer.seal(headers, row.mailbox) : null,
      sealedContent: sealer.seal(content, row.mailbox),
      keyId: sealer.currentId,
    });
    return out;
  }

  /**
   * For display (API, dashboard): as revealAnalysis, but a row that cannot be opened (sealed with a
   * key that is not configured, or damaged) comes back with its content empty and the key id it
   * names in `unreadableKeyId`, so one such row never breaks a list.
   */
  revealAnalysisForDisplay<T extends Pick<AnalysisRow, 'mailbox' | 'sealedHeaders' | 'sealedContent' | 'keyId'>>(row: T): T & { unreadableKeyId: string | null } {
    try {
      return { ...this.revealAnalysis(row), unreadableKeyId: null };
    } catch {
      return { ...row, ...NO_HEADERS, ...NO_CONTENT, unreadableKeyId: row.keyId ?? 'unknown' };
    }
  }

  /** An analysis row as it is read: sealed content opened into its columns. */
  revealAnalysis<T extends Pick<AnalysisRow, 'mailbox' | 'sealedHeaders' | 'sealedContent'>>(row: T): T {
    if (!row.sealedHeaders && !row.sealedContent) return row;
    return {
      ...row,
      ...(row.sealedHeaders ? this.open<AnalysisHeaders>(row.sealedHeaders, row.mailbox) : {}),
      ...(row.sealedContent ? this.open<AnalysisContent>(row.sealedContent, row.mailbox) : {}),
    };
  }

  /** An audit entry's details: a replaced analysis archived there carries its sealed parts. */
  revealAuditDetails(mailbox: string, details: Record<string, unknown> | null): Record<string, unknown> | null {
    if (!details) return details;
    const { sealed_headers, sealed_content, key_id: _kid, ...rest } = details;
    if (!sealed_headers && !sealed_content) return rest;
    const h = sealed_headers ? this.open<AnalysisHeaders>(String(sealed_headers), mailbox) : {};
    const c = sealed_content ? this.open<AnalysisContent>(String(sealed_content), mailbox) : {};
    return {
      ...rest,
      ...(h.subject !== undefined ? { subject: h.subject } : {}),
      ...(c.summary !== undefined ? { summary: c.summary } : {}),
      ...(c.tags !== undefined ? { tags: c.tags } : {}),
      ...(c.reasons !== undefined ? { reasons: c.reasons } : {}),
    };
  }

  private open<T>(sealed: string, mailbox: string): T {
    if (!this.opts.sealer) {
      // Checked at start-up (checkKeys); reaching this means a row was sealed behind our back.
      throw new Error('a sealed row was found but ENCRYPTION_KEY is not set');
    }
    return this.opts.sealer.open<T>(sealed, mailbox);
  }
}

/** The protection the configuration asks for. */
export function protectionFor(config: Pick<Config, 'privacy'>): ContentProtection {
  const p = config.privacy;
  return new ContentProtection({ sealer: p.encryptionKey ? new Sealer(p.encryptionKey, p.previousKeys) : null, keepHeaders: p.keepHeaders });
}
