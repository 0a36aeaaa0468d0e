import { z } from '@hono/zod-openapi';
import { canonicalMailboxOr } from '../mail/mailbox-name.js';

/** Request fields shared by the /api/v1 routes, with messages that name what is wrong. */

// C0 controls and DEL never appear in a login or a folder name.
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
const UINT32_MAX = 0xffffffff;

const required = (what: string) => ({
  error: (i: { input?: unknown }) => (i.input === undefined ? 'is required' : `must be ${what}`),
});

/** A mailbox (Dovecot login name), in its canonical form: `Alice@Example.org` is `alice@example.org`. */
export const mailbox = z
  .string(required('a string'))
  .trim()
  .min(1, 'must not be empty')
  .max(320, 'is longer than 320 characters')
  .refine((v) => !CONTROL_CHARS.test(v), 'contains control characters')
  .transform((v, ctx) => canonicalMailboxOr(v, (message) => ctx.addIssue({ code: 'custom', message })))
  .openapi({ description: 'The mailbox (Dovecot login name; compared in lower case, ASCII only)', example: 'alice@example.org' });

export const folder = z
  .string(required('a string'))
  .min(1, 'must not be empty')
  .max(1000, 'is longer than 1000 characters')
  .refine((v) => !CONTROL_CHARS.test(v), 'contains control characters')
  .openapi({ description: 'IMAP folder', example: 'INBOX' });

/** An IMAP UID: in a query string a digit string, in a JSON body a number or a digit string. */
export const uid = z
  .union([z.number(), z.string().regex(/^\d{1,10}$/, 'must be a whole number')], required('a whole number'))
  .transform(Number)
  .pipe(z.number()
  .int('must be a whole number')
  .min(1, 'must be at least 1')
  .max(UINT32_MAX, 'must fit in 32 bits'))
  .openapi({ type: 'integer', description: 'IMAP UID of the message', example: 42 });

/**
 * A whole number in a query string, written in decimal digits only: `Number()` would also take
 * `1e3`, `0x10` or ` 7`, which no client means.
 */
export const queryInt = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d{1,9}$/, 'must be a whole number in decimal digits')
    .transform(Number)
    .pipe(z.number().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`))
    .openapi({ type: 'integer', minimum: min, maximum: max });

/** A boolean in a query string: true/false or 1/0. */
export const queryBool = z
  .enum(['true', 'false', '1', '0'], { error: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1')
  .openapi({ type: 'boolean' });

/** A boolean in a JSON body; 1/0 and "true"/"1" too, as Mailcow-style scripts send them. */
export const bodyBool = z
  .union([z.boolean(), z.literal(0), z.literal(1), z.enum(['true', 'false', '1', '0'])], { error: 'must be true or false' })
  .transform((v) => v === true || v === 1 || v === 'true' || v === '1')
  .openapi({ type: 'boolean' });

/** A point in time: an ISO 8601 date or date-time. */
export const instant = z
  .string()
  .refine((v) => /^\d{4}-\d{2}-\d{2}/.test(v) && !Number.isNaN(Date.parse(v)), 'must be an ISO 8601 date or date-time')
  .transform((v) => new Date(v))
  .openapi({ type: 'string', format: 'date-time', example: '2026-11-01T00:00:00Z' });

/** Formats zod issues as one line that names each offending field. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      if (i.code === 'unrecognized_keys') return `unknown parameter${i.keys.length > 1 ? 's' : ''} ${i.keys.join(', ')}`;
      const where = i.path.length ? i.path.join('.') : 'body';
      return `${where}: ${i.message}`;
    })
    .join('; ');
}

/** A summary language: a name or code such as de or German. */
export const summaryLanguage = z
  .string()
  .trim()
  .min(2, 'must be a language name or code')
  .max(35, 'must be a language name or code')
  .regex(/^[\p{L}][\p{L} -]*$/u, 'must be a language name or code, such as de or German');

/** What a key is for, as its owner names it (API and dashboard alike). */
export const keyName = z.string().trim().min(1).max(80).regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');

/** A sender's e-mail address, as a learned sender is named (compared in lower case). */
export const senderAddress = z.string().trim().min(3).max(320).regex(/^[^\s@\p{Cc}]+@[^\s@\p{Cc}]+$/u, 'must be an e-mail address');
