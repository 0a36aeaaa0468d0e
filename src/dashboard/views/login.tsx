import type { FC } from 'hono/jsx';
import { Layout, urls, type PageContext } from './layout.js';

/**
 * Two ways in: a mailbox owner with the mail address and password (checked by Dovecot), and anyone
 * with an API key (the admin key, or a mailbox key). No script: two forms, each with its own button.
 */
export const LoginPage: FC<{ page: PageContext; csrf: string; mailLogin: boolean; user?: string; error?: string | null; notice?: string | null }> = ({
  page,
  csrf,
  mailLogin,
  user,
  error,
  notice,
}) => (
  <Layout title="Sign in" page={page} error={error} notice={notice}>
    <div class="login card">
      <h1>Sign in</h1>
      {mailLogin ? (
        <form class="stack" method="post" action={urls.login}>
          <p class="muted">With your mail address and password, as in your mail program.</p>
          <input type="hidden" name="_csrf" value={csrf} />
          <label>
            Mail address
            <input type="text" name="user" value={user ?? ''} autocomplete="username" inputmode="email" autocapitalize="none" spellcheck={false} required autofocus />
          </label>
          <label>
            Password
            <input type="password" name="password" autocomplete="current-password" required />
          </label>
          <div>
            <button class="primary" type="submit">
              Sign in
            </button>
          </div>
        </form>
      ) : null}
      <form class="stack" method="post" action={urls.login}>
        {mailLogin ? <h2>Or with an API key</h2> : null}
        <p class="muted">
          The admin key (<code>API_KEY</code>, or the one the first start kept in <code>DATA_DIR/admin-key</code>), or a mailbox key
          from <code>mailsight apikey create</code>.
        </p>
        <input type="hidden" name="_csrf" value={csrf} />
        <label>
          API key
          <input type="password" name="key" autocomplete="off" required autofocus={!mailLogin} />
        </label>
        <div>
          <button class={mailLogin ? 'secondary' : 'primary'} type="submit">
            Sign in with the key
          </button>
        </div>
      </form>
    </div>
  </Layout>
);
