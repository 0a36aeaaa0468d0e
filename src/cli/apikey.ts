import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { createApiKey, keyIdOf, keyJson, listApiKeys, revokeApiKey, type CreatedKey } from '../queries/keys.js';
import { cliMailbox, out, UsageError, when, withDatabase } from './common.js';
import { runningServiceClient, ServiceError, type ServiceClient } from './service-client.js';

const APIKEY_HELP = `usage:
  mailsight apikey create --mailbox <user@example.org> [--name <label>] [--json]
      creates a key that reads and writes only that mailbox's data; the key is shown once
  mailsight apikey list [--mailbox <user@example.org>] [--json]
      lists keys (id, mailbox, name, created, last used, revoked); never the keys themselves
  mailsight apikey revoke <id | key>
      revokes a key at once

The admin key is API_KEY in the environment (or the one the first start generated in DATA_DIR/admin-key);
it is not managed here. On the embedded database, while the service runs, these commands go through
its API with the admin key (the database admits one process).`;

type KeyRow = ReturnType<typeof keyJson>;

/** Where keys are kept: the database itself, or the running service that holds the embedded one. */
interface KeyStore {
  create(mailbox: string, name?: string): Promise<CreatedKey>;
  list(mailbox?: string): Promise<KeyRow[]>;
  revoke(id: string): Promise<boolean>;
}

const databaseStore: KeyStore = {
  create: (mailbox, name) => withDatabase((db) => createApiKey(db, mailbox, name)),
  list: async (mailbox) => (await withDatabase((db) => listApiKeys(db, mailbox))).map(keyJson),
  revoke: (id) => withDatabase((db) => revokeApiKey(db, id)),
};

const serviceStore = (client: ServiceClient): KeyStore => ({
  create: (mailbox, name) => client.call('POST', '/api/v1/add/llm/apikey', { mailbox, ...(name === undefined ? {} : { name }) }),
  list: async (mailbox) => (await client.call<{ items: KeyRow[] }>('GET', `/api/v1/get/llm/apikeys${mailbox ? `?${new URLSearchParams({ mailbox })}` : ''}`)).items,
  revoke: (idOrKey) =>
    client.call('POST', '/api/v1/delete/llm/apikey', { id: keyIdOf(idOrKey) }).then(
      () => true,
      (err) => {
        if (err instanceof ServiceError && (err.status === 404 || err.status === 400)) return false;
        throw err;
      },
    ),
});

const shortDate = (iso: string | null) => when(iso ? new Date(iso) : null);

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
  const client = runningServiceClient(loadConfig());
  const store = client ? serviceStore(client) : databaseStore;
  switch (sub) {
    case 'create': {
      if (!values.mailbox?.trim()) throw new UsageError('apikey create needs --mailbox <user@example.org>');
      const mailbox = cliMailbox(values.mailbox);
      const created = await store.create(mailbox, values.name);
      if (values.json) out(JSON.stringify(created));
      else {
        out(`created key ${created.id} for ${created.mailbox}${created.name ? ` (${created.name})` : ''}:\n\n  ${created.key}\n`);
        out('It is shown this once and stored only as a hash. Send it as the X-API-Key header.');
      }
      return 0;
    }
    case 'list': {
      const keys = await store.list(values.mailbox === undefined ? undefined : cliMailbox(values.mailbox));
      if (values.json) {
        out(JSON.stringify(keys));
        return 0;
      }
      if (keys.length === 0) {
        out('no API keys');
        return 0;
      }
      const rows = [['ID', 'MAILBOX', 'NAME', 'CREATED', 'LAST USED', 'REVOKED']].concat(
        keys.map((k) => [k.id, k.mailbox, k.name ?? '-', shortDate(k.created_at), shortDate(k.last_used_at), shortDate(k.revoked_at)]),
      );
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows) out(r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
      return 0;
    }
    case 'revoke': {
      const target = rest[0];
      if (!target) throw new UsageError('apikey revoke needs the key id (from apikey list) or the key');
      const revoked = await store.revoke(target);
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
