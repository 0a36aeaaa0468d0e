import { parseArgs } from 'node:util';
import { createApiKey, listApiKeys, revokeApiKey } from '../queries/keys.js';
import { cliMailbox, out, UsageError, when, withDatabase } from './common.js';

const APIKEY_HELP = `usage:
  mailsight apikey create --mailbox <user@example.org> [--name <label>] [--json]
      creates a key that reads and writes only that mailbox's data; the key is shown once
  mailsight apikey list [--mailbox <user@example.org>] [--json]
      lists keys (id, mailbox, name, created, last used, revoked); never the keys themselves
  mailsight apikey revoke <id | key>
      revokes a key at once

The admin key is API_KEY in the environment; it is not managed here.`;

export async function apikeyCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { mailbox: { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' } },
  });
  const [sub, ...rest] = positionals;
  if (values.help || !sub) {
    out(APIKEY_HELP);
    return values.help ? 0 : 2;
  }
  switch (sub) {
    case 'create': {
      if (!values.mailbox?.trim()) throw new UsageError('apikey create needs --mailbox <user@example.org>');
      const mailbox = cliMailbox(values.mailbox);
      const created = await withDatabase((db) => createApiKey(db, mailbox, values.name));
      if (values.json) out(JSON.stringify(created));
      else {
        out(`created key ${created.id} for ${created.mailbox}${created.name ? ` (${created.name})` : ''}:\n\n  ${created.key}\n`);
        out('It is shown this once and stored only as a hash. Send it as the X-API-Key header.');
      }
      return 0;
    }
    case 'list': {
      const keys = await withDatabase((db) => listApiKeys(db, values.mailbox === undefined ? undefined : cliMailbox(values.mailbox)));
      if (values.json) {
        out(JSON.stringify(keys));
        return 0;
      }
      if (keys.length === 0) {
        out('no API keys');
        return 0;
      }
      const rows = [['ID', 'MAILBOX', 'NAME', 'CREATED', 'LAST USED', 'REVOKED']].concat(
        keys.map((k) => [k.id, k.mailbox, k.name ?? '-', when(k.createdAt), when(k.lastUsedAt), when(k.revokedAt)]),
      );
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows) out(r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
      return 0;
    }
    case 'revoke': {
      const target = rest[0];
      if (!target) throw new UsageError('apikey revoke needs the key id (from apikey list) or the key');
      const revoked = await withDatabase((db) => revokeApiKey(db, target));
      if (!revoked) {
        process.stderr.write(`mailsight: no active key ${target}\n`);
        return 1;
      }
      out(`revoked ${target}`);
      return 0;
    }
    default:
      throw new UsageError(`unknown apikey command "${sub}"\n\n${APIKEY_HELP}`);
  }
}
