import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RenderContext } from './dovecot.js';

/**
 * A private Dovecot 2.3 configured the way Mailcow configures its own, written from the facts in
 * shared/mailcow-notes.md (not copied from Mailcow): plugin lists read from files with `<`, `notify`
 * already loaded for LMTP, mail stored compressed and encrypted with global keys, the master user
 * `<name>@mailcow.local` with a `{SHA1}` hex password in a passwd-file between two passdbs for the
 * users, separator `*`, plaintext logins refused, TLS with a certificate for the public host name,
 * METADATA on, and `extra.conf` included last with `!include_try`.
 *
 * Mailcow's users come from a Lua passdb and an SQL userdb; a passwd-file stands in for both.
 * Mailcow's SOGo gets plaintext through `remote <sogo ip> { disable_plaintext_auth = no }`: its
 * stand-in here is an address that is not mailsight's.
 */

export const MAILCOW_PLUGINS = 'quota acl zlib mail_crypt mail_crypt_acl mail_log notify listescape replication lazy_expunge';
export const MAILCOW_PLUGINS_IMAP = 'quota imap_quota acl imap_acl zlib imap_zlib mail_crypt mail_crypt_acl mail_log notify listescape replication';
export const MAILCOW_PLUGINS_LMTP = 'quota sieve acl zlib mail_crypt mail_crypt_acl notify listescape replication';
const MAIL_UID = 65534;

export interface MailcowShape {
  cert: string;
  key: string;
  /** The block pasted into extra.conf, unchanged (what `mailsight dovecot-config --mailcow` printed). */
  extraConf: string;
  /** Leave out Mailcow's `acl_user = %u` / `master_user = %u` (a hand-made Dovecot that forgot them). */
  withoutAclUser?: boolean;
}

export function mailcowDovecot(shape: MailcowShape) {
  return (ctx: RenderContext): string => {
    const { dir } = ctx;
    const f = (name: string) => join(dir, name);
    writeFileSync(f('mail_plugins'), MAILCOW_PLUGINS);
    writeFileSync(f('mail_plugins_imap'), MAILCOW_PLUGINS_IMAP);
    writeFileSync(f('mail_plugins_lmtp'), MAILCOW_PLUGINS_LMTP);
    // What Mailcow's entrypoint writes: one line, SHA1 of the password in hex.
    const sha1 = createHash('sha1').update(ctx.masterPassword).digest('hex');
    writeFileSync(f('dovecot-master.passwd'), `${ctx.masterUser}:{SHA1}${sha1}::::::\n`);
    writeFileSync(f('dovecot-master.userdb'), `${ctx.masterUser}:{SHA1}${sha1}:${MAIL_UID}:${MAIL_UID}::${dir}/vmail/master::\n`);
    writeFileSync(f('users'), ctx.users.map((u) => `${u}:{PLAIN}${ctx.userPassword}::::::\n`).join(''));
    // mail_crypt's global keys (Mailcow keeps them in /mail_crypt).
    execFileSync('sh', ['-c', `openssl ecparam -name prime256v1 -genkey | openssl pkey -out ${f('ecprivkey.pem')} && openssl pkey -in ${f('ecprivkey.pem')} -pubout -out ${f('ecpubkey.pem')}`]);
    mkdirSync(f('vmail'), { recursive: true });
    chownSync(f('vmail'), MAIL_UID, MAIL_UID);
    writeFileSync(f('extra.conf'), `${shape.extraConf}\n`);
    return `
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
protocols = imap lmtp
listen = ${ctx.listen}
auth_mechanisms = plain login
disable_plaintext_auth = yes
auth_failure_delay = 0
mail_home = ${dir}/vmail/%d/%n
mail_location = maildir:~/
mail_plugins = <${f('mail_plugins')}
ssl = yes
ssl_cert = <${shape.cert}
ssl_key = <${shape.key}
ssl_min_protocol = TLSv1.2
recipient_delimiter = +
auth_master_user_separator = *
passdb {
  driver = passwd-file
  args = ${f('users')}
  result_success = return-ok
  result_failure = continue
  result_internalfail = continue
}
passdb {
  driver = passwd-file
  args = ${f('dovecot-master.passwd')}
  master = yes
  skip = authenticated
}
passdb {
  driver = passwd-file
  args = ${f('users')}
}
userdb {
  driver = passwd-file
  args = ${f('dovecot-master.userdb')}
}
userdb {
  driver = passwd-file
  args = ${f('users')}
  default_fields = uid=${MAIL_UID} gid=${MAIL_UID}
  skip = found
}
namespace inbox {
  inbox = yes
  separator = /
  mailbox Junk {
    special_use = \\Junk
    auto = subscribe
  }
  mailbox Sent {
    special_use = \\Sent
    auto = subscribe
  }
}
protocol imap {
  mail_plugins = <${f('mail_plugins_imap')}
  imap_metadata = yes
}
mail_attribute_dict = file:%h/dovecot-attributes
protocol lmtp {
  mail_plugins = <${f('mail_plugins_lmtp')}
}
plugin {
  acl = vfile
  # Mailcow's: ACLs are checked for the user logged in as, not the master user (without these the
  # ACL plugin gives a master login no rights: "Mailbox doesn't exist: INBOX").
  ${shape.withoutAclUser ? '' : 'acl_user = %u\n  master_user = %u'}
  quota = count:User quota
  quota_vsizes = yes
  mail_crypt_global_private_key = <${f('ecprivkey.pem')}
  mail_crypt_global_public_key = <${f('ecpubkey.pem')}
  mail_crypt_save_version = 2
  zlib_save = gz
  mail_log_events = delete undelete expunge copy mailbox_delete mailbox_rename
  mail_log_fields = uid box msgid size
}
service imap-login {
  inet_listener imap {
    address = ${ctx.listen}
    port = ${ctx.imapPort}
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = ${ctx.listen}
    port = ${ctx.lmtpPort}
  }
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
# SOGo's plaintext exception, for an address that is not mailsight's.
remote 127.0.0.3 {
  disable_plaintext_auth = no
}

# <Includes>
!include_try ${f('extra.conf')}
# </Includes>
`;
  };
}
