import { ImapFlow } from 'imapflow';
import type { Logger } from '../logger.js';
import { JobError, Rest } from '../queue/job-error.js';
import type { ActionPlan, ActOutcome } from './actions.js';

export type ImapErrorCode = 'IMAP_NOT_CONFIGURED' | 'IMAP_AUTH_FAILED' | 'IMAP_UNAVAILABLE' | 'IMAP_NOT_YET_VISIBLE' | 'IMAP_ERROR';

/** Pauses between NOOPs while a just-pushed UID is not visible yet (about 1.5 s in all). */
const VISIBILITY_POLLS_MS = [0, 50, 100, 200, 400, 800];

/** Transient ones (server down, connection lost, auth backend busy) retry; the rest fail the job. */
export class ImapError extends JobError<ImapErrorCode> {}

export interface ImapOptions {
  host: string;
  port: number;
  secure: boolean;
  masterUser?: string;
  masterPassword?: string;
  masterSeparator: string;
  maxSessions: number;
  idleCloseSec: number;
  maxFetchBytes: number;
}

export type FetchOutcome =
  | { status: 'ok'; raw: Buffer; size: number; truncated: boolean; ms: number }
  | { status: 'gone' }
  | { status: 'stale'; uidvalidity: number };

interface Session {
  mailbox: string;
  client: ImapFlow;
  ready: Promise<void>;
  users: number;
  idleTimer?: NodeJS.Timeout;
}

/** Connection-level failures: worth a retry later. */
/** Errors that say the server cannot be reached (as opposed to a refused login or a busy mailbox). */
const NETWORK_CODES = new Set(['NoConnection', 'CONNECT_TIMEOUT', 'GREETING_TIMEOUT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEOUT', 'ClosedAfterConnectText']);
/** Errors a later attempt may not meet: the network ones, and a connection or lock that went wrong once. */
const TRANSIENT_CODES = new Set([...NETWORK_CODES, 'EConnectionClosed', 'ClosedAfterConnectTLS', 'UPGRADE_TIMEOUT', 'LockTimeout', 'ETHROTTLE']);

const isNetworkError = (err: unknown) => NETWORK_CODES.has((err as { code?: string })?.code ?? '');
/** The IMAP server is left alone this long after it could not be reached, doubling per failure in a row. */
const SERVER_REST_BASE_MS = 1_000;
const SERVER_REST_MAX_MS = 30_000;

export function classifyImapError(err: unknown, login: string): ImapError {
  if (err instanceof ImapError) return err;
  const e = err as { code?: string; message?: string; authenticationFailed?: boolean; serverResponseCode?: string; responseText?: string };
  const text = e?.responseText ?? e?.message ?? String(err);
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
  readonly stats = { logins: 0, fetches: 0, bytesFetched: 0 };
  private readonly sessions = new Map<string, Session>();
  private readonly waiting: (() => void)[] = [];
  /** Logouts started by eviction or idle timers; close() awaits them. */
  private readonly loggingOut = new Set<Promise<void>>();
  private closed = false;
  /** Set when the server could not be reached: new sessions wait it out instead of each trying. */
  private readonly serverRest = new Rest(SERVER_REST_BASE_MS, SERVER_REST_MAX_MS);

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

  private newClient(mailbox: string): ImapFlow {
    return new ImapFlow({
      host: this.opts.host,
      port: this.opts.port,
      secure: this.opts.secure,
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

  private async acquire(mailbox: string): Promise<Session> {
    if (this.closed) throw new ImapError('IMAP_UNAVAILABLE', 'IMAP sessions are closed (shutting down)', true);
    if (!this.configured) throw new ImapError('IMAP_NOT_CONFIGURED', 'IMAP_MASTER_USER and IMAP_MASTER_PASSWORD are not set', true);
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
          throw classifyImapError(err, this.loginFor(mailbox));
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
      const resting = this.serverRest.remaining();
      if (resting > 0) {
        throw new ImapError('IMAP_UNAVAILABLE', `IMAP server unreachable recently; trying again in ${Math.ceil(resting / 1000)} s`, true, { outageMs: resting });
      }
      const client = this.newClient(mailbox);
      const session: Session = { mailbox, client, users: 1, ready: Promise.resolve() };
      client.on('error', (err: Error) => this.logger.warn({ mailbox, err: err.message }, 'imap session error'));
      client.on('close', () => this.drop(session));
      session.ready = client.connect().then(() => {
        this.stats.logins++;
      });
      this.sessions.set(mailbox, session);
      try {
        await session.ready;
        this.serverRest.ok();
      } catch (err) {
        session.users--;
        this.drop(session);
        client.close();
        const e = classifyImapError(err, this.loginFor(mailbox));
        if (!isNetworkError(err)) throw e;
        // The server cannot be reached at all: an outage, not this message's fault. Jobs wait for it
        // (without spending attempts) instead of each trying to connect.
        this.serverRest.failed();
        throw new ImapError(e.code, e.message, true, { cause: err, outageMs: this.serverRest.remaining() });
      }
      return session;
    }
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
      throw classifyImapError(err, this.loginFor(mailbox));
    } finally {
      this.releaseSession(session);
    }
  }

  /**
   * The message's first `maxFetchBytes` bytes by UID (BODY.PEEK[]<0.n>), its full size, or why not:
   * `gone` (expunged, or the folder no longer exists) or `stale` (UIDVALIDITY changed, the UID means
   * nothing now).
   */
  async fetchMessage(key: { mailbox: string; folder: string; uidvalidity: number; uid: number }): Promise<FetchOutcome> {
    const started = performance.now();
    const out = await this.withFolder(key.mailbox, key.folder, async (client, uidValidity): Promise<FetchOutcome> => {
      if (uidValidity !== key.uidvalidity) return { status: 'stale', uidvalidity: uidValidity };
      const msg = await this.fetchVisible(client, key.folder, key.uid);
      if (!msg) return { status: 'gone' };
      this.stats.fetches++;
      this.stats.bytesFetched += msg.source.length;
      const size = msg.size ?? msg.source.length;
      return { status: 'ok', raw: msg.source, size, truncated: size > msg.source.length, ms: Math.round(performance.now() - started) };
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
      const msg = await client.fetchOne(String(uid), { uid: true, size: true, source: { start: 0, maxLength: this.opts.maxFetchBytes } }, { uid: true });
      if (msg && msg.source) return { source: msg.source, size: msg.size };
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
      await client.noop(); // a reused session sees mail that arrived since only after asking
      const uidNext = Number(client.mailbox ? client.mailbox.uidNext : 0);
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
   * message's UID in the new folder (COPYUID) when the server gives it.
   */
  async act(key: { mailbox: string; folder: string; uidvalidity: number; uid: number }, plan: ActionPlan): Promise<ActOutcome> {
    const out = await this.withFolder(
      key.mailbox,
      key.folder,
      async (client, uidValidity): Promise<ActOutcome> => {
        if (uidValidity !== key.uidvalidity) return { status: 'stale', uidvalidity: uidValidity };
        const uid = String(key.uid);
        const present = await client.fetchOne(uid, { uid: true }, { uid: true });
        if (!present) return { status: 'gone' };
        if (plan.keywords.length) await client.messageFlagsAdd(uid, plan.keywords, { uid: true });
        if (!plan.moveToJunk) return { status: 'done', keywords: plan.keywords };
        const target = await this.junkFolder(client, plan.junkFolder);
        if (target === key.folder) return { status: 'done', keywords: plan.keywords };
        if (plan.markSeen) await client.messageFlagsAdd(uid, ['\\Seen'], { uid: true });
        const moved = await client.messageMove(uid, target, { uid: true });
        const newUid = moved && moved.uidMap ? moved.uidMap.get(key.uid) : undefined;
        return { status: 'done', keywords: plan.keywords, movedTo: { folder: target, uid: newUid } };
      },
      { writable: true },
    );
    return out === 'no-folder' ? { status: 'gone' } : out;
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
      throw classifyImapError(err, this.loginFor(mailbox));
    } finally {
      this.releaseSession(session);
    }
  }

  /** For /ready: the server answers and, when a mailbox is named, the master login works. */
  async check(mailbox?: string): Promise<void> {
    if (!this.configured) throw new ImapError('IMAP_NOT_CONFIGURED', 'IMAP_MASTER_USER and IMAP_MASTER_PASSWORD are not set', false);
    if (mailbox) {
      const session = await this.acquire(mailbox);
      this.releaseSession(session);
      return;
    }
    const client = this.newClient('');
    client.on('error', () => {});
    try {
      // No mailbox known yet: a login as the bare master user still proves the server answers.
      await client.connect().catch((err) => {
        const e = classifyImapError(err, this.opts.masterUser ?? '');
        if (e.code !== 'IMAP_AUTH_FAILED') throw e;
      });
    } finally {
      client.close();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.sessions.values()].map((s) => this.logout(s)));
    await Promise.all([...this.loggingOut]);
    for (const w of this.waiting.splice(0)) w();
  }
}
