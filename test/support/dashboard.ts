/**
 * The dashboard's sign-in form as a browser sends it (the sign-in CSRF cookie and field), without a
 * browser: status, where it redirects, the page's alert text, and the session cookie when it worked.
 */
export async function dashboardSignIn(baseUrl: string, fields: Record<string, string>) {
  const login = await fetch(`${baseUrl}/dashboard/login`);
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await login.text())![1]!;
  const cookie = login.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  const res = await fetch(`${baseUrl}/dashboard/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: csrf, ...fields }),
  });
  const page = await res.text();
  const alert = /role="alert"[^>]*>([^<]*)</.exec(page)?.[1]?.trim() ?? null;
  const session = res.headers.getSetCookie().find((c) => c.startsWith('mailsight_session='))?.split(';')[0] ?? null;
  return { status: res.status, location: res.headers.get('location'), alert, session, page };
}
