import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync, realpathSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { ImapFlow } from 'imapflow';
import { dovecotConfig, masterConfig, type DovecotVersion } from '../../src/cli/dovecot-snippets.js';

/**
 * A private Dovecot for tests: own temp dir, free ports, passwd-file users, a master user, and the
 * push plugin pointing wherever the test says. Follows shared/dovecot-notes.md.
 *
 * Two versions: the machine's Dovecot 2.3 (Debian 12), and Debian 13's Dovecot 2.4 in a root made by
 * debootstrap (test/support/dovecot-2.4-root.sh), run with chroot. Both are configured with the
 * snippets shipped in dovecot/<version>/, included as files, filled in by the functions behind
 * `mailsight dovecot-config`; the rest of the configuration is the test's own.
 */

export type { DovecotVersion };
const execFileAsync = promisify(execFile);
const MAIL_UID = 65534; // nobody
export const PUSH_LUA = resolve(import.meta.dirname, '../../dovecot/push.lua');
/** Where dovecot-2.4-root.sh keeps the current 2.4 root (a link to the one for today's package versions). */
const ROOT_24 = process.env.MAILSIGHT_DOVECOT24_ROOT ?? join(process.env.MAILSIGHT_TEST_CACHE ?? '/var/cache/mailsight-test', 'dovecot-2.4');
/** The OX driver's per-user opt-in: a METADATA entry under this key. */
export const OX_OPT_IN_KEY = '/private/vendor/vendor.dovecot/http-notify';
export const DOVECOT_VERSIONS: DovecotVersion[] = ['2.3', '2.4'];

/** The file-system root a version's Dovecot runs in: '' for the machine's own. */
function installRoot(version: DovecotVersion): string {
  if (version === '2.3') return '';
  return existsSync(ROOT_24) ? realpathSync(ROOT_24) : ROOT_24;
}

export function dovecotAvailable(version: DovecotVersion = '2.3'): boolean {
  return existsSync(`${installRoot(version)}/usr/sbin/dovecot`) && process.getuid?.() === 0;
}

/** A Dovecot program of that version: the machine's, or the 2.4 root's through chroot. */
function dovecotCommand(version: DovecotVersion, program: string, args: string[]): [string, string[]] {
  const root = installRoot(version);
  const bin = program === 'dovecot' ? '/usr/sbin/dovecot' : `/usr/bin/${program}`;
  return root ? ['chroot', [root, bin, ...args]] : [bin, args];
}

/** Runs doveconf/doveadm of that version; resolves with stdout. */
export async function dovecotTool(version: DovecotVersion, program: 'doveconf' | 'doveadm', args: string[]): Promise<string> {
  const [cmd, argv] = dovecotCommand(version, program, args);
  return (await execFileAsync(cmd, argv)).stdout;
}

/**
 * A temp dir that version's Dovecot can read: under the 2.4 root's /tmp for chroot. `dir` is the
 * path Dovecot sees, `hostDir` the same folder from here.
 */
export function dovecotTempDir(version: DovecotVersion, prefix = 'dc-'): { dir: string; hostDir: string } {
  const root = installRoot(version);
  // Short path: unix socket paths must stay under 108 bytes.
  const hostDir = mkdtempSync(join(root || '/', 'tmp', prefix));
  chmodSync(hostDir, 0o755);
  return { dir: hostDir.slice(root.length), hostDir };
}

export interface PushTarget {
  driver: 'ox' | 'lua';
  /** Base URL of the push endpoint, e.g. http://127.0.0.1:8080/push/dovecot */
  url: string;
  username?: string;
  password?: string;
  /** A 2.3 driver line verbatim (as the service logs it), set after the snippet's own. */
  raw?: string;
}

export interface DovecotOptions {
  /** Which Dovecot (default 2.3, the machine's). */
  version?: DovecotVersion;
  users?: string[];
  push?: PushTarget;
  /** Set the OX driver's per-user METADATA opt-in for every user (default true). */
  optIn?: boolean;
  /** TLS: `ssl = yes` (STARTTLS offered) or `required`, with this certificate and key. Default: `ssl = no`. */
  tls?: { cert: string; key: string; ssl?: 'yes' | 'required' };
  /** Folders made for every user (2.3 and 2.4 alike), with their SPECIAL-USE flag. */
  specialUse?: Record<string, string>;
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
  /** Lines appended to the test configuration (not to a `render`'s), e.g. service tuning for a benchmark. */
  extraConfig?: string;
  /** The master user's name (default `mailsight`); a `render` writes its own master passdb. */
  masterUser?: string;
}

export interface RenderContext {
  version: DovecotVersion;
  /** The test's folder as Dovecot sees it (inside the 2.4 root for chroot). */
  dir: string;
  /** The same folder from here: where files are written. */
  hostDir: string;
  /** A file from outside (a certificate) copied into the folder; returns the path Dovecot sees. */
  place(hostFile: string, name: string): string;
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
  version: DovecotVersion;
  /** The test's folder as Dovecot sees it. */
  dir: string;
  /** The same folder from here. */
  hostDir: string;
  /** dovecot.conf as Dovecot sees it. */
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
  /** doveconf of this Dovecot's version on its configuration. */
  doveconf(args: string[]): Promise<string>;
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

/** The shipped snippets, filled in as `mailsight dovecot-config` fills them, written next to dovecot.conf. */
function snippets(ctx: RenderContext, push: PushTarget | undefined): string[] {
  const { version, dir, hostDir } = ctx;
  const files: string[] = [];
  const write = (name: string, text: string) => {
    writeFileSync(join(hostDir, name), text);
    files.push(`${dir}/${name}`);
  };
  write('91-mailsight-master.conf', masterConfig(version, `${dir}/master-users`));
  if (push) {
    const creds = push.username && push.password ? { username: push.username, password: push.password } : null;
    const luaFile = push.driver === 'lua' ? ctx.place(PUSH_LUA, 'push.lua') : undefined;
    let text = dovecotConfig({ url: new URL(push.url).origin, driver: push.driver, version, credentials: creds, luaFile });
    if (push.raw) text += `\nplugin {\n  ${push.raw}\n}\n`;
    write(push.driver === 'ox' ? '90-mailsight.conf' : '90-mailsight-lua.conf', text);
  }
  return files;
}

/** The inbox namespace, with folders that carry a SPECIAL-USE flag (made, or also subscribed, for every user). */
export function namespaceBlock(specialUse: Record<string, string>, auto: 'create' | 'subscribe' = 'create'): string {
  const folders = Object.entries(specialUse).map(([name, flag]) => `  mailbox "${name}" {\n    special_use = ${flag}\n    auto = ${auto}\n  }`);
  return ['namespace inbox {', '  inbox = yes', '  separator = /', ...folders, '}'].join('\n');
}

/** The start of every test configuration: the version lines 2.4 needs, the private dirs, the log, the listeners' address. */
export function headerLines(version: DovecotVersion, dir: string, listen: string): string {
  return [
    ...(version === '2.4' ? ['dovecot_config_version = 2.4.1', 'dovecot_storage_version = 2.4.1'] : []),
    `base_dir = ${dir}/run`,
    `state_dir = ${dir}/state`,
    `log_path = ${dir}/dovecot.log`,
    'protocols = imap lmtp',
    `listen = ${listen}`,
  ].join('\n');
}

/** The IMAP, IMAPS and LMTP listeners (port 0: none); 2.3 names the address `address`, 2.4 `listen`. */
export function listenerBlocks(version: DovecotVersion, listen: string, ports: { imap: number; imaps: number; lmtp: number }): string {
  const at = version === '2.3' ? 'address' : 'listen';
  const listener = (name: string, port: number) =>
    port ? `  inet_listener ${name} {\n    ${at} = ${listen}\n    port = ${port}\n  }` : `  inet_listener ${name} {\n    port = 0\n  }`;
  return `service imap-login {\n${listener('imap', ports.imap)}\n${listener('imaps', ports.imaps)}\n}\nservice lmtp {\n${listener('lmtp', ports.lmtp)}\n}`;
}

/** What both versions say alike: delivery into +detail folders, the folders, the master passdb (first). */
function deliveryAndMaster(opts: DovecotOptions, includes: string[]): string {
  return `lda_mailbox_autocreate = yes
lmtp_save_to_detail_mailbox = yes
recipient_delimiter = +
${namespaceBlock({ Junk: '\\Junk', ...opts.specialUse })}
# The master passdb comes before the users' one.
!include ${includes[0]}`;
}

/** The test's own part, Dovecot 2.3 syntax. */
function config23(ctx: RenderContext, opts: DovecotOptions, includes: string[]): string {
  const { dir, imapPort, lmtpPort, imapsPort, listen } = ctx;
  const ssl = opts.tls ? `ssl = ${opts.tls.ssl ?? 'yes'}\nssl_cert = <${ctx.place(opts.tls.cert, 'cert.pem')}\nssl_key = <${ctx.place(opts.tls.key, 'key.pem')}` : 'ssl = no';
  return `${headerLines('2.3', dir, listen)}
${ssl}
disable_plaintext_auth = ${opts.disablePlaintextAuth ? 'yes' : 'no'}
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:~/Maildir
${deliveryAndMaster(opts, includes)}
passdb {
  driver = passwd-file
  args = ${dir}/users
}
userdb {
  driver = passwd-file
  args = ${dir}/users
  default_fields = uid=${MAIL_UID} gid=${MAIL_UID} home=${dir}/home/%u
}
${listenerBlocks('2.3', listen, { imap: imapPort, imaps: imapsPort, lmtp: lmtpPort })}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
protocol imap {
  imap_metadata = yes
}
${includes.slice(1).map((f) => `!include ${f}`).join('\n')}
`;
}

/** The test's own part, Dovecot 2.4 syntax (block settings, `%{user}`, `listen` in listeners). */
function config24(ctx: RenderContext, opts: DovecotOptions, includes: string[]): string {
  const { dir, imapPort, lmtpPort, imapsPort, listen } = ctx;
  const ssl = opts.tls
    ? `ssl = ${opts.tls.ssl ?? 'yes'}\nssl_server_cert_file = ${ctx.place(opts.tls.cert, 'cert.pem')}\nssl_server_key_file = ${ctx.place(opts.tls.key, 'key.pem')}`
    : 'ssl = no';
  return `${headerLines('2.4', dir, listen)}
${ssl}
auth_allow_cleartext = ${opts.disablePlaintextAuth ? 'no' : 'yes'}
auth_mechanisms = plain login
auth_failure_delay = 0
mail_driver = maildir
mail_path = ~/Maildir
${deliveryAndMaster(opts, includes)}
passdb users {
  driver = passwd-file
  passwd_file_path = ${dir}/users
}
userdb users {
  driver = passwd-file
  passwd_file_path = ${dir}/users
  fields {
    uid = ${MAIL_UID}
    gid = ${MAIL_UID}
    home = ${dir}/home/%{user}
  }
}
${listenerBlocks('2.4', listen, { imap: imapPort, imaps: imapsPort, lmtp: lmtpPort })}
protocol imap {
  imap_metadata = yes
}
${includes.slice(1).map((f) => `!include ${f}`).join('\n')}
`;
}

function config(ctx: RenderContext, opts: DovecotOptions): string {
  const includes = snippets(ctx, opts.push);
  return ctx.version === '2.3' ? config23(ctx, opts, includes) : config24(ctx, opts, includes);
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
  const version = opts.version ?? '2.3';
  const { dir, hostDir } = dovecotTempDir(version);
  for (const sub of ['run', 'state']) mkdirSync(join(hostDir, sub));
  mkdirSync(join(hostDir, 'home'));
  chownSync(join(hostDir, 'home'), MAIL_UID, MAIL_UID);
  writeFileSync(join(hostDir, 'users'), users.map((u) => `${u}:{PLAIN}${userPassword}::::::\n`).join(''));
  writeFileSync(join(hostDir, 'master-users'), `${masterUser}:{PLAIN}${masterPassword}::::::\n`);
  const conf = `${dir}/dovecot.conf`;
  const place = (hostFile: string, name: string) => {
    copyFileSync(hostFile, join(hostDir, name));
    return `${dir}/${name}`;
  };
  const startProcess = () => {
    const [cmd, argv] = dovecotCommand(version, 'dovecot', ['-F', '-c', conf]);
    return spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  };

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
    const ctx: RenderContext = { version, dir, hostDir, place, imapPort, lmtpPort, imapsPort, listen, users, userPassword, masterUser, masterPassword, push: opts.push };
    writeFileSync(join(hostDir, 'dovecot.conf'), opts.render ? opts.render(ctx) : `${config(ctx, opts)}\n${opts.extraConfig ?? ''}\n`);
    const proc = startProcess();
    let stderr = '';
    proc.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number>((res) => proc.once('exit', (code) => res(code ?? -1)));
    const ready = greetings();
    const first = await Promise.race([ready.then(() => 'ready' as const), exited]);
    if (first === 'ready') child = proc;
    // 89 with "Address already in use": a port was taken between picking and binding; pick again.
    else if (first !== 89 || !/in use/i.test(stderr)) throw new Error(`dovecot ${version} exited with ${first}: ${stderr}`);
  }
  if (!child) throw new Error('dovecot: could not bind free ports');

  const doveadm = (args: string[]) => dovecotTool(version, 'doveadm', ['-c', conf, ...args]);
  const doveconf = (args: string[]) => dovecotTool(version, 'doveconf', ['-c', conf, ...args]);
  if (opts.push?.driver === 'ox' && opts.optIn !== false) await optInEveryUser(doveadm);
  let proc = child;
  const kill = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await gone;
    }
  };
  return {
    version,
    dir,
    hostDir,
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
    doveconf,
    log: () => (existsSync(join(hostDir, 'dovecot.log')) ? readFileSync(join(hostDir, 'dovecot.log'), 'utf8') : ''),
    async restart(o = {}) {
      await kill();
      if (o.downMs) await new Promise((r) => setTimeout(r, o.downMs));
      // The listeners' ports were just freed; a moment's retry covers a slow release.
      for (let attempt = 0; ; attempt++) {
        const next = startProcess();
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
      rmSync(hostDir, { recursive: true, force: true });
    },
  };
}

/**
 * The OX driver's opt-in for every user the userdb lists, as dovecot/README.md does it: `doveadm user '*'`,
 * then one `metadata set -u` per user. (`metadata set -A` would be shorter, but on 2.3.19 and 2.4.1 it
 * sets the entry only for the first user and writes a garbled key for the others.)
 */
export async function optInEveryUser(doveadm: (args: string[]) => Promise<string>): Promise<string[]> {
  const users = (await doveadm(['user', '*'])).split('\n').filter(Boolean);
  for (const u of users) await doveadm(['mailbox', 'metadata', 'set', '-u', u, '-s', '', OX_OPT_IN_KEY, `user=${u}`]);
  return users;
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
