import libmime from 'libmime';
import { z } from 'zod';
import { canonicalMailboxOr } from '../mail/mailbox-name.js';

/**
 * The two bodies Dovecot can send: the OX driver's (fixed by Dovecot) and the one our
 * dovecot/push.lua builds. Both normalise to one PushEvent.
 */

export type PushAction = 'enqueue' | 'expunge' | 'flags' | 'ignore';

export interface PushEvent {
  driver: 'ox' | 'lua';
  event: string;
  action: PushAction;
  mailbox: string;
  folder: string;
  uidvalidity: number;
  uid: number;
  messageId?: string;
  from?: string;
  subject?: string;
  /** FlagsSet / FlagsClear (Lua driver): the keywords set or cleared. */
  keywords?: string[];
}

const MAX_HEADER_CHARS = 998; // RFC 5322 line limit: anything longer is not a real header value
const UINT32_MAX = 0xffffffff;
// C0 controls and DEL: never part of a login or a folder name, and dangerous in logs.
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

const name = (what: string, max: number) =>
  z
    .string({ error: (i) => (i.input === undefined ? `${what} is required` : `${what} must be a string`) })
    .trim()
    .min(1, `${what} must not be empty`)
    .max(max, `${what} is longer than ${max} characters`)
    .refine((v) => !CONTROL_CHARS.test(v), `${what} contains control characters`);

/** A Dovecot login name, in its canonical form (mail/mailbox-name.ts). */
const user = name('user', 255).transform((v, ctx) => canonicalMailboxOr(v, (message) => ctx.addIssue({ code: 'custom', message: `user ${message}` })));

/** IMAP UIDs and UIDVALIDITY: 1 .. 2^32-1; Dovecot sends numbers, scripts may send digit strings. */
const u32 = (what: string) =>
  z
    .union([z.number(), z.string().regex(/^\d{1,10}$/, `${what} must be a whole number`)], {
      error: (i) => (i.input === undefined ? `${what} is required` : `${what} must be a whole number`),
    })
    .transform(Number)
    .pipe(
      z
        .number()
        .int(`${what} must be a whole number`)
        .min(1, `${what} must be at least 1`)
        .max(UINT32_MAX, `${what} must fit in 32 bits`),
    );

/** Raw header value (possibly RFC 2047 encoded): decoded, unfolded, control characters removed. */
const headerValue = z
  .string()
  .optional()
  .transform((v) => (v === undefined ? undefined : decodeHeader(v)));

export function decodeHeader(raw: string): string | undefined {
  let text = raw.replace(/\r?\n[ \t]+/g, ' ');
  // Most values carry no encoded-word and need no decoder.
  if (text.includes('=?')) {
    try {
      // A broken encoded-word that decodes to nothing stays as it came: still useful to a human.
      text = libmime.decodeWords(text).trim() || text;
    } catch {
      // Likewise when the decoder gives up.
    }
  }
  text = text.replace(/[\u0000-\u0008\u000a-\u001f\u007f]/g, ' ').replace(/\s+/g, ' ').trim();
  if (text === '') return undefined;
  return text.length > MAX_HEADER_CHARS ? text.slice(0, MAX_HEADER_CHARS) : text;
}

export const oxPushBody = z.object({
  user,
  event: z.string().min(1).max(64).default('messageNew'),
  folder: name('folder', 1024),
  'imap-uidvalidity': u32('imap-uidvalidity'),
  'imap-uid': u32('imap-uid'),
  from: headerValue,
  subject: headerValue,
  snippet: z.string().optional(),
  unseen: z.number().optional(),
});

export const luaPushBody = z.object({
  driver: z.literal('lua'),
  event: z.string().min(1).max(64),
  user,
  folder: name('folder', 1024),
  uidvalidity: u32('uidvalidity'),
  uid: u32('uid'),
  message_id: z.string().max(MAX_HEADER_CHARS).optional().transform((v) => (v ? decodeHeader(v) : undefined)),
  from: headerValue,
  subject: headerValue,
  snippet: z.string().optional(),
  date: z.union([z.string(), z.number()]).optional(),
  // IMAP keywords are atoms: no spaces or controls; Dovecot allows at most 255 per mailbox.
  keywords: z.array(z.string().min(1).max(255).regex(/^[^\s\u0000-\u001f\u007f]+$/, 'keywords are IMAP atoms')).max(255).optional(),
});

/** Events mailsight acts on; everything else is acknowledged and ignored. */
function actionFor(event: string): PushAction {
  switch (event.toLowerCase()) {
    case 'messagenew':
    case 'messageappend':
      return 'enqueue';
    case 'messageexpunge':
      return 'expunge';
    case 'flagsset':
    case 'flagsclear':
      return 'flags';
    default:
      return 'ignore';
  }
}

export type ParseResult = { ok: true; event: PushEvent } | { ok: false; problems: string[] };

export function parsePushBody(body: unknown): ParseResult {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, problems: ['body must be a JSON object'] };
  }
  const isLua = (body as Record<string, unknown>).driver === 'lua';
  const result = isLua ? luaPushBody.safeParse(body) : oxPushBody.safeParse(body);
  if (!result.success) {
    return {
      ok: false,
      problems: result.error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)),
    };
  }
  const d = result.data;
  if ('driver' in d) {
    return {
      ok: true,
      event: {
        driver: 'lua',
        event: d.event,
        action: actionFor(d.event),
        mailbox: d.user,
        folder: d.folder,
        uidvalidity: d.uidvalidity,
        uid: d.uid,
        messageId: d.message_id,
        from: d.from,
        subject: d.subject,
        keywords: d.keywords,
      },
    };
  }
  return {
    ok: true,
    event: {
      driver: 'ox',
      event: d.event,
      action: actionFor(d.event),
      mailbox: d.user,
      folder: d.folder,
      uidvalidity: d['imap-uidvalidity'],
      uid: d['imap-uid'],
      from: d.from,
      subject: d.subject,
    },
  };
}
