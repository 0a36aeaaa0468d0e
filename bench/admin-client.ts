import { Browser } from '../test/support/browser.js';

/**
 * An in-process app as the admin uses it: `get` for /api/v1 (JSON, 200 or it throws with the answer),
 * `page` for the dashboard, signed in with the admin key (HTML, 200 or it throws).
 */
export async function adminClient(app: ConstructorParameters<typeof Browser>[0], adminKey: string) {
  const get = async (path: string) => {
    const res = await app.request(`/api/v1${path}`, { headers: { 'x-api-key': adminKey } });
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return res.json() as Promise<any>;
  };
  const browser = new Browser(app);
  if ((await browser.signIn(adminKey)).status !== 303) throw new Error('dashboard sign-in failed');
  const page = async (path: string) => {
    const res = await browser.get(path);
    if (res.status !== 200) throw new Error(`${path}: ${res.status}`);
    return res.text();
  };
  return { get, page };
}
