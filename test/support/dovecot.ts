import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { ImapFlow } from 'imapflow';
import { escapeForDovecot, oxDriverLine } from '../../src/push/credentials.js';

/**
 * A private Dovecot 2.3 for tests: own temp dir, free ports, passwd-file users, a master user,
 * and the push plugin pointing wherever the test says. Follows shared/dovecot-notes.md.
 */

const execFileAsync = promisify(execFile);
const MAIL_UID = 65534; // nobody
export const DOVECOT_BIN = '/usr/sbin/dovecot';
export const DOVEADM_BIN = '/usr/bin/doveadm';
export const PUSH_LUA = resolve(import.meta.dirname, '../../dovecot/push.lua');

export function dovecotAvailable(): boolean {
  return existsSync(DOVECOT_BIN) && process.getuid?.() === 0;
}

export interface PushTarget {
  driver: 'ox' | 'lua';
  /** Base URL of the push endpoint, e.g. http://127.0.0.1:8080/push/dovecot */
  url: string;
  username?: string;
  password?: string;
  /** The driver setting line(s) verbatim (e.g. from `mailsight dovecot-config`), instead of building them. */
  raw?: string;
}

export interface DovecotOptions {
  users?: string[];
  push?: PushTarget;
  /** Set the OX driver's per-user METADATA opt-in for every user (default true). */
  optIn?: boolean;
  /** TLS: `ssl = yes` (STARTTLS offered) or `required`, with this certificate and key. Default: `ssl = no`. */
  tls?: { cert: string; key: string; ssl?: 'yes' | 'required' };
  /** Also an `imaps` listener (implicit TLS); needs `tls`. */
  imaps?: boolean;
  /**
   * `disable_plaintext_auth = yes`. Dovecot counts a connection as secure when the client's address
   * is the server's own, so tests that must see plaintext refused listen on 127.0.0.2 (`listen`),
   * where a client's 127.0.0.1 differs.
   */
  disablePlaintextAuth?: boolean;
  /** The address the listeners bind (default 127.0.0.1). */
  listen?: string;
  /** A whole configuration of its own instead of the test one (the Mailcow shape); files go in `dir`. */
  render?: (ctx: RenderContext) => string;
  /** The master user's name (default `mailsight`); a `render` writes its own master passdb. */
  masterUser?: string;
}

export interface RenderContext {
  dir: string;
  imapPort: number;
  lmtpPort: number;
  imapsPort: number;
  listen: string;
  users: string[];
  userPassword: string;
  masterUser: string;
  masterPassword: string;
  push?: PushTarget;
}

export interface Dovecot {
  dir: string;
  conf: string;
  /** The address the listeners bind. */
  host: string;
  imapPort: number;
  lmtpPort: number;
  /** The implicit-TLS listener's port (0 without one). */
  imapsPort: number;
  users: string[];
  userPassword: string;
  masterUser: string;
  masterPassword: string;
  doveadm(args: string[]): Promise<string>;
  log(): string;
  /** Kills Dovecot (SIGKILL) and starts it again on the same ports and mail: a crash and restart. */
  restart(opts?: { downMs?: number }): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A port that is free now, for a server that must be named before it starts (Dovecot's listeners,
 * mailsight's port in Dovecot's driver line). Picked below the kernel's ephemeral range: a port
 * the kernel hands out with listen(0) is in that range, where any outgoing connection of the
 * parallel test files (Postgres, IMAP) can take it as its source port before our server binds it.
 */
export async function freePort(): Promise<number> {
  const [ephemeralLow] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  const low = 10_000;
  const high = Math.min(ephemeralLow ?? 32_768, 32_768);
  for (let tries = 0; tries < 50 && high - low > 1_000; tries++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (await canListen(port)) return port;
  }
  return listenOn(0);
}

const canListen = (port: number) => listenOn(port).then(() => true, () => false);

function listenOn(port: number): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(port, '127.0.0.1', () => {
      const bound = (srv.address() as { port: number }).port;
      srv.close(() => resolvePort(bound));
    });
  });
}

function pushSettings(push: PushTarget | undefined): string {
  if (!push) return '';
  if (push.raw) return push.raw;
  const creds = push.username && push.password ? { username: push.username, password: push.password } : null;
  // The same line the service logs and the operator pastes.
  if (push.driver === 'ox') return oxDriverLine(new URL(push.url).origin, creds);
  return [
    `push_notification_driver = lua:file=${PUSH_LUA}`,
    `mailsight_push_url = ${push.url}`,
    push.username ? `mailsight_push_user = ${push.username}` : '',
    push.password ? `mailsight_push_password = ${escapeForDovecot(push.password)}` : '',
  ].join('\n  ');
}

function config(ctx: RenderContext, opts: DovecotOptions): string {
  const { dir, imapPort, lmtpPort, imapsPort, listen } = ctx;
  const push = opts.push;
  const plugins = push?.driver === 'lua' ? 'notify push_notification mail_lua push_notification_lua' : 'notify push_notification';
  const ssl = opts.tls ? `ssl = ${opts.tls.ssl ?? 'yes'}\nssl_cert = <${opts.tls.cert}\nssl_key = <${opts.tls.key}` : 'ssl = no';
  return `
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
protocols = imap lmtp
listen = ${listen}
${ssl}
disable_plaintext_auth = ${opts.disablePlaintextAuth ? 'yes' : 'no'}
auth_mechanisms = plain login
auth_failure_delay = 0
auth_master_user_separator = *
mail_location = maildir:~/Maildir
mail_attribute_dict = file:%h/dovecot-attributes
lda_mailbox_autocreate = yes
lmtp_save_to_detail_mailbox = yes
recipient_delimiter = +
namespace inbox {
  inbox = yes
  separator = /
  mailbox Junk {
    special_use = \\Junk
    auto = create
  }
}
passdb {
  driver = passwd-file
  args = ${dir}/master-users
  master = yes
  pass = yes
}
passdb {
  driver = passwd-file
  args = ${dir}/users
}
userdb {
  driver = passwd-file
  args = ${dir}/users
  default_fields = uid=${MAIL_UID} gid=${MAIL_UID} home=${dir}/home/%u
}
service imap-login {
  inet_listener imap {
    address = ${listen}
    port = ${imapPort}
  }
  inet_listener imaps {
    address = ${listen}
    port = ${imapsPort}
  }
}
service lmtp {
  inet_listener lmtp {
    address = ${listen}
    port = ${lmtpPort}
  }
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
protocol imap {
  imap_metadata = yes
  mail_plugins = $mail_plugins ${push?.driver === 'lua' ? plugins : ''}
}
protocol lmtp {
  mail_plugins = $mail_plugins ${push ? plugins : ''}
}
plugin {
  ${pushSettings(push)}
}
`;
}

async function waitForGreeting(port: number, prefix: string, timeoutMs: number, host = '127.0.0.1'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((res) => {
      const sock = createConnection({ port, host });
      sock.setTimeout(500);
      sock.once('data', (d) => {
        sock.destroy();
        res(d.toString().startsWith(prefix));
      });
      sock.once('error', () => res(false));
      sock.once('timeout', () => {
        sock.destroy();
        res(false);
      });
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 30));
  }
  throw new Error(`dovecot: no ${prefix} greeting on port ${port} within ${timeoutMs} ms`);
}

export async function startDovecot(opts: DovecotOptions = {}): Promise<Dovecot> {
  const users = opts.users ?? ['alice@example.test', 'bob@example.test'];
  const userPassword = 'userpw';
  const masterUser = opts.masterUser ?? 'mailsight';
  const masterPassword = 'masterpw';
  // Short path: unix socket paths must stay under 108 bytes.
  const dir = mkdtempSync('/tmp/dc-');
  chmodSync(dir, 0o755);
  for (const sub of ['run', 'state']) mkdirSync(join(dir, sub));
  mkdirSync(join(dir, 'home'));
  chownSync(join(dir, 'home'), MAIL_UID, MAIL_UID);
  writeFileSync(join(dir, 'users'), users.map((u) => `${u}:{PLAIN}${userPassword}::::::\n`).join(''));
  writeFileSync(join(dir, 'master-users'), `${masterUser}:{PLAIN}${masterPassword}::::::\n`);
  const conf = join(dir, 'dovecot.conf');

  let child: ChildProcess | undefined;
  let imapPort = 0;
  let lmtpPort = 0;
  let imapsPort = 0;
  const listen = opts.listen ?? '127.0.0.1';
  const greetings = () => Promise.all([waitForGreeting(imapPort, '* OK', 10_000, listen), waitForGreeting(lmtpPort, '220', 10_000, listen)]);
  for (let attempt = 0; attempt < 5 && !child; attempt++) {
    imapPort = await freePort();
    lmtpPort = await freePort();
    imapsPort = opts.imaps ? await freePort() : 0;
    const ctx: RenderContext = { dir, imapPort, lmtpPort, imapsPort, listen, users, userPassword, masterUser, masterPassword, push: opts.push };
    writeFileSync(conf, opts.render ? opts.render(ctx) : config(ctx, opts));
    const proc = spawn(DOVECOT_BIN, ['-F', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    proc.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number>((res) => proc.once('exit', (code) => res(code ?? -1)));
    const ready = greetings();
    const first = await Promise.race([ready.then(() => 'ready' as const), exited]);
    if (first === 'ready') child = proc;
    else if (first !== 89) throw new Error(`dovecot exited with ${first}: ${stderr}`);
    // 89: a port was taken between picking and binding; pick again.
  }
  if (!child) throw new Error('dovecot: could not bind free ports');

  const doveadm = async (args: string[]) => {
    const { stdout } = await execFileAsync(DOVEADM_BIN, ['-c', conf, ...args]);
    return stdout;
  };
  if (opts.push?.driver === 'ox' && opts.optIn !== false) {
    for (const u of users) {
      await doveadm(['mailbox', 'metadata', 'set', '-u', u, '-s', '', '/private/vendor/vendor.dovecot/http-notify', `user=${u}`]);
    }
  }
  let proc = child;
  const kill = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await gone;
    }
  };
  return {
    dir,
    conf,
    host: listen,
    imapPort,
    lmtpPort,
    imapsPort,
    users,
    userPassword,
    masterUser,
    masterPassword,
    doveadm,
    log: () => (existsSync(join(dir, 'dovecot.log')) ? readFileSync(join(dir, 'dovecot.log'), 'utf8') : ''),
    async restart(o = {}) {
      await kill();
      if (o.downMs) await new Promise((r) => setTimeout(r, o.downMs));
      // The listeners' ports were just freed; a moment's retry covers a slow release.
      for (let attempt = 0; ; attempt++) {
        const next = spawn(DOVECOT_BIN, ['-F', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
        const exited = new Promise<number>((res) => next.once('exit', (code) => res(code ?? -1)));
        const ready = greetings();
        const first = await Promise.race([ready.then(() => 'ready' as const), exited]);
        if (first === 'ready') {
          proc = next;
          return;
        }
        if (attempt >= 20) throw new Error(`dovecot did not come back (exit ${first})`);
        await new Promise((r) => setTimeout(r, 250));
      }
    },
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An IMAP session as `user` through the master login (as mailsight logs in); the caller logs out. */
export async function imapSession(dc: Dovecot, user: string): Promise<ImapFlow> {
  const client = new ImapFlow({
    host: dc.host,
    port: dc.imapPort,
    secure: false,
    auth: { user: `${user}*${dc.masterUser}`, pass: dc.masterPassword },
    // The test's own look into the mailbox: a test Dovecot's certificate is made by the test.
    tls: { rejectUnauthorized: false },
    logger: false,
  });
  await client.connect();
  return client;
}
