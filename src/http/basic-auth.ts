import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { clientAddress, type AuthFailureLimiter } from './auth-failures.js';
import { AppError, errorResponse } from './errors.js';
import { requestHeader } from './incoming.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** Equal-length digests make the comparison constant-time whatever the inputs' lengths. */
export function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

const BASIC = /^Basic\s+([A-Za-z0-9+/=_-]+)\s*$/i;

/** The `user:pass` a Basic Authorization header carries; null when there is none. */
function basicCredentials(header: string | undefined): string | null {
  const m = header ? BASIC.exec(header) : null;
  if (!m) return null;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  return decoded.includes(':') ? decoded : null;
}

export interface BasicAuthOptions {
  /** Addresses that are never locked out (PUSH_ALLOW_FROM): their failures are logged and counted only. */
  trusted?: (address: string) => boolean;
  /** Called for every failure, with whether the address was trusted (for /metrics). */
  onFailure?: (trusted: boolean) => void;
  logger?: { warn: (o: object, msg: string) => void };
}

/**
 * HTTP Basic auth; `credentials` null means auth is off (PUSH_AUTH=none). Failures from an address
 * count towards its lockout, except from a trusted one: a lockout of Dovecot's own address would
 * stop every push, whoever caused the failures (any local process, anyone behind the same NAT).
 */
export function basicAuth(credentials: { username: string; password: string } | null, failures?: AuthFailureLimiter, opts: BasicAuthOptions = {}): MiddlewareHandler {
  // Compared as one digest of `user:pass` (RFC 7617 forbids ':' in the user): equal-length digests
  // make the comparison constant-time, and the expected one is hashed once, not per push.
  const expected = credentials ? sha256(`${credentials.username}:${credentials.password}`) : null;
  return async (c, next) => {
    if (expected) {
      const address = clientAddress(c);
      const trusted = opts.trusted?.(address) ?? false;
      if (!trusted) failures?.check(address);
      const given = basicCredentials(requestHeader(c, 'authorization'));
      if (given === null || !timingSafeEqual(sha256(given), expected)) {
        const err = new AppError('UNAUTHORIZED', given !== null ? 'wrong push credentials' : 'push credentials required (HTTP Basic)');
        opts.onFailure?.(trusted);
        if (trusted) opts.logger?.warn({ address, path: c.req.path, reason: err.message }, 'push auth failed from an allowed address (never locked out)');
        else failures?.failed(address, err.message, c.req.path);
        return errorResponse(c, err, { 'WWW-Authenticate': 'Basic realm="mailsight push"' });
      }
    }
    await next();
  };
}
