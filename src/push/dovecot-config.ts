import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { escapeForDovecot, PUSH_PATH, pushUrl } from './credentials.js';

/** The snippets in dovecot/ with the push URL and credentials filled in: `mailsight dovecot-config`. */

export type DovecotVersion = '2.3' | '2.4';
export type Driver = 'ox' | 'lua';

const ROOT = new URL('../..', import.meta.url).pathname;

export interface DovecotConfigOptions {
  /** Where Dovecot reaches mailsight: `http://host:port` (a path, if any, is replaced by /push/dovecot). */
  url: string;
  driver: Driver;
  version: DovecotVersion;
  credentials: { username: string; password: string } | null;
}

export function dovecotConfig(o: DovecotConfigOptions): string {
  const base = new URL(o.url);
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new Error(`--url must be http(s)://host:port, not ${o.url}`);
  const file = join(ROOT, 'dovecot', o.version, o.driver === 'ox' ? '90-mailsight.conf' : '90-mailsight-lua.conf');
  let text = readFileSync(file, 'utf8');
  const replace = (pattern: RegExp, value: string) => {
    if (!pattern.test(text)) throw new Error(`${file}: no line matches ${pattern}`);
    text = text.replace(pattern, (_m, prefix: string) => `${prefix}${value}`);
  };
  if (o.driver === 'ox') {
    const url = pushUrl(base.origin, o.credentials);
    if (o.version === '2.3') replace(/^(\s*push_notification_driver = ox:url=).*$/m, url);
    else replace(/^(\s*ox_url = ).*$/m, url);
  } else {
    replace(/^(\s*mailsight_push_url = ).*$/m, escapeForDovecot(new URL(PUSH_PATH, base.origin).toString()));
    replace(/^(\s*mailsight_push_user = ).*$/m, escapeForDovecot(o.credentials?.username ?? ''));
    replace(/^(\s*mailsight_push_password = ).*$/m, escapeForDovecot(o.credentials?.password ?? ''));
  }
  return text;
}
