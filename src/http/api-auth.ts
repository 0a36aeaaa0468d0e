import type { Context, MiddlewareHandler } from 'hono';
import { authenticate, principalName, type Principal } from '../queries/keys.js';
import type { Db } from '../db/client.js';
import { clientAddress, type AuthFailureLimiter } from './auth-failures.js';
import { AppError } from './errors.js';

export const API_KEY_HEADER = 'X-API-Key';

/** The variables /api/v1 handlers read: who the key belongs to, and hono/request-id's id. */
export type ApiEnv = { Variables: { principal: Principal; requestId: string } };
type ApiContext = Context<ApiEnv>;

/** `X-API-Key`: the admin key (`API_KEY`) or a mailbox key. No key or an unknown one: 401. */
export function apiKeyAuth(db: Db, adminKey: string | undefined, failures?: AuthFailureLimiter): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const address = clientAddress(c);
    failures?.check(address);
    const presented = c.req.header(API_KEY_HEADER);
    if (!presented) throw new AppError('UNAUTHORIZED', `send an API key in the ${API_KEY_HEADER} header`);
    const principal = await authenticate(db, adminKey, presented);
    if (!principal) {
      failures?.failed(address, 'unknown or revoked API key', c.req.path);
      throw new AppError('UNAUTHORIZED', 'unknown or revoked API key');
    }
    c.set('principal', principal);
    await next();
  };
}

/**
 * The admin sees every mailbox; a mailbox key only its own. Both names are canonical (requests are
 * canonicalised when parsed, keys when made), so the comparison is exact: no Unicode case folding.
 */
export const mayAccess = (p: Principal, mailbox: string) => p.kind === 'admin' || p.mailbox === mailbox;

/** A mailbox key reads and writes only its own mailbox. */
export function assertMailboxAccess(c: ApiContext, mailbox: string): void {
  const p = c.get('principal');
  if (!mayAccess(p, mailbox)) {
    throw new AppError('FORBIDDEN', 'this API key is for another mailbox');
  }
}

/** The mailbox a request is about: the one named, or a mailbox key's own when none is named (null: all, admin only). */
export function scopeMailbox(c: ApiContext, named: string | undefined): string | null {
  const p = c.get('principal');
  if (named !== undefined) {
    assertMailboxAccess(c, named);
    return named;
  }
  return p.kind === 'mailbox' ? p.mailbox : null;
}

export function assertAdmin(c: ApiContext): void {
  if (c.get('principal').kind !== 'admin') throw new AppError('FORBIDDEN', 'this needs the admin key (API_KEY)');
}

/** Who did it, for the audit trail: "admin" or "key:<id>". */
export function actor(c: ApiContext): string {
  return principalName(c.get('principal'));
}
