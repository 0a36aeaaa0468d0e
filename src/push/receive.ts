import { keyOf } from '../domain/message-key.js';
import type { Db } from '../db/client.js';
import { followMessage } from '../analysis/store.js';
import type { FolderFilter } from '../mail/folders.js';
import type { ContentProtection } from '../privacy/protection.js';
import { enqueue, markExpunged } from '../queue/jobs.js';
import type { PushEvent } from './payload.js';

export type PushOutcome =
  | { status: 'queued'; new: boolean; id: number | null }
  | { status: 'followed'; from: { folder: string; uid: number } }
  | { status: 'expunged'; dequeued: boolean; analysisRemoved: boolean }
  | { status: 'ignored'; reason: string };

export interface ReceiveDeps {
  protection: ContentProtection;
  folders: FolderFilter;
}

/**
 * Everything the push endpoint does after validation. New mail in an analysed folder is one
 * statement against the queue. Mail that appeared by IMAP (MessageAppend) first looks for its
 * analysis by Message-ID: mailsight's own move is not news, and a message the user moved or copied
 * keeps the analysis it has (in any folder, excluded ones too: no LLM call either way).
 */
export async function receivePush(db: Db, ev: PushEvent, deps: ReceiveDeps): Promise<PushOutcome> {
  const key = keyOf(ev);
  switch (ev.action) {
    case 'enqueue': {
      if (ev.event.toLowerCase() === 'messageappend' && ev.messageId) {
        const followed = await followMessage(db, key, ev.messageId);
        if (followed.kind === 'own-move') return { status: 'ignored', reason: `mailsight moved this message here from ${followed.from.folder} (UID ${followed.from.uid})` };
        if (followed.kind === 'followed') return { status: 'followed', from: followed.from };
      }
      const folder = deps.folders.decide(ev.folder);
      if (!folder.analyse) return { status: 'ignored', reason: folder.reason };
      const r = await enqueue(db, {
        ...key,
        source: 'push',
        event: ev.event,
        messageId: ev.messageId,
        ...deps.protection.protectQueueHeaders(ev.mailbox, { fromHeader: ev.from, subject: ev.subject }),
      });
      return { status: 'queued', new: r.created, id: r.id };
    }
    case 'expunge':
      return { status: 'expunged', ...(await markExpunged(db, key)) };
    case 'ignore':
      return { status: 'ignored', reason: `event ${ev.event} is not analysed` };
  }
}
