import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { safeEqual } from '../http/basic-auth.js';
import { and, desc, eq, isNull, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { apiKeys } from '../db/schema.js';

/**
 * API keys. `API_KEY` is the admin key; mailbox keys (`msk_<id>_<secret>`) are created from the CLI,
 * shown once, and stored as a SHA-256 of the whole key. The id in the key makes the lookup a primary
 * key read; the hash comparison is constant-time, so neither a timing nor a missing row tells anything.
 */

/**
 * Who is asking: the admin, or a mailbox's owner, through one of its keys (`keyId`) or, on the
 * dashboard only, signed in with the mail password (`keyId` null).
 */
export type Principal = { kind: 'admin' } | { kind: 'mailbox'; mailbox: string; keyId: string | null };

/** The principal's name in logs, the audit trail and rate limits: "admin", "key:<id>" or "password:<mailbox>". */
export const principalName = (p: Principal) => (p.kind === 'admin' ? 'admin' : p.keyId ? `key:${p.keyId}` : `password:${p.mailbox}`);

const KEY_PREFIX = 'msk';
const KEY_PATTERN = /^msk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;
/** last_used_at is written at most this often per key: a busy script must not turn reads into writes. */
const LAST_USED_RESOLUTION_SEC = 60;

const sha256 = (text: string) => createHash('sha256').update(text).digest();

export interface CreatedKey {
  id: string;
  mailbox: string;
  name: string | null;
  /** The key itself: shown once, never stored. */
  key: string;
}

export async function createApiKey(db: Db, mailbox: string, name?: string): Promise<CreatedKey> {
  const id = randomBytes(6).toString('hex');
  const key = `${KEY_PREFIX}_${id}_${randomBytes(32).toString('base64url')}`;
  await db.orm.insert(apiKeys).values({ id, mailbox, name: name ?? null, hash: sha256(key).toString('hex') });
  return { id, mailbox, name: name ?? null, key };
}

export async function listApiKeys(db: Db, mailbox?: string) {
  return db.orm
    .select({
      id: apiKeys.id,
      mailbox: apiKeys.mailbox,
      name: apiKeys.name,
      createdAt: apiKeys.createdAt,
      lastUsedAt: apiKeys.lastUsedAt,
      revokedAt: apiKeys.revokedAt,
    })
    .from(apiKeys)
    .where(mailbox ? eq(apiKeys.mailbox, mailbox) : undefined)
    .orderBy(apiKeys.mailbox, desc(apiKeys.createdAt));
}

/** The id of a key given by its id or as the whole key. */
export const keyIdOf = (idOrKey: string) => KEY_PATTERN.exec(idOrKey)?.[1] ?? idOrKey;

/** A key as the API and the dashboard list it: never the key, only its metadata. */
export function keyJson(k: Awaited<ReturnType<typeof listApiKeys>>[number]) {
  const iso = (d: Date | null) => d?.toISOString() ?? null;
  return { id: k.id, mailbox: k.mailbox, name: k.name, created_at: k.createdAt.toISOString(), last_used_at: iso(k.lastUsedAt), revoked_at: iso(k.revokedAt) };
}

/**
 * Revokes a key by id (or by the whole key); false when there is no such active key. With
 * `mailbox`, only a key of that mailbox: a mailbox owner cannot revoke another mailbox's keys.
 */
export async function revokeApiKey(db: Db, idOrKey: string, mailbox?: string): Promise<boolean> {
  const id = keyIdOf(idOrKey);
  const rows = await db.orm
    .update(apiKeys)
    .set({ revokedAt: sql`now()` })
    .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt), mailbox === undefined ? undefined : eq(apiKeys.mailbox, mailbox)))
    .returning({ id: apiKeys.id });
  return rows.length > 0;
}

/** Who a presented key belongs to, or null. Revocation takes effect on the next request: nothing is cached. */
export async function authenticate(db: Db, adminKey: string | undefined, presented: string): Promise<Principal | null> {
  const match = KEY_PATTERN.exec(presented);
  if (!match) return adminKey !== undefined && safeEqual(presented, adminKey) ? { kind: 'admin' } : null;
  const [row] = await db.orm.select().from(apiKeys).where(eq(apiKeys.id, match[1]!));
  if (!row || row.revokedAt) return null;
  if (!timingSafeEqual(sha256(presented), Buffer.from(row.hash, 'hex'))) return null;
  if (!row.lastUsedAt || Date.now() - row.lastUsedAt.getTime() > LAST_USED_RESOLUTION_SEC * 1000) {
    await db.orm.update(apiKeys).set({ lastUsedAt: sql`now()` }).where(eq(apiKeys.id, row.id));
  }
  return { kind: 'mailbox', mailbox: row.mailbox, keyId: row.id };
}
