import type { MessageKey } from '../domain/message-key.js';
import { ImapFlow } from 'imapflow';
import type { Logger } from '../logger.js';
import { JobError } from '../queue/job-error.js';
import { Rest } from '../util/backoff.js';
import type { ActHooks, ActionPlan, ActOutcome } from './actions.js';
import { SPECIAL_USE_FLAGS } from './folders.js';
import { probeImap, type ProbeResult } from './imap-probe.js';
import { imapConnection, tlsProblem, type ImapTlsSettings, type TlsProblemCode } from './imap-tls.js';

export type ImapErrorCode = 'IMAP_NOT_CONFIGURED' | 'IMAP_AUTH_FAILED' | 'IMAP_UNAVAILABLE' | 'IMAP_NOT_YET_VISIBLE' | 'IMAP_NO_ACCESS' | 'IMAP_ERROR' | TlsProblemCode;

/** Pauses between NOOPs while a just-pushed UID is not visible yet (about 1.5 s in all). */
const VISIBILITY_POLLS_MS = [0, 50, 100, 200, 400, 800];

/** Transient ones (server down, connection lost, auth backend busy) retry; the rest fail the job. */
export class ImapError extends JobError<ImapErrorCode> {
  /** What an operator changes to fix it (TLS and login problems), for `check` and the health endpoint. */
  readonly fix?: string;
  constructor(code: ImapErrorCode, message: string, transient: boolean, options?: { cause?: unknown; outageMs?: number; fix?: string }) {
    super(code, message, transient, options);
    this.fix = options?.fix;
  }
}

export interface ImapOptions extends ImapTlsSettings {
  masterUser?: string;
  masterPassword?: string;
  masterSeparator: string;
  maxSessions: number;
  idleCloseSec: number;
  maxFetchBytes: number;
}

export type FetchOutcome =
  | { status: 'ok'; raw: Buffer; size: number; truncated: boolean; ms: number; receivedAt?: Date }
  | { status: 'gone' }
  | { status: 'stale'; uidvalidity: number };

interface Session {
  mailbox: string;
  client: ImapFlow;
  ready: Promise<void>;
  users: number;
  idleTimer?: NodeJS.Timeout;
}

/** Errors that say the server cannot be reached (as opposed to a refused login or a busy mailbox). */
const NETWORK_CODES = new Set(['NoConnection', 'CONNECT_TIMEOUT', 'GREETING_TIMEOUT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEOUT', 'ClosedAfterConnectText']);
/** Errors a later attempt may not meet: the network ones, and a connection or lock that went wrong once. */
const TRANSIENT_CODES = new Set([...NETWORK_CODES, 'EConnectionClosed', 'ClosedAfterConnectTLS', 'UPGRADE_TIMEOUT', 'LockTimeout', 'ETHROTTLE']);

const isNetworkError = (err: unknown) => NETWORK_CODES.has((err as { code?: string })?.code ?? '');
/** The IMAP server is left alone this long after it could not be reached, doubling per failure in a row. */
const SERVER_REST_BASE_MS = 1_000;
const SERVER_REST_MAX_MS = 30_000;
/**
 * After the master login failed with no login working since, new logins wait this long, doubling
 * up to 30 min: a wrong master password must not turn into a stream of failed logins that Dovecot's
 * auth penalty, fail2ban or Mailcow's netfilter (about 10 failures in 10 min) answer with a ban.
 */
const AUTH_REST_BASE_MS = 30_000;
const AUTH_REST_MAX_MS = 30 * 60_000;
/** How long a readiness probe's answer is reused: /ready is unauthenticated and must not open a connection per request. */
const PROBE_REUSE_MS = 5_000;
/** How long a mailbox's SPECIAL-USE folders are reused: folders are rarely re-marked. */
const FOLDER_FLAGS_REUSE_MS = 10 * 60_000;

/** The last real master login: readiness reports it instead of trying a login that may fail. */
export interface LoginState {
  outcome: 'not yet' | 'ok' | 'failed';
  at?: Date;
  error?: string;
  code?: ImapErrorCode;
}

export function classifyImapError(err: unknown, login: string, settings?: ImapTlsSettings): ImapError {
  if (err instanceof ImapError) return err;
  const e = err as { code?: string; message?: string; authenticationFailed?: boolean; serverResponseCode?: string; responseText?: string };
  const text = e?.responseText ?? e?.message ?? String(err);
  const tls = settings && tlsProblem(err, settings);
  if (tls) {
    // The same for every mailbox until the configuration changes: the jobs wait (an outage), none fails.
    return new ImapError(tls.code, `${tls.message}; fix: ${tls.fix}`, true, { cause: err, fix: tls.fix });
  }
  if (e?.authenticationFailed) {
    // Dovecot says [UNAVAILABLE] when its auth backend is down, [AUTHENTICATIONFAILED] for wrong credentials or no such user.
    if (e.serverResponseCode === 'UNAVAILABLE')
      return new ImapError('IMAP_UNAVAILABLE', `IMAP login ${login}: server temporarily unavailable (${text})`, true, { cause: err });
    return new ImapError('IMAP_AUTH_FAILED', `IMAP master login ${login} refused: ${text}`, false, { cause: err });
  }
  if (e?.code && TRANSIENT_CODES.has(e.code)) return new ImapError('IMAP_UNAVAILABLE', `IMAP ${e.code}: ${text}`, true, { cause: err });
  return new ImapError('IMAP_ERROR', `IMAP: ${text}`, true, { cause: err });
}

/**
 * Master-user IMAP sessions, one per mailbox, reused across that mailbox's messages, logged out
 * when idle, at most `maxSessions` open (the least recently used idle one makes room; when all are
 * busy, callers wait). Every folder is opened read-only and every fetch is BODY.PEEK, so analysis
 * never changes a message's flags.
 */
function isNoSuchFolder(err: unknown): boolean {
  const e = err as { code?: string; serverResponseCode?: string; responseText?: string };
  return e.code === 'NotFound' || e.serverResponseCode === 'NONEXISTENT' || /doesn't exist|not found|nonexistent/i.test(e.responseText ?? '');
}

export class ImapSessions {
  /** Logins, and how many of them ran over TLS (one handshake each), fetches and bytes. */
  readonly stats = { logins: 0, tlsLogins: 0, fetches: 0, bytesFetched: 0 };
  private readonly sessions = new Map<string, Session>();
  private readonly folderFlagsCache = new Map<string, { at: number; flags: Map<string, string[]> }>();
  private readonly waiting: (() => void)[] = [];
  /** Logouts started by eviction or idle timers; close() awaits them. */
  private readonly loggingOut = new Set<Promise<void>>();
  private closed = false;
  /** Set when the server could not be reached: new sessions wait it out instead of each trying. */
  private readonly serverRest = new Rest(SERVER_REST_BASE_MS, SERVER_REST_MAX_MS);
  /** Set when the master login failed and none has worked since: see AUTH_REST_BASE_MS. */
  private readonly authRest = new Rest(AUTH_REST_BASE_MS, AUTH_REST_MAX_MS);
  private lastLogin: LoginState = { outcome: 'not yet' };
  /** Why logins rest now (the server unreachable, TLS, the master login refused). */
  private restReason?: { code: ImapErrorCode; message: string; fix?: string };
  private lastProbe?: { at: number; result: Promise<ProbeResult> };

  constructor(
    private readonly opts: ImapOptions,
    private readonly logger: Logger,
  ) {}

  get configured(): boolean {
    return Boolean(this.opts.masterUser && this.opts.masterPassword);
  }

  get openSessions(): number {
    return this.sessions.size;
  }

  loginFor(mailbox: string): string {
    return `${mailbox}${this.opts.masterSeparator}${this.opts.masterUser ?? ''}`;
  }

  /** The outcome and time of the last master login, for readiness and the health endpoint. */
  get login(): LoginState {
    return { ...this.lastLogin };
  }

  private newClient(mailbox: string): ImapFlow {
    const { secure, doSTARTTLS, tls } = imapConnection(this.opts);
    return new ImapFlow({
      host: this.opts.host,
      port: this.opts.port,
      secure,
      doSTARTTLS,
      tls,
      auth: { user: this.loginFor(mailbox), pass: this.opts.masterPassword ?? '' },
      logger: false,
      disableAutoIdle: true,
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 5 * 60_000,
    });
  }

  private drop(session: Session) {
    if (this.sessions.get(session.mailbox) === session) this.sessions.delete(session.mailbox);
    clearTimeout(session.idleTimer);
    this.waiting.shift()?.();
  }

  private logout(session: Session): Promise<void> {
    this.drop(session);
    const done = session.client
      .logout()
      .catch(() => session.client.close())
      .finally(() => this.loggingOut.delete(done));
    this.loggingOut.add(done);
    return done;
  }

  /** Frees a slot: the least recently used idle session goes. False when every session is busy. */
  private evictIdle(): boolean {
    for (const s of this.sessions.values()) {
      if (s.users === 0) {
        void this.logout(s);
        return true;
      }
    }
    return false;
  }

  /** The same for every mailbox, and fixed by configuration: jobs wait for it (transient), as in an outage. */
  private notConfigured(): ImapError {
    return new ImapError('IMAP_NOT_CONFIGURED', 'IMAP_MASTER_USER and IMAP_MASTER_PASSWORD are not set', true);
  }

  private async acquire(mailbox: string): Promise<Session> {
    if (this.closed) throw new ImapError('IMAP_UNAVAILABLE', 'IMAP sessions are closed (shutting down)', true);
    if (!this.configured) throw this.notConfigured();
    for (;;) {
      const existing = this.sessions.get(mailbox);
      if (existing) {
        existing.users++;
        clearTimeout(existing.idleTimer);
        // Map order is recency order: move it to the end.
        this.sessions.delete(mailbox);
        this.sessions.set(mailbox, existing);
        try {
          await existing.ready;
        } catch (err) {
          existing.users--;
          throw classifyImapError(err, this.loginFor(mailbox), this.opts);
        }
        if (existing.client.usable) return existing;
        existing.users--;
        this.drop(existing);
        continue;
      }
      if (this.sessions.size >= this.opts.maxSessions && !this.evictIdle()) {
        await new Promise<void>((resolve) => this.waiting.push(resolve));
        continue;
      }
      const resting = Math.max(this.serverRest.remaining(), this.authRest.remaining());
      if (resting > 0) {
        // The reason of the failure that started the rest, so every waiting job says what to fix.
        const why = this.restReason ?? { code: 'IMAP_UNAVAILABLE' as const, message: 'IMAP server unreachable recently' };
        throw new ImapError(why.code, `${why.message}; trying again in ${Math.ceil(resting / 1000)} s`, true, { outageMs: resting, fix: why.fix });
      }
      const client = this.newClient(mailbox);
      const session: Session = { mailbox, client, users: 1, ready: Promise.resolve() };
      client.on('error', (err: Error) => this.logger.warn({ mailbox, err: err.message }, 'imap session error'));
      client.on('close', () => this.drop(session));
      // Classified once, here: every caller waiting for this session gets the same verdict.
      session.ready = client.connect().then(
        () => {
          this.stats.logins++;
          if ((client as unknown as { socket?: { encrypted?: boolean } }).socket?.encrypted) this.stats.tlsLogins++;
          this.serverRest.ok();
          this.authRest.ok();
          this.lastLogin = { outcome: 'ok', at: new Date() };
        },
        (err) => {
          throw this.loginFailed(err, mailbox);
        },
      );
      this.sessions.set(mailbox, session);
      try {
        await session.ready;
      } catch (err) {
        session.users--;
        this.drop(session);
        client.close();
        throw err;
      }
      return session;
    }
  }

  /**
   * Classifies a failed connect-and-login and decides whose fault it is. The server unreachable,
   * a TLS problem, plaintext refused, or a master login refused while no login has worked since:
   * the same for every mailbox, so an outage that the jobs wait out without spending attempts.
   * A login refused while others work: this mailbox's problem (no such user), the job fails.
   */
  private loginFailed(err: unknown, mailbox: string): ImapError {
    const e = classifyImapError(err, this.loginFor(mailbox), this.opts);
    if (isNetworkError(err) || e.fix) {
      this.serverRest.failed();
      this.restReason = { code: e.code, message: e.fix ? e.message : `IMAP server unreachable recently (${e.message})`, fix: e.fix };
      if (e.fix) this.lastLogin = { outcome: 'failed', at: new Date(), error: e.message, code: e.code };
      return new ImapError(e.code, e.message, true, { cause: err, outageMs: this.serverRest.remaining(), fix: e.fix });
    }
    if (e.code === 'IMAP_AUTH_FAILED') {
      const noneWorked = this.lastLogin.outcome !== 'ok';
      this.lastLogin = { outcome: 'failed', at: new Date(), error: e.message, code: e.code };
      if (noneWorked) {
        this.authRest.failed();
        this.restReason = { code: e.code, message: `the master login failed (${e.message})` };
        this.logger.error({ login: this.loginFor(mailbox), retryInMs: this.authRest.remaining() }, 'IMAP master login refused and none has worked yet: check IMAP_MASTER_USER, IMAP_MASTER_PASSWORD and the master passdb; logins pause meanwhile');
        return new ImapError(e.code, e.message, true, { cause: err, outageMs: this.authRest.remaining() });
      }
    }
    return e;
  }

  private releaseSession(session: Session) {
    session.users--;
    if (session.users > 0) return;
    this.waiting.shift()?.();
    clearTimeout(session.idleTimer);
    session.idleTimer = setTimeout(() => void this.logout(session), this.opts.idleCloseSec * 1000);
    session.idleTimer.unref();
  }

  /** Runs `fn` with `folder` open read-only in the mailbox's session. */
  private async withFolder<T>(
    mailbox: string,
    folder: string,
    fn: (client: ImapFlow, uidValidity: number) => Promise<T>,
    opts: { writable?: boolean } = {},
  ): Promise<T | 'no-folder'> {
    const session = await this.acquire(mailbox);
    try {
      let lock;
      try {
        // Read-only unless a mailbox action needs to write: analysis never changes a flag.
        lock = await session.client.getMailboxLock(folder, { readOnly: !opts.writable });
      } catch (err) {
        if (isNoSuchFolder(err) && folder.toUpperCase() === 'INBOX') throw this.noInbox(mailbox, err);
        if (isNoSuchFolder(err)) return 'no-folder';
        throw err;
      }
      try {
        const mb = session.client.mailbox;
        const uidValidity = mb ? Number(mb.uidValidity) : 0;
        return await fn(session.client, uidValidity);
      } finally {
        lock.release();
      }
    } catch (err) {
      throw classifyImapError(err, this.loginFor(mailbox), this.opts);
    } finally {
      this.releaseSession(session);
    }
  }

  /**
   * Every user has an INBOX: a master login that cannot see it lacks rights, most often the ACL
   * plugin checking the master user's rights instead of the user's. The same for every mailbox, so
   * the jobs wait (an outage) instead of recording their messages as gone.
   */
  private noInbox(mailbox: string, cause: unknown): ImapError {
    this.serverRest.failed();
    const fix = "with Dovecot's acl plugin, set acl_user = %u and master_user = %u in plugin { } (Mailcow has both), so the master login gets the user's rights";
    const message = `the master login as ${this.loginFor(mailbox)} sees no INBOX; fix: ${fix}`;
    this.restReason = { code: 'IMAP_NO_ACCESS', message, fix };
    this.lastLogin = { outcome: 'failed', at: new Date(), error: message, code: 'IMAP_NO_ACCESS' };
    return new ImapError('IMAP_NO_ACCESS', message, true, { cause, outageMs: this.serverRest.remaining(), fix });
  }

  /**
   * The message's first `maxFetchBytes` bytes by UID (BODY.PEEK[]<0.n>), its full size, or why not:
   * `gone` (expunged, or the folder no longer exists) or `stale` (UIDVALIDITY changed, the UID means
   * nothing now).
   */
  async fetchMessage(key: MessageKey): Promise<FetchOutcome> {
    const started = performance.now();
    const out = await this.withFolder(key.mailbox, key.folder, async (client, uidValidity): Promise<FetchOutcome> => {
      if (uidValidity !== key.uidvalidity) return { status: 'stale', uidvalidity: uidValidity };
      const msg = await this.fetchVisible(client, key.folder, key.uid);
      if (!msg) return { status: 'gone' };
      this.stats.fetches++;
      this.stats.bytesFetched += msg.source.length;
      const size = msg.size ?? msg.source.length;
      const receivedAt = msg.internalDate instanceof Date && !Number.isNaN(msg.internalDate.getTime()) ? msg.internalDate : undefined;
      return { status: 'ok', raw: msg.source, size, truncated: size > msg.source.length, ms: Math.round(performance.now() - started), receivedAt };
    });
    return out === 'no-folder' ? { status: 'gone' } : out;
  }

  /**
   * Fetches one message's first bytes. A reused session sees mail that arrived since its last
   * command only after a NOOP, and a push can arrive a moment before the delivery is visible to
   * other sessions; so a miss is "gone" only when STATUS says the UID is below UIDNEXT. Otherwise
   * poll briefly, then fail transiently so the job retries.
   */
  private async fetchVisible(client: ImapFlow, folder: string, uid: number) {
    for (let i = 0; ; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, VISIBILITY_POLLS_MS[i]));
      // A UID below the UIDNEXT of the session's SELECT is in its view already: skip the round trip.
      if (i > 0 || uid >= Number(client.mailbox ? client.mailbox.uidNext : 0)) await client.noop();
      const msg = await client.fetchOne(String(uid), { uid: true, size: true, internalDate: true, source: { start: 0, maxLength: this.opts.maxFetchBytes } }, { uid: true });
      if (msg && msg.source) return { source: msg.source, size: msg.size, internalDate: msg.internalDate };
      const status = await client.status(folder, { uidNext: true });
      const uidNext = status ? Number(status.uidNext ?? 0) : 0;
      if (uid < uidNext) return null;
      if (i === VISIBILITY_POLLS_MS.length - 1) {
        throw new ImapError('IMAP_NOT_YET_VISIBLE', `UID ${uid} is not in ${folder} yet (UIDNEXT ${uidNext})`, true);
      }
    }
  }

  /**
   * UIDVALIDITY, UIDNEXT and the UIDs in `folder` above the UID that `after` picks once it knows the
   * first two (for the reconciliation sweep). Null when the folder does not exist.
   */
  async uidsAfter(
    mailbox: string,
    folder: string,
    after: (state: { uidValidity: number; uidNext: number }) => Promise<number>,
  ): Promise<{ uidValidity: number; uidNext: number; afterUid: number; uids: number[] } | null> {
    const out = await this.withFolder(mailbox, folder, async (client, uidValidity) => {
      // A reused session's view is the one of its SELECT: the server's STATUS says what UIDNEXT is
      // now (imapflow's mailbox.uidNext is not updated by a NOOP, so a session kept open never saw
      // new mail). The NOOP brings the new messages into the view the SEARCH below runs on.
      await client.noop();
      const status = await client.status(folder, { uidNext: true });
      if (!status) throw new ImapError('IMAP_ERROR', `STATUS ${folder} failed`, true);
      const uidNext = Number(status.uidNext);
      const afterUid = await after({ uidValidity, uidNext });
      if (uidNext - 1 <= afterUid) return { uidValidity, uidNext, afterUid, uids: [] };
      // `n:*` always matches the highest UID even when it is below n: filter.
      const found = await client.search({ uid: `${afterUid + 1}:*` }, { uid: true });
      const uids = (found || []).filter((u) => u > afterUid).sort((a, b) => a - b);
      return { uidValidity, uidNext, afterUid, uids };
    });
    return out === 'no-folder' ? null : out;
  }

  /**
   * Carries out a mailbox action plan on one message: keywords, then (for Junk) \Seen and MOVE to
   * the SPECIAL-USE \Junk folder, else to `plan.junkFolder`, created when missing. Reports the
   * message's UID in the new folder (COPYUID) when the server gives it. `hooks.beforeFlag` runs before
   * the STORE and `hooks.beforeMove` once the target is known and before the MOVE: their pushes
   * (FlagsSet, MessageAppend) can arrive before they return.
   */
  async act(key: MessageKey, plan: ActionPlan, hooks: ActHooks = {}): Promise<ActOutcome> {
    const out = await this.withFolder(
      key.mailbox,
      key.folder,
      async (client, uidValidity): Promise<ActOutcome> => {
        if (uidValidity !== key.uidvalidity) return { status: 'stale', uidvalidity: uidValidity };
        const uid = String(key.uid);
        const present = await client.fetchOne(uid, { uid: true }, { uid: true });
        if (!present) return { status: 'gone' };
        if (plan.keywords.length) {
          await hooks.beforeFlag?.(plan.keywords);
          await client.messageFlagsAdd(uid, plan.keywords, { uid: true });
        }
        if (!plan.moveToJunk) return { status: 'done', keywords: plan.keywords };
        const target = await this.junkFolder(client, plan.junkFolder);
        if (target === key.folder) return { status: 'done', keywords: plan.keywords };
        if (plan.markSeen) await client.messageFlagsAdd(uid, ['\\Seen'], { uid: true });
        await hooks.beforeMove?.(target);
        const moved = await client.messageMove(uid, target, { uid: true });
        const newUid = moved && moved.uidMap ? moved.uidMap.get(key.uid) : undefined;
        return { status: 'done', keywords: plan.keywords, movedTo: { folder: target, uid: newUid } };
      },
      { writable: true },
    );
    return out === 'no-folder' ? { status: 'gone' } : out;
  }

  /**
   * The SPECIAL-USE flags of `folder` in this mailbox (LIST, reused for a while per mailbox): an
   * empty list when it has none, null when there is no such folder.
   */
  async folderFlags(mailbox: string, folder: string): Promise<string[] | null> {
    let cached = this.folderFlagsCache.get(mailbox);
    if (!cached || Date.now() - cached.at > FOLDER_FLAGS_REUSE_MS) {
      const session = await this.acquire(mailbox);
      try {
        const list = await session.client.list();
        // The server's own flags: imapflow's specialUse names one folder per use, and guesses from names.
        const marks = (f: { flags: Set<string> }) => [...f.flags].filter((flag) => (SPECIAL_USE_FLAGS as readonly string[]).includes(flag));
        cached = { at: Date.now(), flags: new Map(list.map((f) => [f.path, marks(f)])) };
        this.folderFlagsCache.set(mailbox, cached);
      } catch (err) {
        throw classifyImapError(err, this.loginFor(mailbox), this.opts);
      } finally {
        this.releaseSession(session);
      }
    }
    return cached.flags.get(folder) ?? null;
  }

  /** Whether `folder` still holds the message with this UID (UID SEARCH); false when the folder is gone. */
  async hasMessage(mailbox: string, folder: string, uid: number): Promise<boolean> {
    const out = await this.withFolder(mailbox, folder, async (client) => {
      const found = await client.search({ uid: String(uid) }, { uid: true });
      return Array.isArray(found) && found.includes(uid);
    });
    return out === 'no-folder' ? false : out;
  }

  /** UIDVALIDITY and the UIDs in `folder` (received since `since`, if given), oldest first; null when there is no such folder. */
  async uidsSince(mailbox: string, folder: string, since?: Date): Promise<{ uidValidity: number; uids: number[] } | null> {
    const out = await this.withFolder(mailbox, folder, async (client, uidValidity) => {
      const found = await client.search(since ? { since } : { all: true }, { uid: true });
      return { uidValidity, uids: (found || []).sort((a, b) => a - b) };
    });
    return out === 'no-folder' ? null : out;
  }

  /** The mailbox's Junk folder: SPECIAL-USE \Junk, else `name` (any case), created when missing. */
  private async junkFolder(client: ImapFlow, name: string): Promise<string> {
    const folders = await client.list();
    const special = folders.find((f) => f.specialUse === '\\Junk');
    if (special) return special.path;
    const named = folders.find((f) => f.path.toLowerCase() === name.toLowerCase());
    if (named) return named.path;
    const created = await client.mailboxCreate(name);
    return created.path;
  }

  /** The folder's current UIDVALIDITY and UIDNEXT (STATUS, no SELECT), or null when it does not exist. */
  async folderStatus(mailbox: string, folder: string): Promise<{ uidValidity: number; uidNext: number } | null> {
    const session = await this.acquire(mailbox);
    try {
      const st = await session.client.status(folder, { uidValidity: true, uidNext: true });
      // imapflow answers false (not an error) when the command failed for another reason.
      if (!st) throw new ImapError('IMAP_ERROR', `STATUS ${folder} failed`, true);
      return { uidValidity: Number(st.uidValidity), uidNext: Number(st.uidNext) };
    } catch (err) {
      if (isNoSuchFolder(err)) return null;
      throw classifyImapError(err, this.loginFor(mailbox), this.opts);
    } finally {
      this.releaseSession(session);
    }
  }

  /**
   * The server without a login: connection, TLS and CAPABILITY (imap-probe.ts). The answer is reused
   * for a few seconds, so polling /ready opens at most one connection per PROBE_REUSE_MS.
   */
  probe(): Promise<ProbeResult> {
    const now = Date.now();
    if (!this.lastProbe || now - this.lastProbe.at > PROBE_REUSE_MS) {
      const result = probeImap(this.opts).catch((err) => {
        throw classifyImapError(err, this.opts.masterUser ?? '', this.opts);
      });
      result.catch(() => {});
      this.lastProbe = { at: now, result };
    }
    return this.lastProbe.result;
  }

  /**
   * For readiness: the server answers as a login would need (probe), and the last real master login
   * did not fail. Never tries a login of its own: a login expected to fail feeds ban tools.
   */
  async readiness(): Promise<{ probe: ProbeResult; login: LoginState }> {
    if (!this.configured) throw this.notConfigured();
    const probe = await this.probe();
    const login = this.login;
    if (login.outcome === 'failed') throw new ImapError(login.code ?? 'IMAP_AUTH_FAILED', `last master login failed at ${login.at!.toISOString()}: ${login.error}`, true);
    return { probe, login };
  }

  /** One master login as `mailbox` (for `mailsight check --mailbox`): resolves when it works. */
  async tryLogin(mailbox: string): Promise<void> {
    const session = await this.acquire(mailbox);
    this.releaseSession(session);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.sessions.values()].map((s) => this.logout(s)));
    await Promise.all([...this.loggingOut]);
    for (const w of this.waiting.splice(0)) w();
  }
}
