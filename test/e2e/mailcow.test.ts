import { execFile, execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MAILCOW_ENV_MARK, MAILCOW_EXTRA_MARK } from '../../src/cli/dovecot-config.js';
import { emailAnalysis, processingQueue } from '../../src/db/schema.js';
import { makeCerts, type Certs } from '../support/certs.js';
import { loadCorpus } from '../support/corpus.js';
import { DOVECOT_VERSIONS, dovecotAvailable, type RenderContext } from '../support/dovecot.js';
import { deliver } from '../support/lmtp.js';
import { MAILCOW_PLUGINS_LMTP, mailcowDovecot } from '../support/mailcow.js';
import { PUSH_PASSWORD } from '../support/mailsight.js';
import { describeWith, postgresAvailable } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

/**
 * mailsight against a Dovecot shaped like Mailcow's (test/support/mailcow.ts), with the block that
 * `mailsight dovecot-config --mailcow` prints pasted into its extra.conf unchanged, and mailsight
 * configured with the .env lines it prints: master user `mailsight@mailcow.local`, STARTTLS
 * required, the certificate checked against the public host name.
 */

const pg = await postgresAvailable();
const ready = dovecotAvailable() && pg;
const run = promisify(execFile);
const BIN = new URL('../../bin/mailsight.js', import.meta.url).pathname;
const USERS = ['alice@example.org', 'bob@example.org'];
const HOSTNAME = 'mail.example.org';

/** `mailsight dovecot-config --mailcow`, split into its extra.conf block and its .env lines. */
function dovecotConfigMailcow(ctx: RenderContext) {
  const url = new URL(ctx.push!.url).origin;
  const out = execFileSync(
    process.execPath,
    [BIN, 'dovecot-config', '--mailcow', '--dovecot', ctx.version, '--url', url, '--password', PUSH_PASSWORD, '--master-user', 'mailsight', '--hostname', HOSTNAME],
    { encoding: 'utf8' },
  );
  const lines = out.split('\n');
  const extraAt = lines.findIndex((l) => l.startsWith(MAILCOW_EXTRA_MARK));
  const envAt = lines.findIndex((l) => l.startsWith(MAILCOW_ENV_MARK));
  const env = Object.fromEntries(
    lines
      .slice(envAt + 1)
      .filter((l) => /^[A-Z_]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  return { extraConf: lines.slice(extraAt + 1, envAt).join('\n'), env };
}

for (const version of DOVECOT_VERSIONS) {
  describeWith(`Dovecot ${version} and PostgreSQL`, dovecotAvailable(version) && pg)(`Mailcow as it ships, Dovecot ${version}`, () => {
    let certs: Certs;
    let stack: Stack;
    let printed: ReturnType<typeof dovecotConfigMailcow>;
    beforeAll(async () => {
      certs = makeCerts(HOSTNAME);
      const render = (ctx: RenderContext) => {
        printed = dovecotConfigMailcow(ctx);
        return mailcowDovecot({ cert: certs.other.cert, key: certs.other.key, extraConf: printed.extraConf })(ctx);
      };
      stack = await startStack({
        users: USERS,
        // 127.0.0.2: a client from 127.0.0.1 is not "local" to Dovecot, so plaintext is refused as on Mailcow's network.
        dovecot: { version, render, listen: '127.0.0.2', masterUser: 'mailsight@mailcow.local' },
        mailsight: { imap: { starttls: 'required', tlsServername: HOSTNAME, tlsCaFile: certs.ca } },
      });
    });
    afterAll(async () => {
      await stack?.close();
      certs?.cleanup();
    });

    it('prints the .env lines that fit Mailcow: master user NAME@mailcow.local, STARTTLS required, the public name', () => {
      expect(printed.env).toMatchObject({
        IMAP_HOST: 'dovecot',
        IMAP_PORT: '143',
        IMAP_STARTTLS: 'required',
        IMAP_TLS_SERVERNAME: HOSTNAME,
        IMAP_MASTER_USER: 'mailsight@mailcow.local',
        IMAP_MASTER_SEPARATOR: '*',
      });
      // The test's mailsight runs with exactly those settings (the host and port are the test Dovecot's).
      expect(stack.ms.config.imap).toMatchObject({ starttls: 'required', tlsServername: HOSTNAME, masterUser: printed.env.IMAP_MASTER_USER });
    });

    it('keeps Mailcow\'s LMTP plugins and adds push_notification', async () => {
      const stdout = await stack.dc.doveconf(['-x', '-f', 'protocol=lmtp', '-h', 'mail_plugins']);
      const plugins = stdout.trim().split(/\s+/);
      // 2.4 names zlib mail_compress, and has no listescape or replication.
      const expected = version === '2.3' ? MAILCOW_PLUGINS_LMTP.split(' ') : ['quota', 'sieve', 'acl', 'mail_compress', 'mail_crypt', 'notify'];
      for (const p of [...expected, 'push_notification']) expect(plugins).toContain(p);
    });

    it('analyses deliveries, fetched over STARTTLS as the Mailcow master user; the mail on disk is encrypted', async () => {
      const corpus = loadCorpus(6);
      for (const [i, m] of corpus.entries()) await deliver(stack.dc.lmtpPort, m.raw, [USERS[i % 2]!], stack.dc.host);
      for (const user of USERS) {
        const rows = await waitFor(
          () => stack.db.orm.select().from(emailAnalysis).where(eq(emailAnalysis.mailbox, user)),
          (r) => r.length >= 3,
          30_000,
        );
        expect(rows).toHaveLength(3);
        expect(rows.every((r) => r.summary && r.verdict)).toBe(true);
      }
      expect(stack.ms.imap.stats.logins).toBe(2);
      // mail_crypt: the subject is nowhere in the stored files, so IMAP is the only way in.
      const cur = join(stack.dc.hostDir, 'vmail/example.org/alice/cur');
      const newDir = join(stack.dc.hostDir, 'vmail/example.org/alice/new');
      const files = [...readdirSync(cur).map((f) => join(cur, f)), ...readdirSync(newDir).map((f) => join(newDir, f))];
      expect(files.length).toBe(3);
      const subject = /^Subject: (.{8,40})/m.exec(corpus[0]!.raw.toString('latin1'))![1]!.trim();
      for (const f of files) expect(readFileSync(f).includes(Buffer.from(subject))).toBe(false);
      expect(stack.dc.log()).not.toMatch(/auth failed/i);
    });
  });
}

describeWith('Dovecot and PostgreSQL', ready)('a Dovecot whose ACL plugin gives the master login no rights', () => {
  let certs: Certs;
  let stack: Stack;
  beforeAll(async () => {
    certs = makeCerts(HOSTNAME);
    stack = await startStack({
      users: USERS,
      dovecot: {
        render: (ctx) => mailcowDovecot({ cert: certs.other.cert, key: certs.other.key, extraConf: dovecotConfigMailcow(ctx).extraConf, withoutAclUser: true })(ctx),
        listen: '127.0.0.2',
        masterUser: 'mailsight@mailcow.local',
      },
      mailsight: { imap: { starttls: 'required', tlsServername: HOSTNAME, tlsCaFile: certs.ca } },
    });
  });
  afterAll(async () => {
    await stack?.close();
    certs?.cleanup();
  });

  it('does not record the messages as gone: they wait, and the fix (acl_user = %u) is named', async () => {
    await deliver(stack.dc.lmtpPort, loadCorpus(1)[0]!.raw, [USERS[0]!], stack.dc.host);
    const jobs = await waitFor(
      () => stack.db.orm.select().from(processingQueue).where(eq(processingQueue.mailbox, USERS[0]!)),
      (r) => r.some((j) => j.lastError),
    );
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.state).not.toBe('gone');
    expect(jobs[0]!.attempts).toBe(0);
    expect(jobs[0]!.lastError).toMatch(/IMAP_NO_ACCESS: .*sees no INBOX.*acl_user = %u/);
  });
});
