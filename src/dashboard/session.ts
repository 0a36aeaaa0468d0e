import { createHash, randomBytes } from 'node:crypto';
import { eq, lt, sql } from 'drizzle-orm';
import type { Principal } from '../queries/keys.js';
import type { Db } from '../db/client.js';
import { dashboardSessions } from '../db/schema.js';

/**
 * Dashboard sessions. Signing in with an API key (or a mailbox owner's mail password) gives a random token in an HttpOnly cookie; the
 * table keeps only its SHA-256. Every request looks the session up again: a revoked or deleted
 * mailbox key, or a changed API_KEY, ends the sessions opened with it on their next request.
 * Each session has its own CSRF token, which every form carries.
 */

export const SESSION_HOURS = 12;

export interface Session {
  principal: Principal;
  csrf: string;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
export const newToken = () => randomBytes(32).toString('base64url');
/** Not the key: a hash that tells whether the admin key is still the one a session was opened with. */
const fingerprint = (adminKey: string) => sha256(`mailsight admin session\0${adminKey}`).slice(0, 32);

/** Session kinds: the admin key, a mailbox key, or a mailbox owner's mail password (checked over IMAP). */
type SessionKind = 'admin' | 'mailbox' | 'password';
const kindOf = (p: Principal): SessionKind => (p.kind === 'admin' ? 'admin' : p.keyId ? 'mailbox' : 'password');

/** A new session for `principal`; returns the token for its cookie. */
export async function openSession(db: Db, principal: Principal, adminKey: string | undefined): Promise<string> {
  const token = newToken();
  const expiresAt = new Date(Date.now() + SESSION_HOURS * 3_600_000);
  // Expired sessions go when someone signs in: no timer, and the table stays small.
  await db.orm.delete(dashboardSessions).where(lt(dashboardSessions.expiresAt, sql`now()`));
  await db.orm.insert(dashboardSessions).values({
    id: sha256(token),
    kind: kindOf(principal),
    mailbox: principal.kind === 'mailbox' ? principal.mailbox : null,
    keyId: principal.kind === 'mailbox' ? principal.keyId : null,
    adminFingerprint: principal.kind === 'admin' && adminKey ? fingerprint(adminKey) : null,
    csrf: newToken(),
    expiresAt,
  });
  return token;
}

/** The live session a cookie names, or null (unknown, expired, its key revoked or the admin key changed). */
export async function findSession(db: Db, token: string, adminKey: string | undefined): Promise<Session | null> {
  const [row] = await db.rows<{
    kind: string;
    mailbox: string | null;
    key_id: string | null;
    admin_fingerprint: string | null;
    csrf: string;
    key_live: boolean | null;
  }>(sql`
    select s.kind, s.mailbox, s.key_id, s.admin_fingerprint, s.csrf,
           (k.id is not null and k.revoked_at is null) as key_live
      from llm_dashboard_sessions s left join llm_api_keys k on k.id = s.key_id
     where s.id = ${sha256(token)} and s.expires_at > now()`);
  if (!row) return null;
  if (row.kind === 'admin') {
    if (!adminKey || row.admin_fingerprint !== fingerprint(adminKey)) return null;
    return { principal: { kind: 'admin' }, csrf: row.csrf };
  }
  // Signed in with the mail password: nothing to revoke but the session itself (sign out, or expiry).
  if (row.kind === 'password') return row.mailbox ? { principal: { kind: 'mailbox', mailbox: row.mailbox, keyId: null }, csrf: row.csrf } : null;
  if (!row.key_live || !row.mailbox || !row.key_id) return null;
  return { principal: { kind: 'mailbox', mailbox: row.mailbox, keyId: row.key_id }, csrf: row.csrf };
}

export async function closeSession(db: Db, token: string): Promise<void> {
  await db.orm.delete(dashboardSessions).where(eq(dashboardSessions.id, sha256(token)));
}
