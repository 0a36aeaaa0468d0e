import type { FC } from 'hono/jsx';
import type { analysisJson } from '../../queries/analyses.js';
import { CATEGORIES, VERDICTS } from '../../analysis/result.js';
import { Layout, Time, VerdictBadge, urls, type PageContext } from './layout.js';

export type AnalysisItem = ReturnType<typeof analysisJson>;

/** The mailbox page's filters, as the form sends them (empty: no filter). */
export interface MailboxFilters {
  verdict?: string;
  category?: string;
  min_priority?: number;
  sensitive?: 'yes' | 'no';
  folder?: string;
  since?: string;
  until?: string;
}

/** Priority from which a message stands out in the list. */
export const HIGH_PRIORITY = 8;

const Select: FC<{ name: string; label: string; value?: string; options: readonly string[] }> = (p) => (
  <label>
    {p.label}
    <select name={p.name}>
      <option value="">any</option>
      {p.options.map((o) => (
        <option value={o} selected={p.value === o}>
          {o}
        </option>
      ))}
    </select>
  </label>
);

const Item: FC<{ a: AnalysisItem }> = ({ a }) => {
  const high = (a.priority ?? 0) >= HIGH_PRIORITY;
  const cls = [a.is_phishing ? 'phishing' : '', high ? 'high' : ''].filter(Boolean).join(' ');
  return (
    <li class={cls || undefined} data-testid="message">
      <div class="line1">
        <VerdictBadge verdict={a.status === 'analyzed' ? a.verdict : null} phishing={a.is_phishing} />
        {a.status !== 'analyzed' ? <span class={`badge ${a.status === 'failed' ? 'bad' : ''}`}>{a.status}</span> : null}
        {high ? <span class="badge warn">priority {a.priority}</span> : null}
        <a class="subject" href={urls.message({ mailbox: a.mailbox, folder: a.folder, uidvalidity: a.uidvalidity, uid: a.email_id })}>
          {a.subject ?? `(UID ${a.email_id})`}
        </a>
      </div>
      <div class="muted">
        <span class="received">
          <Time at={a.received_at} />
        </span>{' '}
        · {a.from_name || a.from_address ? `${a.from_name ?? ''} ${a.from_address ? `<${a.from_address}>` : ''}`.trim() : 'sender not kept'} · {a.folder}
        {a.category ? ` · ${a.category}` : ''}
        {a.priority !== null && !high ? ` · priority ${a.priority}` : ''}
        {a.sensitive.length ? ` · sensitive: ${a.sensitive.join(', ')}` : ''}
      </div>
      {a.summary ? <p class="summary">{a.summary}</p> : null}
      {a.tags.length ? (
        <div class="tags" aria-label="Tags">
          {a.tags.map((t) => (
            <span class="tag">{t}</span>
          ))}
        </div>
      ) : null}
    </li>
  );
};

export const MailboxPage: FC<{
  page: PageContext;
  mailbox: string;
  filters: MailboxFilters;
  items: AnalysisItem[];
  nextUrl: string | null;
  firstUrl: string | null;
  error?: string | null;
}> = (p) => (
  <Layout title={p.mailbox} page={p.page} error={p.error}>
    <h1>{p.mailbox}</h1>
    <p>
      <a href={urls.preferences(p.mailbox)}>Preferences of this mailbox</a>
    </p>
    <form class="filters card" method="get" action={urls.mailbox(p.mailbox)} aria-label="Filters">
      <Select name="verdict" label="Verdict" value={p.filters.verdict} options={VERDICTS} />
      <Select name="category" label="Category" value={p.filters.category} options={CATEGORIES} />
      <label>
        Priority at least
        <input type="number" name="min_priority" min="1" max="10" value={p.filters.min_priority?.toString() ?? ''} />
      </label>
      <Select name="sensitive" label="Sensitive data" value={p.filters.sensitive} options={['yes', 'no']} />
      <label>
        Folder
        <input type="text" name="folder" value={p.filters.folder ?? ''} placeholder="any" />
      </label>
      <label>
        Received since
        <input type="date" name="since" value={p.filters.since ?? ''} />
      </label>
      <label>
        Received until
        <input type="date" name="until" value={p.filters.until ?? ''} />
      </label>
      <button class="primary" type="submit">
        Filter
      </button>
      <a href={urls.mailbox(p.mailbox)}>Clear</a>
    </form>
    {p.items.length === 0 ? (
      <p class="muted" data-testid="empty">
        No analyses match.
      </p>
    ) : (
      <>
        <p class="list-head" id="list-head">
          Received ↓ <span class="muted">(newest first; the time the server received each message)</span>
        </p>
        <ul class="messages" aria-labelledby="list-head">
          {p.items.map((a) => (
            <Item a={a} />
          ))}
        </ul>
      </>
    )}
    <nav class="pager" aria-label="Pages">
      {p.firstUrl ? <a href={p.firstUrl}>Newest</a> : <span />}
      {p.nextUrl ? <a href={p.nextUrl}>Older</a> : <span />}
    </nav>
  </Layout>
);
