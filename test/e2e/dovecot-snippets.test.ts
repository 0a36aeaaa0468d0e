import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { dovecotConfig, masterConfig } from '../../src/cli/dovecot-snippets.js';
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

describeWith('Dovecot 2.3', dovecotAvailable('2.3'))("docker-compose.yml's Dovecot configuration", () => {
  it('is accepted by doveconf (2.3, as the image dovecot/dovecot:2.3.21.1), with the shipped master snippet and a push snippet', async () => {
    const { dir, hostDir } = dovecotTempDir('2.3', 'dconf-');
    try {
      // The files the compose file mounts under /etc/dovecot, here in a temp dir.
      for (const f of ['users', 'master-users', 'cert.pem', 'key.pem']) writeFileSync(join(hostDir, f), '');
      mkdirSync(join(hostDir, 'mailsight'));
      mkdirSync(join(hostDir, 'conf.d'));
      writeFileSync(join(hostDir, 'mailsight/91-mailsight-master.conf'), masterConfig('2.3', `${dir}/master-users`));
      writeFileSync(join(hostDir, 'conf.d/90-mailsight.conf'), dovecotConfig({ url: 'http://mailsight:8080', driver: 'ox', version: '2.3', credentials: { username: 'dovecot', password: 'x' } }));
      const conf = readFileSync(join(SHIPPED, 'compose/dovecot.conf'), 'utf8').replaceAll('/etc/dovecot/', `${dir}/`);
      writeFileSync(join(hostDir, 'dovecot.conf'), conf);
      const out = await dovecotTool('2.3', 'doveconf', ['-n', '-P', '-c', `${dir}/dovecot.conf`]);
      expect(out).toMatch(/mail_home = \/srv\/mail\/%Lu/);
      expect(out).toMatch(/master = yes/);
      expect(out).toMatch(/push_notification_driver = ox:url=http:\/\/dovecot:x@mailsight:8080\/push\/dovecot/);
      expect(out).not.toMatch(/driver = static/);
    } finally {
      rmSync(hostDir, { recursive: true, force: true });
    }
  });
});
