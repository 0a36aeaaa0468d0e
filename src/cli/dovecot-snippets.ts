import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { escapeForDovecot, PUSH_PATH, pushUrl } from '../push/credentials.js';

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
  /** Mailcow's `extra.conf` block (dovecot/<version>/mailcow-extra.conf), OX driver. */
  mailcow?: boolean;
  /** Lua driver: where push.lua is installed (default, as the snippet says: /etc/dovecot/mailsight/push.lua). */
  luaFile?: string;
}

/** Reads a shipped snippet and replaces the value after each pattern's prefix; a pattern that matches nothing is an error. */
function fillSnippet(version: DovecotVersion, name: string, values: [RegExp, string][]): string {
  const file = join(ROOT, 'dovecot', version, name);
  let text = readFileSync(file, 'utf8');
  for (const [pattern, value] of values) {
    if (!pattern.test(text)) throw new Error(`${file}: no line matches ${pattern}`);
    text = text.replace(pattern, (_m, prefix: string) => `${prefix}${value}`);
  }
  return text;
}

export function dovecotConfig(o: DovecotConfigOptions): string {
  const base = new URL(o.url);
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new Error(`--url must be http(s)://host:port, not ${o.url}`);
  const name = o.mailcow ? 'mailcow-extra.conf' : o.driver === 'ox' ? '90-mailsight.conf' : '90-mailsight-lua.conf';
  if (o.driver === 'ox') {
    const url = pushUrl(base.origin, o.credentials);
    return fillSnippet(o.version, name, [[o.version === '2.3' ? /^(\s*push_notification_driver = ox:url=).*$/m : /^(\s*ox_url = ).*$/m, url]]);
  }
  return fillSnippet(o.version, name, [
    [/^(\s*mailsight_push_url = ).*$/m, escapeForDovecot(new URL(PUSH_PATH, base.origin).toString())],
    [/^(\s*mailsight_push_user = ).*$/m, escapeForDovecot(o.credentials?.username ?? '')],
    [/^(\s*mailsight_push_password = ).*$/m, escapeForDovecot(o.credentials?.password ?? '')],
    ...(o.luaFile ? [[o.version === '2.3' ? /^(\s*push_notification_driver = lua:file=).*$/m : /^(\s*lua_file = ).*$/m, o.luaFile] as [RegExp, string]] : []),
  ]);
}

/** The master user's passdb (dovecot/<version>/91-mailsight-master.conf), reading its users from `file`. */
export function masterConfig(version: DovecotVersion, file = '/etc/dovecot/master-users'): string {
  return fillSnippet(version, '91-mailsight-master.conf', [[version === '2.3' ? /^(\s*args = ).*$/m : /^(\s*passwd_file_path = ).*$/m, file]]);
}

export interface MailcowEnvOptions {
  /** DOVECOT_MASTER_USER from mailcow.conf: Mailcow's master login is `<it>@mailcow.local`. */
  masterUser: string;
  /** MAILCOW_HOSTNAME: the name Dovecot's certificate is for. */
  hostname?: string;
}

/** The mailsight `.env` lines for Mailcow: its Dovecot on the Docker network, over STARTTLS, as Mailcow's master user. */
export function mailcowEnv(o: MailcowEnvOptions): string {
  return [
    'IMAP_HOST=dovecot',
    'IMAP_PORT=143',
    "# Mailcow refuses logins without TLS; its certificate is for MAILCOW_HOSTNAME, not for 'dovecot'.",
    'IMAP_STARTTLS=required',
    ...(o.hostname ? [] : ['# Your MAILCOW_HOSTNAME (the name on its certificate); --hostname fills it in.']),
    `IMAP_TLS_SERVERNAME=${o.hostname ?? ''}`,
    "# Only while Mailcow still serves its self-signed certificate (before ACME): Mailcow's data/assets/ssl/cert.pem, mounted.",
    '# IMAP_TLS_CA_FILE=/run/mailcow-ssl/cert.pem',
    `IMAP_MASTER_USER=${o.masterUser.includes('@') ? o.masterUser : `${o.masterUser}@mailcow.local`}`,
    '# DOVECOT_MASTER_PASS from mailcow.conf (left empty, mailsight refuses to start and says so).',
    'IMAP_MASTER_PASSWORD=',
    'IMAP_MASTER_SEPARATOR=*',
  ].join('\n');
}
