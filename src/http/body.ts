import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';
import { AppError } from './errors.js';

const tooLarge = (maxBytes: number) => new AppError('PAYLOAD_TOO_LARGE', `request body is larger than ${maxBytes} bytes`);

/**
 * The request body as text, refused past `maxBytes` (by Content-Length up front, else while it
 * streams in). Under @hono/node-server it reads Node's request directly: materialising a WHATWG
 * Request just to read a 300-byte body cost more CPU than everything else the push handler does.
 */
export async function readBodyText(c: Context, maxBytes: number): Promise<string> {
  const declared = Number(c.req.header('content-length'));
  if (declared > maxBytes) throw tooLarge(maxBytes);
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (incoming && typeof incoming[Symbol.asyncIterator] === 'function') {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of incoming as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes) throw tooLarge(maxBytes);
      chunks.push(chunk);
    }
    return Buffer.concat(chunks, size).toString('utf8');
  }
  const text = await c.req.text();
  if (Buffer.byteLength(text) > maxBytes) throw tooLarge(maxBytes);
  return text;
}
