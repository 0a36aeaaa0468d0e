import type { FC } from 'hono/jsx';
import type { CreatedKey, keyJson } from '../../queries/keys.js';
import { CsrfField, Layout, Time, urls, type PageContext } from './layout.js';

type KeyRow = ReturnType<typeof keyJson>;

/** A mailbox's API keys, for its owner's scripts: make one (shown once), see when each was used, revoke. */
export const KeysPage: FC<{ page: PageContext; mailbox: string; keys: KeyRow[]; created?: CreatedKey; notice?: string | null; error?: string | null }> = (p) => (
  <Layout title="API keys" page={p.page} notice={p.notice} error={p.error}>
    <p>
      <a href={urls.mailbox(p.mailbox)}>← {p.mailbox}</a>
    </p>
    <h1>API keys</h1>
    <p class="muted">
      A key reads and changes this mailbox's analyses and preferences through the API (header <code>X-API-Key</code>), and nothing of other
      mailboxes.
    </p>
    {p.created ? (
      <div class="card created" role="status" data-testid="created-key">
        <p>
          New key <strong>{p.created.name ?? p.created.id}</strong>. Copy it now: it is shown this once and kept only as a hash.
        </p>
        <pre class="key">{p.created.key}</pre>
      </div>
    ) : null}
    <form class="inline card" method="post" action={urls.keys(p.mailbox)}>
      <CsrfField token={p.page.csrf} />
      <label>
        Name (what the key is for)
        <input type="text" name="name" maxlength={80} placeholder="e.g. phone script" />
      </label>
      <button class="primary" type="submit">
        Create a key
      </button>
    </form>
    {p.keys.length === 0 ? (
      <p class="muted">No keys yet.</p>
    ) : (
      <table class="keys">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Id</th>
            <th scope="col">Created</th>
            <th scope="col">Last used</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {p.keys.map((k) => (
            <tr data-testid="key">
              <td>{k.name ?? '-'}</td>
              <td>
                <code>{k.id}</code>
              </td>
              <td>
                <Time at={k.created_at} />
              </td>
              <td>{k.last_used_at ? <Time at={k.last_used_at} /> : 'never'}</td>
              <td>
                {k.revoked_at ? (
                  <span>
                    revoked <Time at={k.revoked_at} />
                  </span>
                ) : (
                  <form method="post" action={urls.revokeKey(p.mailbox, k.id)}>
                    <CsrfField token={p.page.csrf} />
                    <button class="secondary" type="submit">Revoke</button>
                  </form>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    )}
  </Layout>
);
