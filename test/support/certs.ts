import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Certificates made with openssl for the TLS tests: a self-signed one (Debian's snakeoil case) and a
 * private CA with a server certificate for a name other than the one mailsight connects to (Mailcow's
 * case: the certificate is for the public host name, mailsight connects to `dovecot`).
 */

export interface Certs {
  dir: string;
  /** A self-signed certificate for localhost and 127.0.0.1, and its key (it is its own CA). */
  selfSigned: { cert: string; key: string };
  /** A private CA's certificate, and a server certificate it signed for `otherName` only. */
  ca: string;
  other: { cert: string; key: string; name: string };
  cleanup(): void;
}

const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });

export function makeCerts(otherName = 'mail.example.test'): Certs {
  const dir = mkdtempSync(join(tmpdir(), 'mailsight-certs-'));
  const p = (f: string) => join(dir, f);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', p('self.key'), '-out', p('self.pem'), '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1']);
  openssl(['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.pem'), '-days', '2', '-subj', '/CN=mailsight test CA']);
  openssl(['req', ...ec, '-keyout', p('other.key'), '-out', p('other.csr'), '-subj', `/CN=${otherName}`]);
  writeFileSync(p('other.ext'), `subjectAltName=DNS:${otherName}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n`);
  openssl(['x509', '-req', '-in', p('other.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p('other.pem'), '-days', '2', '-extfile', p('other.ext')]);
  return {
    dir,
    selfSigned: { cert: p('self.pem'), key: p('self.key') },
    ca: p('ca.pem'),
    other: { cert: p('other.pem'), key: p('other.key'), name: otherName },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
