import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { resolvePushCredentials } from '../push/credentials.js';
import { dovecotConfig, mailcowEnv, masterConfig } from './dovecot-snippets.js';
import { out, UsageError } from './common.js';

const DOVECOT_HELP = `usage: mailsight dovecot-config --url <http://host:port> [--driver ox|lua] [--dovecot 2.3|2.4]
                                [--user <name>] [--password <secret>] [--lua-file <path>]
       mailsight dovecot-config --master [--master-users-file <path>] [--dovecot 2.3|2.4]
       mailsight dovecot-config --mailcow [--url http://mailsight:8080] [--dovecot 2.3|2.4]
                                [--master-user <DOVECOT_MASTER_USER>] [--hostname <MAILCOW_HOSTNAME>]

Prints the Dovecot snippet (dovecot/<version>/90-mailsight*.conf) with the push URL and the
credentials filled in, '%' written '%%' as Dovecot's config needs. --url is where Dovecot reaches
mailsight. Credentials default to PUSH_USERNAME / PUSH_PASSWORD, or the password the service
generated in DATA_DIR; with PUSH_AUTH=none there are none.
  --driver ox   (default) one push per delivery into INBOX; needs the per-user METADATA opt-in
  --driver lua  every folder, IMAP APPEND and expunges too, no opt-in; needs dovecot/push.lua
                installed (at /etc/dovecot/mailsight/push.lua, or where --lua-file says)
  --master      the master user's passdb (dovecot/<version>/91-mailsight-master.conf), reading
                --master-users-file (default /etc/dovecot/master-users)
  --mailcow     the block for Mailcow's data/conf/dovecot/extra.conf (it keeps Mailcow's plugin
                lists), then mailsight's .env lines for Mailcow (host, TLS, master user); the two
                parts start with '# ==> extra.conf' and '# ==> .env'`;

/** The lines that start the two parts of `--mailcow`'s output, so a script can split them. */
export const MAILCOW_EXTRA_MARK = '# ==> extra.conf';
export const MAILCOW_ENV_MARK = '# ==> .env';

/**
 * --url as an operator writes it: `host:port` means http://host:port, and `http://user:pass@host:port`
 * carries the push credentials (used, not dropped). Anything but http(s) is refused.
 */
export function pushTarget(raw: string): { url: string; credentials: { username: string; password: string } | null } {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(`--url ${raw} is not host:port or http(s)://host:port`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--url must be http(s)://host:port, not ${raw}`);
  if (url.username && !url.password) throw new UsageError(`--url names the user ${decodeURIComponent(url.username)} but no password: write user:password@, or use --user and --password`);
  const credentials = url.username ? { username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) } : null;
  return { url: url.origin, credentials };
}

export function dovecotConfigCommand(args: string[]): number {
  const { values } = parseArgs({
    args,
    options: {
      url: { type: 'string' },
      driver: { type: 'string', default: 'ox' },
      dovecot: { type: 'string', default: '2.3' },
      user: { type: 'string' },
      password: { type: 'string' },
      mailcow: { type: 'boolean' },
      'master-user': { type: 'string', default: 'mailsight' },
      hostname: { type: 'string' },
      'lua-file': { type: 'string' },
      master: { type: 'boolean' },
      'master-users-file': { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    out(DOVECOT_HELP);
    return 0;
  }
  if (values.dovecot !== '2.3' && values.dovecot !== '2.4') throw new UsageError('--dovecot must be 2.3 or 2.4');
  if (values.master) {
    out(masterConfig(values.dovecot, values['master-users-file']).trimEnd());
    return 0;
  }
  // On Mailcow's network Dovecot reaches mailsight by its service name.
  if (values.mailcow) values.url ??= 'http://mailsight:8080';
  if (!values.url) throw new UsageError('dovecot-config needs --url <http://host:port> (where Dovecot reaches mailsight)');
  if (values.mailcow && values.driver !== 'ox') throw new UsageError('--mailcow prints the OX driver block; for the Lua driver see dovecot/mailcow.md');
  if (values.driver !== 'ox' && values.driver !== 'lua') throw new UsageError('--driver must be ox or lua');
  const target = pushTarget(values.url);
  values.url = target.url;
  if (target.credentials && (values.password !== undefined || values.user !== undefined)) {
    throw new UsageError('credentials are in --url and in --user/--password: give them once');
  }
  let credentials: { username: string; password: string } | null;
  if (target.credentials) credentials = target.credentials;
  else if (values.password !== undefined) credentials = { username: values.user ?? 'dovecot', password: values.password };
  else {
    const config = loadConfig();
    credentials = resolvePushCredentials(config);
    if (credentials && values.user) credentials = { ...credentials, username: values.user };
  }
  try {
    const block = dovecotConfig({ url: values.url, driver: values.driver, version: values.dovecot, credentials, mailcow: values.mailcow, luaFile: values['lua-file'] }).trimEnd();
    if (!values.mailcow) out(block);
    else {
      out(`${MAILCOW_EXTRA_MARK} (append to data/conf/dovecot/extra.conf in the Mailcow directory; then: docker compose restart dovecot-mailcow)`);
      out(block);
      out(`${MAILCOW_ENV_MARK} (mailsight's environment)`);
      out(mailcowEnv({ masterUser: values['master-user'], hostname: values.hostname ?? process.env.MAILCOW_HOSTNAME }));
    }
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return 0;
}
