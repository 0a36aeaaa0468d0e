import { readFileSync } from 'node:fs';
import { rootCertificates, type ConnectionOptions } from 'node:tls';

/**
 * How mailsight reaches Dovecot over TLS, and what a TLS failure means for an operator. Shared by
 * the master-user sessions (imap.ts) and the readiness probe (imap-probe.ts), so both connect
 * exactly alike and name a problem alike.
 */

export interface ImapTlsSettings {
  host: string;
  port: number;
  /** Implicit TLS (993). */
  secure: boolean;
  starttls: 'auto' | 'required' | 'never';
  tlsCaFile?: string;
  tlsServername?: string;
  tlsVerify: boolean;
}

export interface ImapConnection {
  secure: boolean;
  /** imapflow's switch: true requires STARTTLS, false never tries it, undefined upgrades when offered. */
  doSTARTTLS?: boolean;
  tls: ConnectionOptions;
}

/** The PEM of IMAP_TLS_CA_FILE, read once per file (config validation already proved it readable). */
const caCache = new Map<string, string>();
function extraCa(file: string): string {
  let pem = caCache.get(file);
  if (pem === undefined) {
    pem = readFileSync(file, 'utf8');
    caCache.set(file, pem);
  }
  return pem;
}

export function imapConnection(s: ImapTlsSettings): ImapConnection {
  const tls: ConnectionOptions = { minVersion: 'TLSv1.2', rejectUnauthorized: s.tlsVerify };
  // Node's `ca` replaces the public roots; keep them, so a Let's Encrypt certificate still verifies.
  if (s.tlsCaFile) tls.ca = [...rootCertificates, extraCa(s.tlsCaFile)];
  if (s.tlsServername) tls.servername = s.tlsServername;
  const doSTARTTLS = s.secure || s.starttls === 'auto' ? undefined : s.starttls === 'required';
  return { secure: s.secure, doSTARTTLS, tls };
}

/** What went wrong with TLS or with the server's refusal of plaintext, for an operator to fix. */
export type TlsProblemCode =
  | 'IMAP_TLS_UNTRUSTED'
  | 'IMAP_TLS_NAME_MISMATCH'
  | 'IMAP_TLS_EXPIRED'
  | 'IMAP_TLS_UNAVAILABLE'
  | 'IMAP_TLS_FAILED'
  | 'IMAP_PLAINTEXT_REFUSED';

export interface TlsProblem {
  code: TlsProblemCode;
  message: string;
  fix: string;
}

const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_UNTRUSTED',
]);
const EXPIRED = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

/** The DNS names and addresses a certificate is valid for (its subjectAltName, else its CN). */
export function certificateNames(cert: { subjectaltname?: string; subject?: { CN?: string | string[] } } | undefined): string[] {
  if (!cert) return [];
  const alt = (cert.subjectaltname ?? '')
    .split(/,\s*/)
    .map((n) => n.replace(/^(DNS|IP Address):/, ''))
    .filter(Boolean);
  if (alt.length) return alt;
  const cn = cert.subject?.CN;
  return cn ? [cn].flat() : [];
}

/**
 * Recognises a TLS failure (Node's certificate errors, imapflow's STARTTLS refusals) or the server's
 * refusal to take a password without TLS, and says how to fix it. Undefined for anything else.
 */
export function tlsProblem(err: unknown, s: ImapTlsSettings): TlsProblem | undefined {
  const e = err as { code?: string; message?: string; reason?: string; cert?: any; tlsFailed?: boolean; responseText?: string; serverResponseCode?: string; authenticationFailed?: boolean };
  if (!e) return undefined;
  const code = e.code ?? '';
  const where = `${s.host}:${s.port}`;
  if (UNTRUSTED.has(code)) {
    return {
      code: 'IMAP_TLS_UNTRUSTED',
      message: `the certificate of ${where} is not signed by a trusted CA (${code === 'DEPTH_ZERO_SELF_SIGNED_CERT' ? 'self-signed' : code})`,
      fix: 'set IMAP_TLS_CA_FILE to the PEM of the CA that signed it (for a self-signed certificate: the certificate itself, e.g. /etc/ssl/certs/ssl-cert-snakeoil.pem), or IMAP_TLS_VERIFY=false to skip the check for IMAP only',
    };
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const names = certificateNames(e.cert);
    const checked = s.tlsServername ?? s.host;
    return {
      code: 'IMAP_TLS_NAME_MISMATCH',
      message: `the certificate of ${where} is for ${names.length ? names.join(', ') : 'other names'}, not for ${checked}`,
      fix: names.length
        ? `set IMAP_TLS_SERVERNAME to the name the certificate carries (${names.filter((n) => !n.startsWith('*')).join(' or ') || names[0]}); Mailcow: your MAILCOW_HOSTNAME`
        : 'set IMAP_TLS_SERVERNAME to the name the certificate carries',
    };
  }
  if (EXPIRED.has(code)) {
    return {
      code: 'IMAP_TLS_EXPIRED',
      message: `the certificate of ${where} ${code === 'CERT_HAS_EXPIRED' ? 'has expired' : 'is not valid yet'}${e.cert?.valid_to ? ` (valid ${e.cert.valid_from} to ${e.cert.valid_to})` : ''}`,
      fix: 'renew the certificate of Dovecot (ssl_cert), or check this machine\'s clock',
    };
  }
  if (e.tlsFailed && /does not support STARTTLS/i.test(e.message ?? '')) {
    return {
      code: 'IMAP_TLS_UNAVAILABLE',
      message: `${where} offers no STARTTLS, and IMAP_STARTTLS=required forbids a login without TLS`,
      fix: 'enable TLS in Dovecot (ssl = yes with ssl_cert/ssl_key), or use implicit TLS (IMAP_SECURE=true, IMAP_PORT=993); on a trusted local connection only: IMAP_STARTTLS=auto',
    };
  }
  const text = `${e.responseText ?? ''} ${e.message ?? ''}`;
  if (e.serverResponseCode === 'PRIVACYREQUIRED' || /plaintext authentication disallowed|login is disabled|LOGINDISABLED/i.test(text)) {
    return {
      code: 'IMAP_PLAINTEXT_REFUSED',
      message: `${where} refuses logins without TLS (disable_plaintext_auth = yes)${s.starttls === 'never' ? ' and IMAP_STARTTLS=never' : ''}`,
      fix: s.starttls === 'never'
        ? 'set IMAP_STARTTLS=required (or auto), with IMAP_TLS_CA_FILE / IMAP_TLS_SERVERNAME as the certificate needs'
        : 'enable TLS: IMAP_STARTTLS=required on port 143, or IMAP_SECURE=true on port 993',
    };
  }
  if (e.tlsFailed || /^ERR_SSL_|^ERR_TLS_|EPROTO/.test(code) || /wrong version number|handshake|ssl3_get_record|tlsv1 alert/i.test(e.message ?? '')) {
    const mismatch = /wrong version number|packet length too long|http request/i.test(e.message ?? '');
    return {
      code: 'IMAP_TLS_FAILED',
      message: `TLS with ${where} failed: ${e.reason ?? e.message ?? code}`,
      fix: mismatch
        ? s.secure
          ? `IMAP_SECURE=true speaks TLS from the first byte, but ${where} does not: use port 993 (or IMAP_SECURE=false for 143 with STARTTLS)`
          : `${where} speaks TLS from the first byte: set IMAP_SECURE=true`
        : 'check Dovecot\'s ssl settings (ssl_min_protocol, ssl_cert) and its log',
    };
  }
  return undefined;
}
