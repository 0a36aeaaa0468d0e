import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import { processingQueue } from '../../src/db/schema.js';
import { dovecotAvailable, startDovecot } from '../support/dovecot.js';
import { deliver } from '../support/lmtp.js';
import { startMailsight } from '../support/mailsight.js';
import { describeWith, postgresAvailable } from '../support/services.js';
import { waitFor } from '../support/wait.js';

const run = promisify(execFile);
const BIN = new URL('../../bin/mailsight.js', import.meta.url).pathname;
const PASSWORD = 'p%w/d:x';

const config = async (args: string[], env: Record<string, string> = {}) =>
  (await run(process.execPath, [BIN, 'dovecot-config', ...args], { env: { ...process.env, ...env } })).stdout;

describeWith('Dovecot and PostgreSQL', dovecotAvailable() && (await postgresAvailable()))('mailsight dovecot-config', () => {
  it.each([
    ['ox', '2.3', /^\s*push_notification_driver = ox:url=http:\/\/dovecot:p%%25w%%2Fd%%3Ax@mail\.example:8080\/push\/dovecot$/m],
    ['ox', '2.4', /^\s*ox_url = http:\/\/dovecot:p%%25w%%2Fd%%3Ax@mail\.example:8080\/push\/dovecot$/m],
    ['lua', '2.3', /^\s*mailsight_push_password = p%%w\/d:x$/m],
    ['lua', '2.4', /^\s*mailsight_push_password = p%%w\/d:x$/m],
  ])('--driver %s --dovecot %s fills in the URL and credentials, escaped for Dovecot', async (driver, version, line) => {
    const out = await config(['--url', 'http://mail.example:8080', '--driver', driver, '--dovecot', version, '--password', PASSWORD]);
    expect(out).toMatch(line);
    expect(out).not.toContain('CHANGE_ME');
  });

  it.each(['ox', 'lua'])('the 2.3 %s output is accepted by doveconf', async (driver) => {
    const dir = mkdtempSync('/tmp/dconf-');
    try {
      const out = await config(['--url', 'http://127.0.0.1:8080', '--driver', driver, '--dovecot', '2.3', '--password', PASSWORD]);
      const conf = join(dir, 'dovecot.conf');
      writeFileSync(conf, `protocols = imap lmtp\n${out}\n`);
      const { stdout } = await run('doveconf', ['-n', '-P', '-c', conf]);
      expect(stdout).toMatch(driver === 'ox' ? /push_notification_driver = ox:url=http:\/\/dovecot:p%%25w/ : /mailsight_push_password = p%%w\/d:x/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('without --password it uses PUSH_PASSWORD, and refuses bad arguments with the reason', async () => {
    expect(await config(['--url', 'http://127.0.0.1:8080'], { PUSH_PASSWORD: 'from-env' })).toContain('http://dovecot:from-env@127.0.0.1:8080/push/dovecot');
    for (const [args, message] of [
      [[], '--url'],
      [['--url', 'ftp://x'], 'http(s)'],
      [['--url', 'http://x', '--driver', 'smtp'], '--driver'],
      [['--url', 'http://x', '--dovecot', '2.2'], '--dovecot'],
    ] as const) {
      const err = await config([...args], { PUSH_PASSWORD: 'x' }).then(
        () => null,
        (e) => e,
      );
      expect(err?.code, args.join(' ')).toBe(2);
      expect(err?.stderr).toContain(message);
    }
  });

  it('its 2.3 OX line, pasted into a real Dovecot, makes a delivery reach mailsight (a password with % and /)', async () => {
    const ms = await startMailsight({ push: { password: PASSWORD }, processing: { workers: false } });
    try {
      const out = await config(['--url', ms.baseUrl, '--password', PASSWORD]);
      const line = out.split('\n').find((l) => l.trim().startsWith('push_notification_driver'))!.trim();
      const dc = await startDovecot({ users: ['alice@example.test'], push: { driver: 'ox', url: ms.pushUrl, raw: line } });
      try {
        await deliver(dc.lmtpPort, 'From: a@example.net\r\nSubject: via dovecot-config\r\n\r\nHello.\r\n', ['alice@example.test']);
        const rows = await waitFor(
          () => ms.db.orm.select().from(processingQueue).where(eq(processingQueue.mailbox, 'alice@example.test')),
          (r) => r.length === 1,
        );
        expect(rows[0]).toMatchObject({ source: 'push', subject: 'via dovecot-config' });
      } finally {
        await dc.stop();
      }
    } finally {
      await ms.close();
    }
  });
});
