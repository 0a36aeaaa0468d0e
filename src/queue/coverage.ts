import { sql } from 'drizzle-orm';
import { lit } from '../domain/states.js';
import type { Db } from '../db/client.js';

/** At most this many silent mailboxes are named (the count says how many there are). */
const NAMED_SILENT = 10;

export interface PushCoverage {
  /** Mailboxes with mail queued in the window, by any route. */
  withMail: number;
  /** Of those, the ones Dovecot pushed for. */
  pushed: number;
  /** Mailboxes whose new mail only the sweep found: their pushes do not arrive. */
  silent: number;
  /** The first of them, by name. */
  silentNames: string[];
}

/**
 * Which mailboxes' pushes arrive: in the last `hours`, the mailboxes that got mail (queue rows of any
 * source) against those that were pushed for. A mailbox whose mail only the sweep found pushes
 * nothing: with the OX driver, a user without the METADATA opt-in.
 */
export async function pushCoverage(db: Db, hours = 24): Promise<PushCoverage> {
  const [row] = await db.rows<{ with_mail: number; pushed: number; silent: number; silent_names: string[] | null }>(sql`
    with recent as (
      select mailbox, bool_or(source = ${lit('push')}) as pushed, bool_or(source = ${lit('reconcile')}) as swept
      from llm_processing_queue
      where created_at > now() - make_interval(hours => ${hours})
      group by mailbox
    )
    select count(*)::int as with_mail,
           (count(*) filter (where pushed))::int as pushed,
           (count(*) filter (where swept and not pushed))::int as silent,
           (array_agg(mailbox order by mailbox) filter (where swept and not pushed))[1:${NAMED_SILENT}] as silent_names
    from recent`);
  return { withMail: Number(row?.with_mail ?? 0), pushed: Number(row?.pushed ?? 0), silent: Number(row?.silent ?? 0), silentNames: row?.silent_names ?? [] };
}
