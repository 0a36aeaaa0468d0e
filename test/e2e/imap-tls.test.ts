import { spawn } from 'node:child_process';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emailAnalysis, processingQueue } from '../../src/db/schema.js';
import { makeCerts, type Certs } from '../support/certs.js';
import { dashboardSignIn } from '../support/dashboard.js';
import { loadCorpus } from '../support/corpus.js';
import { dovecotAvailable } from '../support/dovecot.js';
import { deliver } from '../support/lmtp.js';
import { describeWith, postgresAvailable } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

/**
 * The TLS matrix of the Dovecots operators run: a self-signed certificate (Debian's snakeoil), a
 * certificate for another name (Mailcow), implicit TLS, TLS required with plaintext refused, and
 * STARTTLS required against a server without TLS. Each delivers corpus mail and finds it analysed,
 * or finds the jobs waiting with the problem named, and analysed once the setting is fixed.
 */

const ready = dovecotAvailable() && (await postgresAvailable());
const ALICE = 'alice@example.test';
const ADMIN_KEY = 'tls-test-admin-key-0123456789';
const corpus = loadCorpus(12);
let next = 0;

async function deliverOne(stack: Stack): Promise<number> {
  await deliver(stack.dc.lmtpPort, corpus[next++ % corpus.length]!.raw, [ALICE], stack.dc.host);
  return stack.db.orm.select().from(processingQueue).where(eq(processingQueue.mailbox, ALICE)).then((rows) => rows.length);
}

/** Delivers one message and waits for its analysis row. */
async function deliveredAndAnalysed(stack: Stack) {
  const jobs = await deliverOne(stack);
  const rows = await waitFor(
    () => stack.db.orm.select().from(emailAnalysis).where(eq(emailAnalysis.mailbox, ALICE)),
    (r) => r.length >= jobs,
    20_000,
  );
  expect(rows.length).toBe(jobs);
}

async function health(stack: Stack): Promise<any> {
  const res = await fetch(`${stack.ms.baseUrl}/api/v1/get/llm/health`, { headers: { 'X-API-Key': ADMIN_KEY } });
  return (await res.json()).components.imap;
}

/** Waits until the newest job has failed at least once, and returns its last error. */
async function jobError(stack: Stack): Promise<{ state: string; attempts: number; lastError: string | null }> {
  const rows = await waitFor(
    () => stack.db.orm.select().from(processingQueue).where(eq(processingQueue.mailbox, ALICE)),
    (r) => r.some((j) => j.lastError),
    15_000,
  );
  const job = rows.find((j) => j.lastError) ?? rows.at(-1)!;
  return { state: job.state, attempts: job.attempts, lastError: job.lastError };
}

const BIN = new URL('../../bin/mailsight.js', import.meta.url).pathname;

/** `mailsight check --mailbox alice` with the stack's settings and `extra`. */
function checkCli(stack: Stack, extra: Record<string, string>): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [BIN, 'check', '--mailbox', ALICE, '--url', stack.ms.baseUrl], { env: { ...stack.env(), ...extra } });
    let stdout = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.on('close', (code) => resolve({ code, stdout }));
  });
}

describeWith('Dovecot and PostgreSQL', ready)('IMAP over TLS', () => {
  let certs: Certs;
  beforeAll(() => {
    certs = makeCerts();
  });
  afterAll(() => certs?.cleanup());

  describe('STARTTLS with a self-signed certificate (Debian\'s stock Dovecot)', () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack({
        users: [ALICE],
        dovecot: { tls: { cert: certs.selfSigned.cert, key: certs.selfSigned.key } },
        mailsight: { apiKey: ADMIN_KEY },
      });
    });
    afterAll(async () => stack?.close());

    it('mailsight check names the TLS problem and its fix, not the host and port', async () => {
      const { stdout, code } = await checkCli(stack, {});
      expect(code).toBe(1);
      expect(stdout).toMatch(/✗ IMAP: .*self-signed.*\n {4}fix: set IMAP_TLS_CA_FILE/);
      expect(stdout).not.toMatch(/check IMAP_HOST\/IMAP_PORT/);
      const fixed = await checkCli(stack, { IMAP_TLS_CA_FILE: certs.selfSigned.cert });
      expect(fixed.stdout).toMatch(/✓ IMAP: master login as alice@example\.test\*mailsight on 127\.0\.0\.1:\d+ works, over STARTTLS, certificate for localhost, 127\.0\.0\.1 verified/);
    });

    it('without a CA: the jobs wait, none fails, and the problem and its fix are named', async () => {
      await deliverOne(stack);
      const job = await jobError(stack);
      expect(job.lastError).toMatch(/IMAP_TLS_UNTRUSTED|self-signed/);
      expect(job.lastError).toMatch(/IMAP_TLS_CA_FILE/);
      expect(['queued', 'retry']).toContain(job.state);
      expect(job.attempts).toBe(0);
      const imap = await health(stack);
      expect(imap).toMatchObject({ ok: false, code: 'IMAP_TLS_UNTRUSTED' });
      expect(imap.error).toMatch(/self-signed.*IMAP_TLS_CA_FILE/);
    });

    it('with IMAP_TLS_CA_FILE: the waiting mail and new mail are analysed over STARTTLS', async () => {
      await stack.restart({ imap: { tlsCaFile: certs.selfSigned.cert } });
      await deliveredAndAnalysed(stack);
      const imap = await health(stack);
      expect(imap).toMatchObject({ ok: true, tls: 'starttls', verify: true, certificate: ['localhost', '127.0.0.1'], lastLogin: { outcome: 'ok' } });
    });

    it('with IMAP_TLS_VERIFY=false: analysed, and the health endpoint says the certificate is not checked', async () => {
      await stack.restart({ imap: { tlsVerify: false } });
      await deliveredAndAnalysed(stack);
      expect(await health(stack)).toMatchObject({ ok: true, tls: 'starttls', verify: false });
    });

    it('one TLS handshake and one login per mailbox for a burst', async () => {
      await stack.restart({ imap: { tlsCaFile: certs.selfSigned.cert } });
      const before = stack.ms.imap.stats.logins;
      const jobs = await Promise.all([0, 1, 2, 3, 4].map(() => deliverOne(stack))).then((n) => Math.max(...n));
      await waitFor(
        () => stack.db.orm.select().from(emailAnalysis).where(eq(emailAnalysis.mailbox, ALICE)),
        (r) => r.length >= jobs,
        20_000,
      );
      expect(stack.ms.imap.stats.logins - before).toBe(1);
    });
  });

  describe('TLS required, plaintext refused, a certificate for another name (Mailcow\'s shape)', () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack({
        users: [ALICE],
        dovecot: { tls: { cert: certs.other.cert, key: certs.other.key, ssl: 'required' }, imaps: true, disablePlaintextAuth: true, listen: '127.0.0.2' },
        mailsight: { apiKey: ADMIN_KEY, imap: { tlsCaFile: certs.ca } },
      });
    });
    afterAll(async () => stack?.close());

    it('without IMAP_TLS_SERVERNAME: the mismatch names the certificate\'s name', async () => {
      await deliverOne(stack);
      const job = await jobError(stack);
      expect(job.lastError).toMatch(/IMAP_TLS_NAME_MISMATCH|is for mail\.example\.test, not for 127\.0\.0\.2/);
      expect(job.lastError).toMatch(/IMAP_TLS_SERVERNAME.*mail\.example\.test/);
      expect(job.attempts).toBe(0);
      expect(await health(stack)).toMatchObject({ ok: false, code: 'IMAP_TLS_NAME_MISMATCH' });
      // A mailbox owner's sign-in uses the same connection: the password is never sent, and not blamed.
      const signIn = await dashboardSignIn(stack.ms.baseUrl, { user: ALICE, password: stack.dc.userPassword });
      expect(signIn).toMatchObject({ status: 503, alert: expect.stringContaining('could not check your password'), session: null });
    });

    it('with IMAP_TLS_SERVERNAME: analysed over STARTTLS, and owners sign in with their mail password over it', async () => {
      await stack.restart({ imap: { tlsServername: certs.other.name } });
      await deliveredAndAnalysed(stack);
      expect(await health(stack)).toMatchObject({ ok: true, tls: 'starttls', certificate: [certs.other.name] });
      const signIn = await dashboardSignIn(stack.ms.baseUrl, { user: ALICE, password: stack.dc.userPassword });
      expect(signIn).toMatchObject({ status: 303, location: `/dashboard/mailbox/${encodeURIComponent(ALICE)}`, session: expect.any(String) });
      expect(await dashboardSignIn(stack.ms.baseUrl, { user: ALICE, password: 'wrong' })).toMatchObject({ status: 401, session: null });
    });

    it('implicit TLS on the imaps port (IMAP_SECURE=true): analysed', async () => {
      await stack.restart({ imap: { tlsServername: certs.other.name, secure: true, port: stack.dc.imapsPort } });
      await deliveredAndAnalysed(stack);
      expect(await health(stack)).toMatchObject({ ok: true, tls: 'implicit' });
    });

    it('IMAP_STARTTLS=never: the refusal of plaintext is named, the jobs wait', async () => {
      await stack.restart({ imap: { starttls: 'never' } });
      await deliverOne(stack);
      const job = await jobError(stack);
      expect(job.lastError).toMatch(/refuses logins without TLS/);
      expect(job.attempts).toBe(0);
      expect(await health(stack)).toMatchObject({ ok: false, code: 'IMAP_PLAINTEXT_REFUSED' });
      await stack.restart({ imap: { tlsServername: certs.other.name, starttls: 'required' } });
      await deliveredAndAnalysed(stack);
    });
  });

  describe('IMAP_STARTTLS=required against a Dovecot without TLS', () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack({ users: [ALICE], mailsight: { apiKey: ADMIN_KEY, imap: { starttls: 'required' } } });
    });
    afterAll(async () => stack?.close());

    it('refused with a clear error, nothing lost: analysed once the setting is fixed', async () => {
      await deliverOne(stack);
      const job = await jobError(stack);
      expect(job.lastError).toMatch(/offers no STARTTLS.*IMAP_STARTTLS=required/);
      expect(job.attempts).toBe(0);
      // Retried while the setting is wrong: each retry still says what to fix.
      await new Promise((r) => setTimeout(r, 2_500));
      const [again] = await stack.db.orm.select().from(processingQueue).where(eq(processingQueue.mailbox, ALICE));
      expect(again!.lastError).toMatch(/IMAP_TLS_UNAVAILABLE: .*offers no STARTTLS.*fix: /);
      expect(again!.attempts).toBe(0);
      expect(await health(stack)).toMatchObject({ ok: false, code: 'IMAP_TLS_UNAVAILABLE' });
      const rows = await stack.db.orm.select().from(emailAnalysis).where(eq(emailAnalysis.mailbox, ALICE));
      expect(rows).toHaveLength(0);
      await stack.restart({ imap: { starttls: 'auto' } });
      await deliveredAndAnalysed(stack);
    });
  });
});
