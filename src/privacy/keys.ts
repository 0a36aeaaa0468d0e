import { eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { config as configTable } from '../db/schema.js';
import type { Logger } from '../logger.js';
import type { Sealer } from './sealer.js';

/** llm_config entry listing the key ids that stored rows may be sealed with. */
const REGISTRY_KEY = 'crypto.keys';

export class KeyMismatchError extends Error {
  constructor(missing: string[], available: string[]) {
    super(
      `stored message content is sealed with key ${missing.join(', ')}, which ` +
        (available.length
          ? `neither ENCRYPTION_KEY nor ENCRYPTION_KEY_PREVIOUS provides (they are ${available.join(', ')}). ` +
            'Set the key the data was sealed with; to change keys, put the old one in ENCRYPTION_KEY_PREVIOUS and run mailsight rotate-key'
          : 'ENCRYPTION_KEY must provide: it is not set'),
    );
    this.name = 'KeyMismatchError';
  }
}

export async function registeredKeyIds(db: Db): Promise<string[]> {
  const [row] = await db.orm.select({ value: configTable.value }).from(configTable).where(eq(configTable.key, REGISTRY_KEY));
  return ((row?.value as { ids?: string[] } | undefined)?.ids ?? []).slice();
}

export async function setRegisteredKeyIds(db: Db, ids: string[]): Promise<void> {
  const value = { ids };
  await db.orm
    .insert(configTable)
    .values({ key: REGISTRY_KEY, value })
    .onConflictDoUpdate({ target: configTable.key, set: { value, updatedAt: sql`now()` } });
}

/**
 * At start-up: every key that stored rows are sealed with must be configured, so a wrong key is a
 * clear error here and never garbage (or a crash) later. Records the current key as in use.
 */
export async function checkKeys(db: Db, sealer: Sealer | null, logger: Logger): Promise<void> {
  const registered = await registeredKeyIds(db);
  const available = sealer?.keyIds ?? [];
  const missing = registered.filter((id) => !available.includes(id));
  if (missing.length > 0) throw new KeyMismatchError(missing, available);
  if (!sealer) {
    logger.warn('ENCRYPTION_KEY is not set: subjects, senders and summaries are stored in plaintext');
    return;
  }
  if (!registered.includes(sealer.currentId)) await setRegisteredKeyIds(db, [...registered, sealer.currentId]);
  logger.info({ keyId: sealer.currentId, readable: available }, 'message content is sealed at rest (AES-256-GCM)');
}
