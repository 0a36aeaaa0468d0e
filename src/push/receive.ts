import { keyOf } from '../domain/message-key.js';
import { feedbackContext, keywordFeedback, moveFeedback, type Feedback } from '../analysis/feedback.js';
import type { Db } from '../db/client.js';
import { followMessage } from '../analysis/store.js';
import type { FolderFilter } from '../mail/folders.js';
import type { ContentProtection } from '../privacy/protection.js';
import { enqueue, markExpunged } from '../queue/jobs.js';
import type { PushEvent } from './payload.js';

export type PushOutcome =
  | { status: 'queued'; new: boolean; id: number | null }
  | { status: 'feedback'; feedback: Feedback }
  | { status: 'followed'; from: { folder: string; uid: number }; feedback?: Feedback }
  | { status: 'expunged'; dequeued: boolean; analysisRemoved: boolean }
  | { status: 'ignored'; reason: string };

export interface ReceiveDeps {
  protection: ContentProtection;
  folders: FolderFilter;
  /** ACTIONS junk_folder: a user's move into it says junk, out of it says legit. */
  junkFolder: string;
  /** CAMPAIGN_WINDOW_HOURS when campaign clean-up is on (users' junk can mark a campaign). */
  campaignWindowHours?: number;
  onQueued?: () => void;
}

/**
 * Everything the push endpoint does after validation. New mail in an analysed folder is one
 * statement against the queue. Mail that appeared by IMAP (MessageAppend) first looks for its
 * analysis by Message-ID: mailsight's own move is not news, and a message the user moved or copied
 * keeps the analysis it has (in any folder, excluded ones too: no LLM call either way); a move into
 * or out of Junk is also the user's word on it. Junk keywords set or cleared (FlagsSet, FlagsClear)
 * are too.
 */
export async function receivePush(db: Db, ev: PushEvent, deps: ReceiveDeps): Promise<PushOutcome> {
  const key = keyOf(ev);
  switch (ev.action) {
    case 'enqueue': {
      if (ev.event.toLowerCase() === 'messageappend' && ev.messageId) {
        const followed = await followMessage(db, key, ev.messageId);
        if (followed.kind === 'own-move') return { status: 'ignored', reason: `mailsight moved this message here from ${followed.from.folder} (UID ${followed.from.uid})` };
        if (followed.kind === 'followed') {
          const feedback = await moveFeedback(db, key, { ...feedbackContext(deps), messageId: ev.messageId }, followed, deps.junkFolder);
          return { status: 'followed', from: followed.from, ...(feedback ? { feedback } : {}) };
        }
      }
      const folder = deps.folders.decide(ev.folder);
      if (!folder.analyse) return { status: 'ignored', reason: folder.reason };
      const headers = deps.protection.protectQueueHeaders(ev.mailbox, { fromHeader: ev.from, subject: ev.subject });
      // NO_SPREAD_ON_PUSH_PATH: the job is written out field by field. Node 20's V8 (11.3) kept an
      // object made by a spread followed by more fields (`{ ...key, source: 'push' }`), and with it
      // the push's other objects, alive through young collections: at 1,000 pushes/s 0.6 MB reached
      // the old generation per young collection, 40 KB without (--trace-gc-nvp, postgres.js patched),
      // and the push's slowest answers were the collections that followed. A 20-line loop outside
      // mailsight does the same; Object.assign, or a spread with no fields after it, does not.
      const r = await enqueue(db, {
        mailbox: key.mailbox,
        folder: key.folder,
        uidvalidity: key.uidvalidity,
        uid: key.uid,
        source: 'push',
        event: ev.event,
        messageId: ev.messageId,
        fromHeader: headers.fromHeader,
        subject: headers.subject,
        sealedHeaders: headers.sealedHeaders,
        keyId: headers.keyId,
      });
      return { status: 'queued', new: r.created, id: r.id };
    }
    case 'expunge':
      return { status: 'expunged', ...(await markExpunged(db, key)) };
    case 'flags': {
      const feedback = await keywordFeedback(db, key, ev.event.toLowerCase() === 'flagsset' ? 'set' : 'clear', ev.keywords ?? [], feedbackContext(deps));
      return feedback ? { status: 'feedback', feedback } : { status: 'ignored', reason: 'no junk keyword set or cleared by the user' };
    }
    case 'ignore':
      return { status: 'ignored', reason: `event ${ev.event} is not analysed` };
  }
}
