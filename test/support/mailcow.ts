import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { headerLines, listenerBlocks, namespaceBlock, type RenderContext } from './dovecot.js';

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
  return (ctx: RenderContext): string => (ctx.version === '2.4' ? mailcow24(ctx, shape) : mailcow23(ctx, shape));
}

/** Mailcow's own files (plugin lists, master passwd-file and userdb, users, mail_crypt keys, extra.conf); returns the path maker. */
function mailcowFiles(ctx: RenderContext, shape: MailcowShape) {
  const { dir, hostDir } = ctx;
  const f = (name: string) => `${dir}/${name}`;
  const h = (name: string) => join(hostDir, name);
  writeFileSync(h('mail_plugins'), MAILCOW_PLUGINS);
  writeFileSync(h('mail_plugins_imap'), MAILCOW_PLUGINS_IMAP);
  writeFileSync(h('mail_plugins_lmtp'), MAILCOW_PLUGINS_LMTP);
  // What Mailcow's entrypoint writes: one line, SHA1 of the password in hex.
  const sha1 = createHash('sha1').update(ctx.masterPassword).digest('hex');
  writeFileSync(h('dovecot-master.passwd'), `${ctx.masterUser}:{SHA1}${sha1}::::::\n`);
  writeFileSync(h('dovecot-master.userdb'), `${ctx.masterUser}:{SHA1}${sha1}:${MAIL_UID}:${MAIL_UID}::${dir}/vmail/master::\n`);
  writeFileSync(h('users'), ctx.users.map((u) => `${u}:{PLAIN}${ctx.userPassword}::::::\n`).join(''));
  // mail_crypt's global keys (Mailcow keeps them in /mail_crypt).
  execFileSync('sh', ['-c', `openssl ecparam -name prime256v1 -genkey | openssl pkey -out ${h('ecprivkey.pem')} && openssl pkey -in ${h('ecprivkey.pem')} -pubout -out ${h('ecpubkey.pem')}`]);
  mkdirSync(h('vmail'), { recursive: true });
  chownSync(h('vmail'), MAIL_UID, MAIL_UID);
  writeFileSync(h('extra.conf'), `${shape.extraConf}\n`);
  return { f, cert: ctx.place(shape.cert, 'cert.pem'), key: ctx.place(shape.key, 'key.pem') };
}

function mailcow23(ctx: RenderContext, shape: MailcowShape): string {
  const { dir } = ctx;
  const { f, cert, key } = mailcowFiles(ctx, shape);
  return `${headerLines('2.3', dir, ctx.listen)}
auth_mechanisms = plain login
disable_plaintext_auth = yes
auth_failure_delay = 0
mail_home = ${dir}/vmail/%d/%n
mail_location = maildir:~/
mail_plugins = <${f('mail_plugins')}
ssl = yes
ssl_cert = <${cert}
ssl_key = <${key}
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
${namespaceBlock({ Junk: '\\Junk', Sent: '\\Sent' }, 'subscribe')}
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
${listenerBlocks('2.3', ctx.listen, { imap: ctx.imapPort, imaps: 0, lmtp: ctx.lmtpPort })}
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
}

/**
 * The same shape in Dovecot 2.4 syntax (Mailcow's branch feat/dovecot-2.4): named passdbs with
 * `passwd_file_path`, `auth_allow_cleartext` only for 127.0.0.1, plugin lists as blocks, mail_compress
 * and mail_crypt under their 2.4 names.
 */
function mailcow24(ctx: RenderContext, shape: MailcowShape): string {
  const { dir } = ctx;
  const { f, cert, key } = mailcowFiles(ctx, shape);
  const block = (list: string) => `{\n${list.split(' ').map((p) => `    ${p.replace('zlib', 'mail_compress')} = yes`).join('\n')}\n  }`;
  const plugins = (list: string) => list.split(' ').filter((p) => !['imap_zlib', 'listescape', 'replication'].includes(p)).join(' ');
  return `${headerLines('2.4', dir, ctx.listen)}
auth_mechanisms = plain login
auth_allow_cleartext = no
auth_failure_delay = 0
mail_home = ${dir}/vmail/%{user | domain}/%{user | username}
mail_driver = maildir
mail_path = ~/
mail_plugins ${block(plugins(MAILCOW_PLUGINS))}
ssl = yes
ssl_server_cert_file = ${cert}
ssl_server_key_file = ${key}
ssl_min_protocol = TLSv1.2
recipient_delimiter = +
auth_master_user_separator = *
passdb users-first {
  driver = passwd-file
  passwd_file_path = ${f('users')}
  result_success = return-ok
  result_failure = continue
  result_internalfail = continue
}
passdb master {
  driver = passwd-file
  passwd_file_path = ${f('dovecot-master.passwd')}
  master = yes
  skip = authenticated
}
passdb users {
  driver = passwd-file
  passwd_file_path = ${f('users')}
}
userdb master {
  driver = passwd-file
  passwd_file_path = ${f('dovecot-master.userdb')}
}
userdb users {
  driver = passwd-file
  passwd_file_path = ${f('users')}
  fields {
    uid = ${MAIL_UID}
    gid = ${MAIL_UID}
  }
  skip = found
}
${namespaceBlock({ Junk: '\\Junk', Sent: '\\Sent' }, 'subscribe')}
protocol imap {
  mail_plugins ${block(plugins(MAILCOW_PLUGINS_IMAP))}
  imap_metadata = yes
}
mail_attribute {
  dict file {
    path = %{home}/dovecot-attributes
  }
}
protocol lmtp {
  mail_plugins ${block(plugins(MAILCOW_PLUGINS_LMTP))}
}
acl_driver = vfile
${shape.withoutAclUser ? '' : '# Mailcow\'s: ACLs are checked for the user logged in as, not the master user.\nacl_user = %{user}'}
quota "User quota" {
  driver = count
}
crypt_global_public_key_file = ${f('ecpubkey.pem')}
crypt_global_private_key main {
  crypt_private_key_file = ${f('ecprivkey.pem')}
}
crypt_write_algorithm = aes-256-gcm-sha256
mail_compress_write_method = gz
${listenerBlocks('2.4', ctx.listen, { imap: ctx.imapPort, imaps: 0, lmtp: ctx.lmtpPort })}
# SOGo's cleartext exception (2.4: only 127.0.0.1 on Mailcow), for an address that is not mailsight's.
remote 127.0.0.3 {
  auth_allow_cleartext = yes
}

!include_try ${f('extra.conf')}
`;
}
