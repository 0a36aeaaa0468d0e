import { FEEDBACK_SAID, VERDICTS } from '../domain/states.js';
import { feedbackContext, feedbackOn, recordFeedback } from '../analysis/feedback.js';
import { forgetSenders, listLearned } from '../analysis/senders.js';
import { readFileSync } from 'node:fs';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { JSX } from 'hono/jsx/jsx-runtime';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { z } from '@hono/zod-openapi';
import { getMessage, listAnalyses, type ListFilter } from '../queries/analyses.js';
import { authenticate, createApiKey, keyJson, listApiKeys, principalName, revokeApiKey, type Principal } from '../queries/keys.js';
import { canonicalMailbox } from '../mail/mailbox-name.js';
import { getPreferences, updatePreferences } from '../queries/preferences.js';
import { requestAnalysis } from '../queries/request-analysis.js';
import { getStats, getTimeline, mailboxSummaries, recentFailures } from '../queries/stats.js';
import { checkReadiness } from '../health/readiness.js';
import { mayAccess } from '../http/api-auth.js';
import { clientAddress } from '../http/auth-failures.js';
import { safeEqual } from '../http/basic-auth.js';
import { AppError } from '../http/errors.js';
import * as params from '../http/params.js';
import { errorText } from '../logger.js';
import type { ApiDeps } from '../routes/deps.js';
import { closeSession, findSession, newToken, openSession, SESSION_HOURS, type Session } from './session.js';
import { KeysPage } from './views/keys.js';
import { LoginPage } from './views/login.js';
import { DASHBOARD, Problem, urls, type PageContext } from './views/layout.js';
import { MailboxPage, type MailboxFilters } from './views/mailbox.js';
import { MessagePage } from './views/message.js';
import { Overview, WINDOWS } from './views/overview.js';
import { OptOutConfirmPage, PreferencesPage } from './views/preferences.js';
import { storedAbout } from '../queries/erase.js';
import { SWITCHES, type SwitchName } from '../domain/preferences.js';

/**
 * The dashboard: server-rendered pages (Hono JSX) over the same services as /api/v1, no client
 * script at all (charts are SVG drawn here), one stylesheet shipped in the package.
 * Sign-in turns an API key into a session cookie; every form carries the session's CSRF token.
 */

const SESSION_COOKIE = 'mailsight_session';
const LOGIN_CSRF_COOKIE = 'mailsight_login_csrf';
const MAX_FORM_BYTES = 16 * 1024;
const PAGE_SIZE = 25;

/** No script at all, no framing, forms only to ourselves. */
export const DASHBOARD_CSP =
  "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS = readFileSync(new URL('./assets/dashboard.css', import.meta.url), 'utf8');

/** Fixed notices a redirect may ask for (never text from the query string). */
const NOTICES = {
  signed_out: 'You are signed out.',
  reanalysis_queued: 'Queued for analysis ahead of new mail; reload in a moment to see the result.',
  reanalysis_running: 'This message is being analysed right now.',
  feedback_saved: 'Thank you: your word is recorded against the verdict.',
  sender_forgotten: 'The sender is forgotten: its next mail is judged as if nothing had been learned.',
  saved: 'Preferences saved.',
  opted_out: 'Preferences saved. Everything stored about this mailbox’s mail has been erased.',
  key_revoked: 'The key is revoked; requests with it are refused from now on.',
} as const;

/** What the dashboard's middleware puts on each request: the session (if any) and its cookie's token. */
type DashboardEnv = { Variables: { dashboard: { session: Session | null; token: string | null } } };
type DashboardContext = Context<DashboardEnv>;

const isHttps = (c: Context) => new URL(c.req.url).protocol === 'https:' || c.req.header('x-forwarded-proto') === 'https';

function render(c: Context, node: JSX.Element, status: ContentfulStatusCode = 200) {
  return c.html(`<!DOCTYPE html>${String(node)}`, status);
}

function pageOf(c: DashboardContext): PageContext {
  const d = c.get('dashboard');
  return { principal: d?.session?.principal ?? null, csrf: d?.session?.csrf ?? null, path: c.req.path };
}

const notice = (c: Context) => NOTICES[c.req.query('notice') as keyof typeof NOTICES] ?? null;


const filtersSchema = z.object({
  verdict: z.enum(VERDICTS).optional(),
  category: z.string().max(40).optional(),
  min_priority: z.coerce.number().int().min(1).max(10).optional(),
  sensitive: z.enum(['yes', 'no']).optional(),
  folder: params.folder.optional(),
  since: z.string().refine(isCalendarDate, 'since must be a date (YYYY-MM-DD)').optional(),
  until: z.string().refine(isCalendarDate, 'until must be a date (YYYY-MM-DD)').optional(),
  cursor: z.string().max(40).optional(),
});

/** YYYY-MM-DD naming a day that exists (2026-13-01 and 2026-02-30 do not). */
function isCalendarDate(v: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(v)) return false;
  const d = new Date(`${v}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === v;
}

/** The `:mailbox` of a page's path, canonical (mail/mailbox-name.ts); a name with control or non-ASCII characters is a 400. */
function mailboxParam(c: Context): string {
  const parsed = params.mailbox.safeParse(c.req.param('mailbox'));
  if (!parsed.success) throw new AppError('VALIDATION_FAILED', `mailbox: ${parsed.error.issues[0]!.message}`);
  return parsed.data;
}

/** Query parameters with empty values dropped (an untouched form field means "any"). */
function queryOf(c: Context): Record<string, string> {
  return Object.fromEntries(Object.entries(c.req.query()).filter(([, v]) => v !== ''));
}

export function dashboardRoutes(deps: ApiDeps) {
  const app = new Hono<DashboardEnv>();

  app.use('*', async (c, next) => {
    await next();
    c.header('Content-Security-Policy', DASHBOARD_CSP);
    c.header('X-Frame-Options', 'DENY');
    c.header('X-Content-Type-Options', 'nosniff');
    c.header('Referrer-Policy', 'same-origin');
    c.header('Cross-Origin-Opener-Policy', 'same-origin');
    if (!c.req.path.startsWith(`${DASHBOARD}/assets/`)) c.header('Cache-Control', 'no-store');
  });

  app.onError((err, c) => {
    const page = pageOf(c);
    if (err instanceof AppError) {
      if (err.retryAfterSec) c.header('Retry-After', String(err.retryAfterSec));
      return render(c, <Problem page={page} title={err.status === 403 ? 'Not allowed' : err.status === 404 ? 'Not found' : 'Cannot do that'} message={err.message} />, err.status);
    }
    deps.logger.error({ err: errorText(err), path: c.req.path }, 'dashboard error');
    return render(c, <Problem page={page} title="Something went wrong" message="mailsight could not show this page; the log has the details." />, 500);
  });

  app.get('/assets/dashboard.css', (c) => {
    c.header('Content-Type', 'text/css; charset=utf-8');
    c.header('Cache-Control', 'public, max-age=3600');
    return c.body(CSS);
  });

  app.use(
    '*',
    bodyLimit({
      maxSize: MAX_FORM_BYTES,
      onError: () => {
        throw new AppError('PAYLOAD_TOO_LARGE', `form over ${MAX_FORM_BYTES} bytes`);
      },
    }),
  );

  // Who is signed in (every page looks the session up again, so revocation takes effect at once).
  app.use('*', async (c, next) => {
    const token = getCookie(c, SESSION_COOKIE) ?? null;
    const session = token ? await findSession(deps.db, token, deps.adminKey) : null;
    c.set('dashboard', { session, token: session ? token : null });
    await next();
  });

  // Forms are posted from our own pages only: same origin, and the session's CSRF token.
  app.use('*', async (c, next) => {
    if (c.req.method !== 'POST') return next();
    const origin = c.req.header('origin');
    if (origin && origin !== new URL(c.req.url).origin && origin !== `${isHttps(c) ? 'https' : 'http'}://${c.req.header('host')}`) {
      throw new AppError('FORBIDDEN', 'this form was sent from another site');
    }
    const form = await c.req.parseBody();
    const sent = typeof form._csrf === 'string' ? form._csrf : '';
    const expected = c.req.path === urls.login ? getCookie(c, LOGIN_CSRF_COOKIE) : c.get('dashboard').session?.csrf;
    if (!expected || !sent || !safeEqual(sent, expected)) {
      throw new AppError('FORBIDDEN', 'the form was out of date or not from this dashboard; reload the page and try again');
    }
    await next();
  });

  const signIn = (c: Context, error?: string, status: 200 | 401 | 403 | 429 | 503 = 200, user?: string) => {
    const csrf = newToken();
    setCookie(c, LOGIN_CSRF_COOKIE, csrf, { path: urls.login, httpOnly: true, sameSite: 'Strict', secure: isHttps(c), maxAge: 3600 });
    return render(c, <LoginPage page={pageOf(c)} csrf={csrf} mailLogin={Boolean(deps.mailLogin)} user={user} error={error} notice={notice(c)} />, status);
  };

  /** The signed-in principal, or a redirect to the sign-in page. */
  const principal = (c: DashboardContext): Principal | null => c.get('dashboard').session?.principal ?? null;
  const toLogin = (c: Context) => c.redirect(urls.login, 303);
  const assertCanSee = (p: Principal, mailbox: string) => {
    if (!mayAccess(p, mailbox)) throw new AppError('FORBIDDEN', 'you are signed in for another mailbox');
  };

  app.get('/login', (c) => {
    const p = principal(c);
    if (p) return c.redirect(p.kind === 'admin' ? urls.home : urls.mailbox(p.mailbox), 303);
    return signIn(c);
  });

  /** Who the form names (an API key, or a mail address and password that Dovecot accepts), or the page that says why not. */
  const signInWith = async (c: Context, form: Record<string, unknown>, address: string): Promise<Principal | Response> => {
    const text = (name: string) => (typeof form[name] === 'string' ? (form[name] as string) : '');
    if (form.user === undefined) {
      const key = text('key').trim();
      const found = key ? await authenticate(deps.db, deps.adminKey, key) : null;
      if (found) return found;
      deps.onSignIn?.('key', 'refused');
      deps.authFailures?.failed(address, 'unknown or revoked API key', c.req.path);
      return signIn(c, 'That key is not valid: unknown, revoked, or not an API key.', 401);
    }
    const typed = text('user').trim();
    if (!deps.mailLogin) return signIn(c, 'Signing in with the mail password is switched off here (DASHBOARD_IMAP_LOGIN=false): use an API key.', 403);
    let mailbox: string;
    try {
      mailbox = canonicalMailbox(typed);
    } catch {
      deps.onSignIn?.('password', 'refused');
      deps.authFailures?.failed(address, 'not a mail address', c.req.path);
      return signIn(c, 'That is not a mail address (printable ASCII, no spaces).', 401);
    }
    try {
      deps.accountFailures?.check(mailbox);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      deps.onSignIn?.('password', 'limited');
      return signIn(c, `Too many wrong passwords for this address; try again in ${err.retryAfterSec ?? 60} s.`, 429, typed);
    }
    let outcome;
    try {
      outcome = await deps.mailLogin(mailbox, text('password'), address);
    } catch (err) {
      deps.onSignIn?.('password', 'unavailable');
      deps.logger.warn({ mailbox, err: errorText(err) }, 'dashboard sign-in: the mail server could not check the password');
      return signIn(c, 'The mail server could not check your password just now; try again in a moment.', 503, typed);
    }
    if (outcome === 'ok') return { kind: 'mailbox', mailbox, keyId: null };
    deps.onSignIn?.('password', 'refused');
    deps.authFailures?.failed(address, 'mail password refused by the IMAP server', c.req.path);
    deps.accountFailures?.failed(mailbox, 'mail password refused by the IMAP server', c.req.path);
    return signIn(c, 'The mail server refused that address and password.', 401, typed);
  };

  app.post('/login', async (c) => {
    const address = clientAddress(c);
    const form = await c.req.parseBody();
    const method = form.user === undefined ? 'key' : 'password';
    try {
      deps.authFailures?.check(address);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      deps.onSignIn?.(method, 'limited');
      return signIn(c, err.message, 429);
    }
    const found = await signInWith(c, form, address);
    if (found instanceof Response) return found;
    const token = await openSession(deps.db, found, deps.adminKey);
    setCookie(c, SESSION_COOKIE, token, { path: DASHBOARD, httpOnly: true, sameSite: 'Strict', secure: isHttps(c), maxAge: SESSION_HOURS * 3600 });
    deleteCookie(c, LOGIN_CSRF_COOKIE, { path: urls.login });
    deps.onSignIn?.(method, 'ok');
    deps.logger.info({ who: principalName(found) }, 'dashboard sign-in');
    return c.redirect(found.kind === 'admin' ? urls.home : urls.mailbox(found.mailbox), 303);
  });

  app.post('/logout', async (c) => {
    const { token } = c.get('dashboard');
    if (token) await closeSession(deps.db, token);
    deleteCookie(c, SESSION_COOKIE, { path: DASHBOARD });
    return c.redirect(`${urls.login}?notice=signed_out`, 303);
  });

  // Every page past sign-in needs a session; a mailbox's pages need its key or the admin key.
  const signedIn: MiddlewareHandler = async (c, next) => {
    const p = principal(c);
    if (!p) return toLogin(c);
    if (c.req.param('mailbox') !== undefined) assertCanSee(p, mailboxParam(c));
    await next();
  };
  app.use('/', signedIn);
  app.use('/mailbox/:mailbox', signedIn);
  app.use('/mailbox/:mailbox/*', signedIn);

  app.get('/', async (c) => {
    const p = principal(c)!;
    if (p.kind === 'mailbox') return c.redirect(urls.mailbox(p.mailbox), 303);
    const asked = Number(c.req.query('minutes'));
    const minutes = WINDOWS.find((w) => w.minutes === asked)?.minutes ?? WINDOWS[0].minutes;
    const [health, stats, timeline, failures, mailboxes] = await Promise.all([
      checkReadiness(deps.readiness),
      getStats(deps.db, { mailbox: null }),
      getTimeline(deps.db, { mailbox: null, minutes }),
      recentFailures(deps.db, null),
      mailboxSummaries(deps.db),
    ]);
    return render(c, <Overview page={pageOf(c)} minutes={minutes} data={{ health: health.components, stats, timeline, failures, mailboxes }} />);
  });

  app.get('/mailbox/:mailbox', async (c) => {
    const mailbox = mailboxParam(c);
    const query = queryOf(c);
    const parsed = filtersSchema.safeParse(query);
    const f = parsed.success ? parsed.data : {};
    const error = parsed.success ? null : `Filters ignored: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`;
    const filter: ListFilter = {
      mailbox,
      limit: PAGE_SIZE,
      folder: f.folder,
      category: f.category,
      verdict: f.verdict,
      minPriority: f.min_priority,
      sensitive: f.sensitive === undefined ? undefined : f.sensitive === 'yes',
      since: f.since ? new Date(`${f.since}T00:00:00Z`) : undefined,
      until: f.until ? new Date(`${f.until}T23:59:59.999Z`) : undefined,
      cursor: f.cursor,
      order: 'received',
    };
    const page = await listAnalyses(deps.db, filter, deps.protection);
    const { cursor, ...filters }: MailboxFilters & { cursor?: string } = f;
    const { cursor: _, ...kept } = parsed.success ? query : {};
    const qs = (extra: Record<string, string>) => `?${new URLSearchParams({ ...kept, ...extra })}`;
    return render(
      c,
      <MailboxPage
        page={pageOf(c)}
        mailbox={mailbox}
        filters={filters}
        items={page.items}
        error={error}
        nextUrl={page.next_cursor ? urls.mailbox(mailbox, qs({ cursor: page.next_cursor })) : null}
        firstUrl={cursor ? urls.mailbox(mailbox, qs({})) : null}
      />,
      // The page still shows (unfiltered, with the reason), but says 400: the request was wrong.
      parsed.success ? 200 : 400,
    );
  });

  const messageRef = (c: Context) => {
    const ref = z
      .object({ mailbox: params.mailbox, folder: params.folder, uidvalidity: z.coerce.number().int().min(1).max(0xffffffff), uid: z.coerce.number().int().min(1).max(0xffffffff) })
      .safeParse(c.req.param());
    if (!ref.success) throw new AppError('NOT_FOUND', 'no such message');
    return ref.data;
  };

  app.get('/mailbox/:mailbox/message/:folder/:uidvalidity/:uid', async (c) => {
    const ref = messageRef(c);
    const m = await getMessage(deps.db, ref, deps.protection, { showOtherMailboxes: principal(c)!.kind === 'admin' });
    const word = await feedbackOn(deps.db, { ...ref, uidvalidity: m.uidvalidity }, m.analysis?.message_id ?? null);
    return render(c, <MessagePage page={pageOf(c)} m={m} word={word} notice={notice(c)} />);
  });

  app.post('/mailbox/:mailbox/message/:folder/:uidvalidity/:uid/feedback', async (c) => {
    const ref = messageRef(c);
    const said = z.enum(FEEDBACK_SAID).safeParse((await c.req.parseBody()).said);
    if (!said.success) throw new AppError('VALIDATION_FAILED', 'said: junk or legit');
    const f = await recordFeedback(deps.db, ref, said.data, 'dashboard', feedbackContext(deps));
    deps.onFeedback?.(f);
    return c.redirect(`${urls.message(ref)}?notice=feedback_saved`, 303);
  });

  app.post('/mailbox/:mailbox/message/:folder/:uidvalidity/:uid/reanalyse', async (c) => {
    const p = principal(c)!;
    const ref = messageRef(c);
    const actor = `${principalName(p)} (dashboard)`;
    const r = await requestAnalysis(deps.db, deps.imap, { mailbox: ref.mailbox, folder: ref.folder, uid: ref.uid, force: true, actor }, deps.logger);
    if (r.queued) deps.onQueued?.();
    // The request goes to the folder's current UIDVALIDITY, which is where the result will be.
    const target = urls.message({ mailbox: ref.mailbox, folder: ref.folder, uidvalidity: r.uidvalidity, uid: ref.uid });
    return c.redirect(`${target}?notice=${r.queued ? 'reanalysis_queued' : 'reanalysis_running'}`, 303);
  });

  const keysOf = async (mailbox: string) => (await listApiKeys(deps.db, mailbox)).map(keyJson);

  app.get('/mailbox/:mailbox/keys', async (c) => {
    const mailbox = mailboxParam(c);
    return render(c, <KeysPage page={pageOf(c)} mailbox={mailbox} keys={await keysOf(mailbox)} notice={notice(c)} />);
  });

  app.post('/mailbox/:mailbox/keys', async (c) => {
    const mailbox = mailboxParam(c);
    const form = await c.req.parseBody();
    const typed = typeof form.name === 'string' ? form.name.trim() : '';
    const name = typed === '' ? { success: true as const, data: undefined } : params.keyName.safeParse(typed);
    if (!name.success) {
      return render(c, <KeysPage page={pageOf(c)} mailbox={mailbox} keys={await keysOf(mailbox)} error="A key's name has at most 80 characters and no control characters; no key was made." />, 400);
    }
    const created = await createApiKey(deps.db, mailbox, name.data);
    deps.logger.info({ mailbox, keyId: created.id, by: `${principalName(principal(c)!)} (dashboard)` }, 'API key created');
    // Shown in this answer only (no redirect: the key must not travel in a URL); the page is no-store.
    return render(c, <KeysPage page={pageOf(c)} mailbox={mailbox} keys={await keysOf(mailbox)} created={created} />);
  });

  app.post('/mailbox/:mailbox/keys/:id/revoke', async (c) => {
    const mailbox = mailboxParam(c);
    const id = c.req.param('id');
    if (!(await revokeApiKey(deps.db, id, mailbox))) throw new AppError('NOT_FOUND', `no active key ${id} for this mailbox`);
    deps.logger.info({ mailbox, keyId: id, by: `${principalName(principal(c)!)} (dashboard)` }, 'API key revoked');
    return c.redirect(`${urls.keys(mailbox)}?notice=key_revoked`, 303);
  });

  app.get('/mailbox/:mailbox/preferences', async (c) => {
    const mailbox = mailboxParam(c);
    return render(c, <PreferencesPage page={pageOf(c)} prefs={await getPreferences(deps.db, mailbox)} learned={await listLearned(deps.db, deps.protection, mailbox)} notice={notice(c)} />);
  });

  app.post('/mailbox/:mailbox/preferences/senders/forget', async (c) => {
    const mailbox = mailboxParam(c);
    const id = (await c.req.parseBody()).id;
    if (typeof id !== 'string' || id === '') throw new AppError('VALIDATION_FAILED', 'id: the learned sender to forget');
    if ((await forgetSenders(deps.db, deps.protection, mailbox, { ids: [id] })) === 0) throw new AppError('NOT_FOUND', 'no such learned sender in this mailbox');
    return c.redirect(`${urls.preferences(mailbox)}?notice=sender_forgotten`, 303);
  });

  app.post('/mailbox/:mailbox/preferences', async (c) => {
    const mailbox = mailboxParam(c);
    const form = await c.req.parseBody();
    // A checkbox left unticked is not sent at all: every switch is set, on or off.
    const switches = Object.fromEntries(SWITCHES.map(({ name }) => [name, form[name] === 'on'])) as Record<SwitchName, boolean>;
    const rawLanguage = typeof form.summary_language === 'string' ? form.summary_language.trim() : '';
    const language = rawLanguage === '' ? { success: true as const, data: null } : params.summaryLanguage.safeParse(rawLanguage);
    if (!language.success) {
      const prefs = await getPreferences(deps.db, mailbox);
      return render(c, <PreferencesPage page={pageOf(c)} prefs={prefs} learned={await listLearned(deps.db, deps.protection, mailbox)} error={`Summary language ${language.error.issues[0]?.message ?? 'is not valid'}; nothing was saved.`} />, 400);
    }
    const before = await getPreferences(deps.db, mailbox);
    const erased = switches.opt_out && !before.opt_out;
    if (erased && form.confirm_erase !== 'yes') {
      // Nothing is saved yet: the next page says what would be erased and asks again.
      const fields = Object.fromEntries(Object.entries(form).filter(([k, v]) => k !== '_csrf' && k !== 'confirm_erase' && typeof v === 'string')) as Record<string, string>;
      return render(c, <OptOutConfirmPage page={pageOf(c)} mailbox={mailbox} stored={await storedAbout(deps.db, mailbox)} fields={fields} />);
    }
    await updatePreferences(deps.db, mailbox, { ...switches, summary_language: language.data });
    return c.redirect(`${urls.preferences(mailbox)}?notice=${erased ? 'opted_out' : 'saved'}`, 303);
  });

  return app;
}

