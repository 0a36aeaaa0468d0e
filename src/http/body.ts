import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';
import { AppError } from './errors.js';
import { incomingOf, requestHeader } from './incoming.js';

const tooLarge = (maxBytes: number) => new AppError('PAYLOAD_TOO_LARGE', `request body is larger than ${maxBytes} bytes`);

/** Node's request body, refused once it passes `maxBytes`. */
function readIncoming(incoming: IncomingMessage, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (err?: Error) => {
      incoming.off('data', onData).off('end', onEnd).off('error', cut);
      if (err) return reject(err);
      resolve(Buffer.concat(chunks, size).toString('utf8'));
    };
    // The client went away mid-body: Node destroys the request with an 'error' (ECONNRESET,
    // 'aborted'), and nobody reads the answer. No 'close' listener as well: in a bare Hono +
    // postgres.js receiver (postgres.js not yet patched), adding one made its requests' objects
    // reach V8's old generation (0.9 MB promoted per young collection at 1,000 requests/s, against
    // none; collections 2.3 against 0.9 ms). What else did that on the push path: bench/push.ts
    // (gcTotals).
    const cut = () => done(new AppError('VALIDATION_FAILED', 'the request ended before its body was complete'));
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) return void chunks.push(chunk);
      done(tooLarge(maxBytes));
      // The rest is read and dropped, so the 413 still reaches the client (destroying the request
      // would close the socket first); Node's request timeout bounds how long that can go on.
      incoming.resume();
    };
    const onEnd = () => done();
    incoming.on('data', onData).on('end', onEnd).on('error', cut);
  });
}

/**
 * The request body as text, refused past `maxBytes` (by Content-Length up front, else while it
 * streams in). Under @hono/node-server it reads Node's request directly, by its events: a WHATWG
 * Request just to read a 300-byte body cost more CPU than everything else the push handler does.
 */
export async function readBodyText(c: Context, maxBytes: number): Promise<string> {
  const declared = Number(requestHeader(c, 'content-length'));
  if (declared > maxBytes) throw tooLarge(maxBytes);
  const incoming = incomingOf(c);
  if (incoming) return readIncoming(incoming, maxBytes);
  const text = await c.req.text();
  if (Buffer.byteLength(text) > maxBytes) throw tooLarge(maxBytes);
  return text;
}
