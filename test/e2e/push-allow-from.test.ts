import { request } from 'node:http';
import { eq } from 'drizzle-orm';
import parsePrometheus from 'parse-prometheus-text-format';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { processingQueue } from '../../src/db/schema.js';
import { dovecotAvailable } from '../support/dovecot.js';
import { deliver } from '../support/lmtp.js';
import { PUSH_PASSWORD } from '../support/mailsight.js';
import { testMessage } from '../support/message.js';
import { describeWith, postgresAvailable } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';
import { waitFor } from '../support/wait.js';

/**
 * The push lockout must not lock Dovecot out: 20 bad requests from Dovecot's address (any local
 * process, anyone behind the same NAT) made mailsight refuse Dovecot's real pushes for 300 s.
 * With PUSH_ALLOW_FROM, other addresses get 403 before authentication and Dovecot's is never locked.
 */

const ready = dovecotAvailable() && (await postgresAvailable());
const ALICE = 'alice@example.test';

/** A push from `localAddress` (127.0.0.2 plays a host that is not Dovecot's). */
function pushFrom(stack: Stack, localAddress: string, password: string): Promise<number> {
  const body = JSON.stringify({ user: ALICE, event: 'messageNew', folder: 'INBOX', 'imap-uidvalidity': 1, 'imap-uid': 1 });
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: stack.port,
        path: '/push/dovecot',
        method: 'PUT',
        localAddress,
        headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`dovecot:${password}`).toString('base64')}` },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describeWith('Dovecot and PostgreSQL', ready)('PUSH_ALLOW_FROM', () => {
  let stack: Stack;
  beforeAll(async () => {
    // Dovecot pushes from 127.0.0.1; the lockout is at its default (20 failures a minute).
    stack = await startStack({ users: [ALICE], analyse: false, mailsight: { push: { allowFrom: ['127.0.0.1'] }, authMaxFailures: 20 } });
  });
  afterAll(async () => stack?.close());

  it('another address gets 403 before authentication, with the right password too', async () => {
    expect(await pushFrom(stack, '127.0.0.2', 'wrong')).toBe(403);
    expect(await pushFrom(stack, '127.0.0.2', PUSH_PASSWORD)).toBe(403);
  });

  it("25 bad pushes from Dovecot's address lock nothing: each is a 401, counted, and Dovecot's deliveries still push", async () => {
    for (let i = 0; i < 25; i++) expect(await pushFrom(stack, '127.0.0.1', 'wrong-password')).toBe(401);
    await deliver(stack.dc.lmtpPort, testMessage('allowed-1', ALICE, 'Still pushed', 'After 25 bad attempts from the same address.'), [ALICE]);
    const rows = await waitFor(
      () => stack.db.orm.select().from(processingQueue).where(eq(processingQueue.mailbox, ALICE)),
      (r) => r.some((j) => j.subject === 'Still pushed'),
    );
    expect(rows.map((r) => r.subject)).toContain('Still pushed');
    const metrics = parsePrometheus(await (await fetch(`${stack.ms.baseUrl}/metrics`)).text());
    const failures = metrics.find((m: any) => m.name === 'mailsight_push_auth_failures_total');
    expect(failures.metrics).toContainEqual({ labels: { from: 'allowed' }, value: '25' });
    const pushes = metrics.find((m: any) => m.name === 'mailsight_pushes_total');
    expect(pushes.metrics).toContainEqual({ labels: { outcome: 'forbidden' }, value: '2' });
  });
});
