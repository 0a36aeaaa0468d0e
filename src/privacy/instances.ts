import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import type { Logger } from '../logger.js';
import { registeredKeyIds, setRegisteredKeyIds } from './keys.js';

/**
 * Every running instance says, every HEARTBEAT_MS, which key it seals new content with (a row
 * `instance:<worker id>` in llm_config). `rotate-key` reads them: it does not call a rotation done
 * while a live instance still seals with another key, because that instance would go on writing
 * rows that only the old key opens. The heartbeat also puts the instance's key back into the list
 * of keys in use if a rotation removed it, so a later start without that key refuses, naming it.
 */

export const HEARTBEAT_MS = 30_000;
/** An instance whose heartbeat is older than this is taken for gone. */
export const LIVE_WITHIN_MS = 3 * HEARTBEAT_MS;
const PREFIX = 'instance:';

export interface InstanceBeat {
  id: string;
  keyId: string | null;
  at: Date;
}

export async function heartbeat(db: Db, id: string, keyId: string | null, logger?: Logger): Promise<void> {
  await db.rows(sql`
    insert into llm_config (key, value, updated_at) values (${PREFIX + id}, ${JSON.stringify({ keyId })}::jsonb, now())
    on conflict (key) do update set value = excluded.value, updated_at = now()`);
  if (keyId === null) return;
  const registered = await registeredKeyIds(db);
  if (!registered.includes(keyId)) {
    await setRegisteredKeyIds(db, [...registered, keyId]);
    logger?.warn({ keyId }, 'this instance seals with a key a rotation had dropped from the keys in use; it is listed again: restart this instance with the new ENCRYPTION_KEY and run rotate-key again');
  }
}

export async function liveInstances(db: Db): Promise<InstanceBeat[]> {
  const rows = await db.rows<{ key: string; key_id: string | null; at: Date | string }>(sql`
    select key, value->>'keyId' as key_id, updated_at as at from llm_config
    where starts_with(key, ${PREFIX}) and updated_at > now() - ${LIVE_WITHIN_MS} * interval '1 millisecond'`);
  return rows.map((r) => ({ id: r.key.slice(PREFIX.length), keyId: r.key_id, at: new Date(r.at) }));
}

/** On a clean stop; a crashed instance's row ages out. */
export async function removeInstance(db: Db, id: string): Promise<void> {
  await db.rows(sql`delete from llm_config where key = ${PREFIX + id}`);
}
