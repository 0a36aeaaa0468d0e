import { ImapFlow } from 'imapflow';
import { classifyImapError, type ImapOptions } from './imap.js';
import { imapConnection } from './imap-tls.js';

/**
 * A mailbox owner's own password, checked the only way mailsight may: one IMAP LOGIN against
 * Dovecot, over the same connection settings (TLS, CA, server name) as the master user's sessions,
 * then LOGOUT. Nothing of the password is kept.
 *
 * The client's address goes to Dovecot in the ID command (`x-originating-ip`, sent before LOGIN).
 * Dovecot uses it when mailsight's address is in `login_trusted_networks`: then Dovecot's auth
 * penalty and log lines, and Mailcow's netfilter bans, fall on the client that guessed, not on
 * mailsight (whose master logins every mailbox depends on).
 */
export type MailLoginOutcome = 'ok' | 'refused';

const LOGIN_TIMEOUT_MS = 10_000;

export async function checkMailPassword(opts: ImapOptions, user: string, password: string, clientAddress?: string): Promise<MailLoginOutcome> {
  // `victim*master` is a master login: the master password is never guessed through the dashboard.
  if (!password || user.includes(opts.masterSeparator)) return 'refused';
  const { secure, doSTARTTLS, tls } = imapConnection(opts);
  const client = new ImapFlow({
    host: opts.host,
    port: opts.port,
    secure,
    doSTARTTLS,
    tls,
    auth: { user, pass: password },
    logger: false,
    verifyOnly: true,
    connectionTimeout: LOGIN_TIMEOUT_MS,
    greetingTimeout: LOGIN_TIMEOUT_MS,
    socketTimeout: LOGIN_TIMEOUT_MS,
    clientInfo: { name: 'mailsight', ...(clientAddress ? { 'x-originating-ip': clientAddress } : {}) },
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return 'ok';
  } catch (err) {
    const e = classifyImapError(err, user, opts);
    // Wrong password or no such user; anything else (server down, TLS) is not the user's doing.
    if (e.code === 'IMAP_AUTH_FAILED') return 'refused';
    throw e;
  } finally {
    client.close();
  }
}
