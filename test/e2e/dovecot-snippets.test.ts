import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { describeWith } from '../support/services.js';
import { dovecotAvailable } from '../support/dovecot.js';

const run = promisify(execFile);
const DIR = resolve(import.meta.dirname, '../../dovecot/2.3');

describeWith('Dovecot', dovecotAvailable())('shipped Dovecot 2.3 snippets', () => {
  it.each(['90-mailsight.conf', '90-mailsight-lua.conf', '91-mailsight-master.conf'])(
    '%s is accepted by doveconf',
    async (file) => {
      const dir = mkdtempSync('/tmp/dconf-');
      try {
        writeFileSync(join(dir, 'master-users'), '');
        const snippet = readFileSync(join(DIR, file), 'utf8').replace('/etc/dovecot/master-users', join(dir, 'master-users'));
        const conf = join(dir, 'dovecot.conf');
        writeFileSync(conf, `protocols = imap lmtp\n${snippet}\n`);
        const { stdout } = await run('doveconf', ['-n', '-c', conf]);
        if (file.includes('master')) expect(stdout).toContain('master = yes');
        else expect(stdout).toMatch(/push_notification_driver = (ox|lua):/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
