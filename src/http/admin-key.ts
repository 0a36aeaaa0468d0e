import { join } from 'node:path';
import type { Config } from '../config.js';
import { createSecret, readSecret } from '../util/local-secret.js';

/**
 * The admin key: API_KEY when set; otherwise the one the first start generated in DATA_DIR, the way
 * the push password is made, so that `npm ci && npm start` ends with a dashboard one can sign in to.
 */
export interface AdminKey {
  key: string;
  /** Where a generated key lives; undefined when it came from the configuration. */
  file?: string;
  /** Made by this start (shown once on the terminal). */
  generated: boolean;
}

export const adminKeyFile = (config: Config) => join(config.dataDir, 'admin-key');

/** The admin key as it stands, without making one (for the CLI); undefined: none yet. */
export function currentAdminKey(config: Config): AdminKey | undefined {
  if (config.apiKey) return { key: config.apiKey, generated: false };
  const file = adminKeyFile(config);
  const key = readSecret(file);
  return key ? { key, file, generated: false } : undefined;
}

/** API_KEY, or the generated key in DATA_DIR, or a new one. */
export function resolveAdminKey(config: Config): AdminKey {
  const current = currentAdminKey(config);
  if (current) return current;
  const file = adminKeyFile(config);
  return { key: createSecret(file, 32), file, generated: true };
}
