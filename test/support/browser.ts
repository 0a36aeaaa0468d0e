/** A browser's cookie jar over app.request(): enough for HttpOnly session cookies and redirects. */
export class Browser {
  readonly cookies = new Map<string, string>();
  constructor(
    private readonly app: { request(path: string, init: RequestInit): Response | Promise<Response> },
    private readonly headers: Record<string, string> = {},
  ) {}

  async request(method: string, path: string, form?: Record<string, string>): Promise<Response> {
    const headers: Record<string, string> = { ...this.headers };
    if (this.cookies.size) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    if (form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await this.app.request(path, { method, headers, body: form ? new URLSearchParams(form).toString() : undefined });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const [name, value] = pair!.split('=') as [string, string];
      if (/max-age=0/i.test(line) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  get = (path: string) => this.request('GET', path);
  post = (path: string, form: Record<string, string>) => this.request('POST', path, form);

  /** The CSRF token of the forms on a page. */
  async csrf(path: string): Promise<string> {
    const html = await (await this.get(path)).text();
    const m = /name="_csrf" value="([^"]+)"/.exec(html);
    if (!m) throw new Error(`no CSRF token on ${path}`);
    return m[1]!;
  }

  async signIn(key: string): Promise<Response> {
    return this.post('/dashboard/login', { _csrf: await this.csrf('/dashboard/login'), key });
  }
}
