import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * A secret the service makes for itself on first start and keeps in DATA_DIR (the push password,
 * the admin key): readable by its owner only, read back on every later start.
 */

/** The secret in `file`, or undefined when there is none yet. */
export function readSecret(file: string): string | undefined {
  const value = existsSync(file) ? readFileSync(file, 'utf8').trim() : '';
  return value || undefined;
}

/**
 * A new random secret written to `file` (mode 0600). base64url: safe in a URL's userinfo, in a
 * header and in Dovecot's config (no `%`). `wx`: two processes starting at once cannot both win.
 */
export function createSecret(file: string, bytes = 24): string {
  const value = randomBytes(bytes).toString('base64url');
  mkdirSync(dirname(file), { recursive: true });
  try {
    writeFileSync(file, `${value}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    const existing = (err as NodeJS.ErrnoException).code === 'EEXIST' ? readSecret(file) : undefined;
    if (existing) return existing;
    throw err;
  }
  return value;
}
