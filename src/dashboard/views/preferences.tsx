import type { FC } from 'hono/jsx';
import { SWITCHES } from '../../domain/preferences.js';
import type { LearnedSenderView } from '../../analysis/senders.js';
import type { getPreferences } from '../../queries/preferences.js';
import { CsrfField, Layout, urls, type PageContext } from './layout.js';

export type PreferencesData = Awaited<ReturnType<typeof getPreferences>>;


export const PreferencesPage: FC<{ page: PageContext; prefs: PreferencesData; learned: LearnedSenderView[]; notice?: string | null; error?: string | null }> = ({
  page,
  prefs,
  learned,
  notice,
  error,
}) => (
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
    <LearnedSenders page={page} mailbox={prefs.username} learned={learned} enabled={prefs.learn_senders} />
  </Layout>
);

/** What the mailbox learned from its user's Junk / Not junk, each with a button that forgets it. */
const LearnedSenders: FC<{ page: PageContext; mailbox: string; learned: LearnedSenderView[]; enabled: boolean }> = ({ page, mailbox, learned, enabled }) => (
  <section class="card" data-testid="learned-senders">
    <h2>Learned senders</h2>
    {!enabled ? <p class="muted">Learning is off: what is listed here is kept but not used.</p> : null}
    {learned.length === 0 ? (
      <p class="muted">Nothing learned yet. Marking a message as Junk or Not junk (in your mail client, or here) teaches its sender.</p>
    ) : (
      <table class="responsive">
        <thead>
          <tr>
            <th>Sender</th>
            <th class="nowrap">Your word</th>
            <th class="nowrap">How</th>
            <th class="nowrap">When (UTC)</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {learned.map((l) => (
            <tr>
              <td>{l.sender ?? <span class="muted">sealed under a key that is not configured</span>}</td>
              <td class="nowrap" data-label="Your word">{l.said === 'junk' ? 'junk' : 'not junk'}</td>
              <td class="nowrap" data-label="How">{l.how}</td>
              <td class="nowrap" data-label="When (UTC)">{l.at.slice(0, 16).replace('T', ' ')}</td>
              <td class="nowrap">
                <form class="inline" method="post" action={`${urls.preferences(mailbox)}/senders/forget`}>
                  <CsrfField token={page.csrf} />
                  <input type="hidden" name="id" value={l.id} />
                  <button type="submit">Forget</button>
                </form>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    )}
  </section>
);

/**
 * Opting out erases a mailbox's mail data: the page says what, in numbers, and needs a second,
 * explicit button. The form carries the other choices along, so confirming saves them too.
 */
export const OptOutConfirmPage: FC<{
  page: PageContext;
  mailbox: string;
  stored: { queue: number; analyses: number; audit: number };
  fields: Record<string, string>;
}> = ({ page, mailbox, stored, fields }) => (
  <Layout title="Opt out?" page={page}>
    <p>
      <a href={urls.preferences(mailbox)}>← Preferences</a>
    </p>
    <h1>Opt out and erase?</h1>
    <div class="card confirm" role="alert">
      <p>
        Opting out stops all analysis of <strong>{mailbox}</strong> and erases, at once and for good, everything mailsight has stored
        about its mail:
      </p>
      <ul data-testid="erase-list">
        <li>{plural(stored.analyses, 'analysis', 'analyses')} (summaries, verdicts, tags, replies)</li>
        <li>{plural(stored.queue, 'queued or past job', 'queued or past jobs')}</li>
        <li>{plural(stored.audit, 'audit trail entry', 'audit trail entries')}</li>
      </ul>
      <p class="muted">The mail itself stays in the mailbox, untouched. API keys and these preferences are kept.</p>
      <form class="inline" method="post" action={urls.preferences(mailbox)}>
        <CsrfField token={page.csrf} />
        {Object.entries(fields).map(([name, value]) => (
          <input type="hidden" name={name} value={value} />
        ))}
        <input type="hidden" name="confirm_erase" value="yes" />
        <button class="danger" type="submit">
          Erase and opt out
        </button>
        <a href={urls.preferences(mailbox)}>Cancel, change nothing</a>
      </form>
    </div>
  </Layout>
);

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
