import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';

/** Node's request under @hono/node-server; undefined elsewhere (app.request() in tests). */
export function incomingOf(c: Context): IncomingMessage | undefined {
  return (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
}

/**
 * A request header, from Node's already parsed headers when the request came through Node: asking
 * Hono (`c.req.header()`) builds a WHATWG Headers object from all of them first, which the push,
 * reading two headers, does not need.
 */
export function requestHeader(c: Context, name: string): string | undefined {
  const incoming = incomingOf(c);
  if (!incoming) return c.req.header(name);
  const value = incoming.headers[name.toLowerCase()];
  return Array.isArray(value) ? value.join(', ') : value;
}
