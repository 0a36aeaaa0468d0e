import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { clientAddress, type AuthFailureLimiter } from './auth-failures.js';
import { AppError, errorResponse } from './errors.js';

/** Equal-length digests make the comparison constant-time whatever the inputs' lengths. */
export function safeEqual(a: string, b: string): boolean {
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db);
}

export function parseBasic(header: string | undefined): { user: string; pass: string } | null {
  if (!header) return null;
  const m = /^Basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(header);
  if (!m) return null;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  return { user: decoded.slice(0, colon), pass: decoded.slice(colon + 1) };
}

/** HTTP Basic auth; `credentials` null means auth is off (PUSH_AUTH=none). */
export function basicAuth(credentials: { username: string; password: string } | null, failures?: AuthFailureLimiter): MiddlewareHandler {
  return async (c, next) => {
    if (credentials) {
      const address = clientAddress(c);
      failures?.check(address);
      const given = parseBasic(c.req.header('authorization'));
      // Both comparisons always run, so timing does not reveal which part was wrong.
      const userOk = safeEqual(given?.user ?? '', credentials.username);
      const passOk = safeEqual(given?.pass ?? '', credentials.password);
      if (!given || !userOk || !passOk) {
        const err = new AppError('UNAUTHORIZED', given ? 'wrong push credentials' : 'push credentials required (HTTP Basic)');
        failures?.failed(address, err.message, c.req.path);
        return errorResponse(c, err, { 'WWW-Authenticate': 'Basic realm="mailsight push"' });
      }
    }
    await next();
  };
}
