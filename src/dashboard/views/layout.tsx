import type { MessageKey } from '../../domain/message-key.js';
import type { Child, FC } from 'hono/jsx';
import type { Principal } from '../../queries/keys.js';

export const DASHBOARD = '/dashboard';
export const CSS_PATH = `${DASHBOARD}/assets/dashboard.css`;

/** Dashboard URLs, built in one place (mailbox and folder names are encoded). */
export const urls = {
  home: DASHBOARD,
  login: `${DASHBOARD}/login`,
  logout: `${DASHBOARD}/logout`,
  mailbox: (m: string, query = '') => `${DASHBOARD}/mailbox/${encodeURIComponent(m)}${query}`,
  preferences: (m: string) => `${DASHBOARD}/mailbox/${encodeURIComponent(m)}/preferences`,
  keys: (m: string) => `${DASHBOARD}/mailbox/${encodeURIComponent(m)}/keys`,
  revokeKey: (m: string, id: string) => `${DASHBOARD}/mailbox/${encodeURIComponent(m)}/keys/${encodeURIComponent(id)}/revoke`,
  message: (m: MessageKey) =>
    `${DASHBOARD}/mailbox/${encodeURIComponent(m.mailbox)}/message/${encodeURIComponent(m.folder)}/${m.uidvalidity}/${m.uid}`,
};

export interface PageContext {
  principal: Principal | null;
  csrf: string | null;
  /** Path of the page, for aria-current in the navigation. */
  path: string;
}

export const CsrfField: FC<{ token: string | null }> = ({ token }) => <input type="hidden" name="_csrf" value={token ?? ''} />;

const NavLink: FC<{ href: string; path: string; children: Child }> = ({ href, path, children }) => (
  <li>
    <a href={href} aria-current={path === href ? 'page' : undefined}>
      {children}
    </a>
  </li>
);

export const Layout: FC<{ title: string; page: PageContext; notice?: string | null; error?: string | null; children: Child }> = (p) => {
  const who = p.page.principal;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="same-origin" />
        <title>{`${p.title} · mailsight`}</title>
        <link rel="stylesheet" href={CSS_PATH} />
      </head>
      <body>
        <a class="skip" href="#main">
          Skip to content
        </a>
        <header class="top">
          <a class="brand" href={urls.home}>
            mailsight
          </a>
          {who ? (
            <nav aria-label="Main">
              <ul>
                {who.kind === 'admin' ? <NavLink href={urls.home} path={p.page.path}>Overview</NavLink> : null}
                {who.kind === 'mailbox' ? <NavLink href={urls.mailbox(who.mailbox)} path={p.page.path}>My mail</NavLink> : null}
                {who.kind === 'mailbox' ? <NavLink href={urls.preferences(who.mailbox)} path={p.page.path}>Preferences</NavLink> : null}
                {who.kind === 'mailbox' ? <NavLink href={urls.keys(who.mailbox)} path={p.page.path}>API keys</NavLink> : null}
              </ul>
            </nav>
          ) : null}
          {who ? (
            <div class="who">
              <span>{who.kind === 'admin' ? 'Administrator' : who.mailbox}</span>
              <form method="post" action={urls.logout}>
                <CsrfField token={p.page.csrf} />
                <button type="submit">Sign out</button>
              </form>
            </div>
          ) : null}
        </header>
        <main id="main">
          {p.notice ? (
            <p class="flash" role="status">
              {p.notice}
            </p>
          ) : null}
          {p.error ? (
            <p class="error" role="alert">
              {p.error}
            </p>
          ) : null}
          {p.children}
        </main>
      </body>
    </html>
  );
};

/** A time in UTC, readable, with the exact instant for machines. */
export const Time: FC<{ at: Date | string | null | undefined }> = ({ at }) => {
  if (!at) return <span class="muted">–</span>;
  const d = typeof at === 'string' ? new Date(at) : at;
  const iso = d.toISOString();
  return <time datetime={iso}>{`${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`}</time>;
};

const VERDICT_CLASS: Record<string, string> = { phishing: 'bad', scam: 'bad', spam: 'warn', unknown: '', legit: 'ok' };

export const VerdictBadge: FC<{ verdict: string | null; phishing?: boolean | null }> = ({ verdict, phishing }) => {
  if (!verdict) return <span class="badge">not analysed</span>;
  const cls = phishing ? 'bad' : (VERDICT_CLASS[verdict] ?? '');
  return <span class={`badge ${cls}`}>{phishing && verdict !== 'phishing' ? `${verdict} · phishing` : verdict}</span>;
};

/** A small status page (403, 404, expired session) inside the layout. */
export const Problem: FC<{ page: PageContext; title: string; message: string }> = ({ page, title, message }) => (
  <Layout title={title} page={page}>
    <h1>{title}</h1>
    <p class="error" role="alert">
      {message}
    </p>
    <p>
      <a href={urls.home}>Back to the dashboard</a>
    </p>
  </Layout>
);

/**
 * A table that turns into labelled lines on a phone: one column per [heading, cell], a row per
 * item, and `empty` instead when there are none.
 */
export function Table<T>(p: { labelledBy: string; rows: T[]; empty: string; columns: [heading: string, cell: (row: T) => Child][]; testid?: string }) {
  if (p.rows.length === 0) return <p class="muted">{p.empty}</p>;
  return (
    <table class="responsive" aria-labelledby={p.labelledBy} data-testid={p.testid}>
      <thead>
        <tr>
          {p.columns.map(([heading]) => (
            <th scope="col">{heading}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {p.rows.map((row) => (
          <tr>
            {p.columns.map(([heading, cell]) => (
              <td data-label={heading}>{cell(row)}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
