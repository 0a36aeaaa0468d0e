import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { certificateNames, imapConnection, type ImapTlsSettings } from './imap-tls.js';

/**
 * The IMAP server's answer to a client that does not log in: greeting, CAPABILITY, STARTTLS and
 * the TLS handshake, then LOGOUT. Readiness and `mailsight check` use it, because a login that is
 * expected to fail leaves an `auth failed` line in Dovecot's log, feeds its auth penalty and
 * fail2ban or Mailcow's netfilter, and can get mailsight's address banned.
 */

export interface ProbeResult {
  tls: 'implicit' | 'starttls' | 'none';
  /** Capabilities after TLS, as a login would see them. */
  capabilities: string[];
  /** The names the server's certificate is valid for, when TLS was used. */
  certificateNames?: string[];
  /** Whether the certificate was checked (IMAP_TLS_VERIFY). */
  verified?: boolean;
  ms: number;
}

export class ProbeError extends Error {
  constructor(
    message: string,
    readonly code: string,
    options?: ErrorOptions & { tlsFailed?: boolean },
  ) {
    super(message, options);
    if (options?.tlsFailed) (this as { tlsFailed?: boolean }).tlsFailed = true;
  }
}

/** Reads tagged IMAP responses line by line from a socket (enough for CAPABILITY/STARTTLS/LOGOUT). */
class LineReader {
  private buffer = '';
  private waiter?: () => void;
  private failure?: Error;
  constructor(private socket: Socket) {
    this.attach(socket);
  }

  attach(socket: Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.buffer += d.toString('latin1');
      this.waiter?.();
    });
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new ProbeError('the server closed the connection', 'EConnectionClosed')));
  }

  detach() {
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('error');
    this.socket.removeAllListeners('close');
  }

  fail(err: Error) {
    this.failure ??= err;
    this.waiter?.();
  }

  async line(): Promise<string> {
    for (;;) {
      const nl = this.buffer.indexOf('\r\n');
      if (nl >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 2);
        return line;
      }
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => (this.waiter = resolve));
      this.waiter = undefined;
    }
  }

  /** Untagged lines until the tagged answer; throws unless it is OK. */
  async command(tag: string, command: string): Promise<string[]> {
    this.socket.write(`${tag} ${command}\r\n`);
    const untagged: string[] = [];
    for (;;) {
      const line = await this.line();
      if (line.startsWith(`${tag} `)) {
        if (!/^\S+ OK/i.test(line)) throw new ProbeError(`${command} answered: ${line.slice(tag.length + 1)}`, 'IMAP_COMMAND_FAILED');
        return untagged;
      }
      untagged.push(line);
    }
  }
}

const capabilitiesIn = (lines: string[]) => {
  const line = lines.find((l) => /^\* CAPABILITY /i.test(l)) ?? lines.map((l) => /\[CAPABILITY ([^\]]*)\]/i.exec(l)?.[0]).find(Boolean);
  if (!line) return [];
  return line
    .replace(/^\* CAPABILITY /i, '')
    .replace(/^\[CAPABILITY |\]$/gi, '')
    .split(' ')
    .filter(Boolean)
    .map((c) => c.toUpperCase());
};

function upgrade(socket: Socket, s: ImapTlsSettings, host: string): Promise<TLSSocket> {
  const { tls } = imapConnection(s);
  return new Promise((resolve, reject) => {
    const secure = tlsConnect({ ...tls, socket, host, servername: tls.servername ?? (isIp(host) ? undefined : host) }, () => resolve(secure));
    secure.once('error', (err) => reject(Object.assign(err, { tlsFailed: true })));
  });
}

export async function probeImap(s: ImapTlsSettings, timeoutMs = 5_000): Promise<ProbeResult> {
  const started = performance.now();
  const { tls } = imapConnection(s);
  let socket: Socket;
  if (s.secure) {
    socket = tlsConnect({ ...tls, host: s.host, port: s.port, servername: tls.servername ?? (isIp(s.host) ? undefined : s.host) });
  } else {
    socket = netConnect({ host: s.host, port: s.port });
  }
  const timer = setTimeout(() => socket.destroy(new ProbeError(`no answer from ${s.host}:${s.port} within ${timeoutMs} ms`, 'ETIMEOUT')), timeoutMs);
  try {
    if (s.secure) {
      await new Promise<void>((resolve, reject) => {
        (socket as TLSSocket).once('secureConnect', () => resolve());
        socket.once('error', (err) => reject(Object.assign(err, { tlsFailed: true })));
      });
    }
    let reader = new LineReader(socket);
    const greeting = await reader.line();
    if (!/^\* (OK|PREAUTH)/i.test(greeting)) throw new ProbeError(`not an IMAP greeting: ${greeting.slice(0, 100)}`, 'IMAP_NOT_IMAP');
    let capabilities = capabilitiesIn(await reader.command('p1', 'CAPABILITY'));
    let mode: ProbeResult['tls'] = s.secure ? 'implicit' : 'none';
    if (!s.secure && s.starttls !== 'never') {
      if (capabilities.includes('STARTTLS')) {
        await reader.command('p2', 'STARTTLS');
        reader.detach();
        socket = await upgrade(socket, s, s.host);
        reader = new LineReader(socket);
        capabilities = capabilitiesIn(await reader.command('p3', 'CAPABILITY'));
        mode = 'starttls';
      } else if (s.starttls === 'required') {
        throw new ProbeError('Server does not support STARTTLS', 'IMAP_NO_STARTTLS', { tlsFailed: true });
      }
    }
    const result: ProbeResult = { tls: mode, capabilities, ms: 0 };
    if (mode !== 'none') {
      result.certificateNames = certificateNames((socket as TLSSocket).getPeerCertificate());
      result.verified = s.tlsVerify;
    }
    // Dovecot with disable_plaintext_auth = yes says LOGINDISABLED on a connection without TLS.
    if (capabilities.includes('LOGINDISABLED')) throw new ProbeError('Login is disabled: LOGINDISABLED', 'IMAP_LOGINDISABLED');
    await reader.command('p9', 'LOGOUT').catch(() => {});
    result.ms = Math.round(performance.now() - started);
    return result;
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}

const isIp = (host: string) => /^[\d.]+$|:/.test(host);
