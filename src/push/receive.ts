import type { Db } from '../db/client.js';
import type { ContentProtection } from '../privacy/protection.js';
import { enqueue, markExpunged } from '../queue/jobs.js';
import type { PushEvent } from './payload.js';

export type PushOutcome =
  | { status: 'queued'; new: boolean; id: number | null }
  | { status: 'expunged'; dequeued: boolean; analysisRemoved: boolean }
  | { status: 'ignored'; reason: string };

/** Everything the push endpoint does after validation: one statement against the queue. */
export async function receivePush(db: Db, ev: PushEvent, protection: ContentProtection): Promise<PushOutcome> {
  const key = { mailbox: ev.mailbox, folder: ev.folder, uidvalidity: ev.uidvalidity, uid: ev.uid };
  switch (ev.action) {
    case 'enqueue': {
      const r = await enqueue(db, {
        ...key,
        source: 'push',
        event: ev.event,
        messageId: ev.messageId,
        ...protection.protectQueueHeaders(ev.mailbox, { fromHeader: ev.from, subject: ev.subject }),
      });
      return { status: 'queued', new: r.created, id: r.id };
    }
    case 'expunge':
      return { status: 'expunged', ...(await markExpunged(db, key)) };
    case 'ignore':
      return { status: 'ignored', reason: `event ${ev.event} is not analysed` };
  }
}
