import type { FC } from 'hono/jsx';
import { Layout, urls, type PageContext } from './layout.js';

export const LoginPage: FC<{ page: PageContext; csrf: string; error?: string | null; notice?: string | null }> = ({ page, csrf, error, notice }) => (
  <Layout title="Sign in" page={page} error={error} notice={notice}>
    <div class="login card">
      <h1>Sign in</h1>
      <p class="muted">With the admin key (API_KEY) or a mailbox key from `mailsight apikey create`.</p>
      <form class="stack" method="post" action={urls.login}>
        <input type="hidden" name="_csrf" value={csrf} />
        <label>
          API key
          <input type="password" name="key" autocomplete="current-password" required autofocus />
        </label>
        <div>
          <button class="primary" type="submit">
            Sign in
          </button>
        </div>
      </form>
    </div>
  </Layout>
);
