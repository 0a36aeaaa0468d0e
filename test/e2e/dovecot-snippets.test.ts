import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { dovecotConfig, masterConfig } from '../../src/push/dovecot-config.js';
import { describeWith } from '../support/services.js';
import { DOVECOT_VERSIONS, dovecotAvailable, dovecotTempDir, dovecotTool } from '../support/dovecot.js';

const SHIPPED = new URL('../../dovecot/', import.meta.url).pathname;

/** What each shipped file must set, as `doveconf -n` prints it back. */
const EXPECTED: Record<string, RegExp> = {
  '90-mailsight.conf': /push_notification_driver = ox:url=|push_notification ox \{[^}]*url = http/s,
  '90-mailsight-lua.conf': /push_notification_driver = lua:file=|push_notification lua \{[^}]*lua_file = /s,
  '91-mailsight-master.conf': /master = yes/,
  'mailcow-extra.conf': /push_notification/,
};

for (const version of DOVECOT_VERSIONS) {
  describeWith(`Dovecot ${version}`, dovecotAvailable(version))(`shipped Dovecot ${version} snippets`, () => {
    const files = readdirSync(join(SHIPPED, version));

    it('are the four this test knows', () => {
      expect(files.sort()).toEqual(Object.keys(EXPECTED).sort());
    });

    it.each(files)(`%s, as shipped, is accepted by Dovecot ${version}'s doveconf`, async (file) => {
      const { dir, hostDir } = dovecotTempDir(version, 'dconf-');
      try {
        writeFileSync(join(hostDir, 'master-users'), '');
        writeFileSync(join(hostDir, 'push.lua'), '');
        // Only the paths this machine lacks are pointed elsewhere, as `dovecot-config` does.
        const text =
          file === '91-mailsight-master.conf'
            ? masterConfig(version, `${dir}/master-users`)
            : file === '90-mailsight-lua.conf'
              ? dovecotConfig({ url: 'http://127.0.0.1:8080', driver: 'lua', version, credentials: { username: 'dovecot', password: 'p%w' }, luaFile: `${dir}/push.lua` })
              : readFileSync(join(SHIPPED, version, file), 'utf8');
        const head = version === '2.4' ? 'dovecot_config_version = 2.4.1\ndovecot_storage_version = 2.4.1\n' : '';
        writeFileSync(join(hostDir, 'dovecot.conf'), `${head}protocols = imap lmtp\n${text}\n`);
        const out = await dovecotTool(version, 'doveconf', ['-n', '-c', `${dir}/dovecot.conf`]);
        expect(out).toMatch(EXPECTED[file]!);
      } finally {
        rmSync(hostDir, { recursive: true, force: true });
      }
    });
  });
}
