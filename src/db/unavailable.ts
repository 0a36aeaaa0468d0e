/**
 * Whether a database error means the database cannot be reached or is not serving (down, restarting,
 * out of connections), as opposed to a query that is wrong. drizzle wraps the driver's error as its
 * `cause`; postgres.js and PGlite put the reason in `code`: a socket error, postgres.js's connection
 * codes, or a SQLSTATE of class 08 (connection exception), 57P (operator intervention: shutdown,
 * crash recovery, cannot connect now) or 53300 (too many connections).
 */
const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
const DRIVER = new Set(['CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT']);

export function isDatabaseUnavailable(err: unknown): boolean {
  return inErrorChain(err, (e) => {
    const code = typeof e.code === 'string' ? e.code : '';
    if (NETWORK.has(code) || DRIVER.has(code) || /^08/.test(code) || /^57P0[1-3]$/.test(code) || code === '53300') return true;
    return typeof e.message === 'string' && /PGlite is closed/i.test(e.message);
  });
}

/** Whether the error, or one it wraps (a few `cause`s deep), carries this SQLSTATE. */
export function hasSqlState(err: unknown, state: string): boolean {
  return inErrorChain(err, (e) => e.code === state);
}

function inErrorChain(err: unknown, test: (e: { code?: unknown; message?: unknown }) => boolean): boolean {
  for (let e = err as { code?: unknown; cause?: unknown; message?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (test(e)) return true;
  }
  return false;
}
