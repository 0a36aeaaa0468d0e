import type { FC } from 'hono/jsx';
import { SWITCHES } from '../../domain/preferences.js';
import type { getPreferences } from '../../queries/preferences.js';
import { CsrfField, Layout, urls, type PageContext } from './layout.js';

export type PreferencesData = Awaited<ReturnType<typeof getPreferences>>;


export const PreferencesPage: FC<{ page: PageContext; prefs: PreferencesData; notice?: string | null; error?: string | null }> = ({ page, prefs, notice, error }) => (
  <Layout title="Preferences" page={page} notice={notice} error={error}>
    <p>
      <a href={urls.mailbox(prefs.username)}>← {prefs.username}</a>
    </p>
    <h1>Preferences</h1>
    <form class="stack card" method="post" action={urls.preferences(prefs.username)}>
      <CsrfField token={page.csrf} />
      {SWITCHES.map(({ name, label, hint }) => (
        <label class="check">
          <input type="checkbox" name={name} value="on" checked={prefs[name]} />
          <span>
            {label}
            {hint ? <span class="hint">{hint}</span> : null}
          </span>
        </label>
      ))}
      <label>
        Summary language
        <input type="text" name="summary_language" value={prefs.summary_language ?? ''} placeholder="the message's own" maxlength={35} />
      </label>
      <div>
        <button class="primary" type="submit">
          Save
        </button>
      </div>
      <p class="muted">{prefs.stored ? 'Last changed ' + (prefs.updated_at?.slice(0, 16).replace('T', ' ') ?? '') + ' UTC.' : 'These are the defaults; nothing has been changed yet.'}</p>
    </form>
  </Layout>
);
