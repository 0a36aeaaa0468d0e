import { join } from 'node:path';
import type { Config } from '../config.js';
import { createSecret, readSecret } from '../util/local-secret.js';

export const PUSH_PATH = '/push/dovecot';

export interface PushCredentials {
  username: string;
  password: string;
  /** Where a generated password lives; undefined when it came from the configuration. */
  file?: string;
  generated: boolean;
}

const passwordFile = (config: Config) => join(config.dataDir, 'push-password');

/** The push credentials as they stand, without generating any (for diagnostics); undefined: none yet. */
export function currentPushCredentials(config: Config): PushCredentials | null | undefined {
  if (config.push.auth === 'none') return null;
  if (config.push.password) return { username: config.push.username, password: config.push.password, generated: false };
  const file = passwordFile(config);
  const password = readSecret(file);
  return password ? { username: config.push.username, password, file, generated: false } : undefined;
}

/**
 * PUSH_PASSWORD if set; otherwise the one a previous start generated in DATA_DIR, or a new one.
 * null only when PUSH_AUTH=none says so explicitly: the endpoint is never open by accident.
 */
export function resolvePushCredentials(config: Config): PushCredentials | null {
  const current = currentPushCredentials(config);
  if (current !== undefined) return current;
  const file = passwordFile(config);
  return { username: config.push.username, password: createSecret(file), file, generated: true };
}

/** Dovecot's config expands `%`: a literal percent sign is written `%%`. */
export function escapeForDovecot(value: string): string {
  return value.replaceAll('%', '%%');
}

/** The push URL with credentials, as Dovecot's driver setting wants it. */
export function pushUrl(baseUrl: string, creds: { username: string; password: string } | null): string {
  const url = new URL(PUSH_PATH, baseUrl);
  if (creds) {
    url.username = encodeURIComponent(creds.username);
    url.password = encodeURIComponent(creds.password);
  }
  return escapeForDovecot(url.toString());
}

/** The line to paste into Dovecot 2.3's `plugin { }` block. */
export function oxDriverLine(baseUrl: string, creds: { username: string; password: string } | null): string {
  return `push_notification_driver = ox:url=${pushUrl(baseUrl, creds)}`;
}

/** Where Dovecot on the same machine reaches this listener. */
export function localBaseUrl(config: Config): string {
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.port}`;
}
