import { convert as htmlToText, type HtmlToTextOptions } from 'html-to-text';
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';

/** What the analysis needs of a message; everything else stays in the mailbox. */
export interface ParsedMessage {
  messageId?: string;
  from?: { address?: string; name?: string };
  replyTo?: string;
  returnPath?: string;
  to: string[];
  cc: string[];
  date?: Date;
  subject?: string;
  headers: Record<string, string>;
  /** Body text: text/plain, or the HTML part converted to text. */
  text: string;
  links: { href: string; text?: string }[];
  attachments: { filename?: string; contentType: string; size: number }[];
  sizeBytes: number;
  warnings: string[];
}

/** Headers worth keeping for signals and the prompt, lower-case. */
export const KEPT_HEADERS = [
  'list-id',
  'list-unsubscribe',
  'authentication-results',
  'x-spam-status',
  'x-spam-score',
  'x-spam-flag',
  'x-rspamd-score',
  'x-rspamd-action',
  'x-spamd-result',
  'x-rspamd-symbols',
];

const addresses = (a: AddressObject | AddressObject[] | undefined): string[] =>
  (Array.isArray(a) ? a : a ? [a] : []).flatMap((o) => o.value.map((v) => v.address ?? v.name ?? '').filter(Boolean));

function headerText(value: unknown): string {
  if (value == null) return '';
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(headerText).join('\n');
  if (typeof value === 'object' && 'text' in (value as object)) return String((value as { text: unknown }).text);
  if (typeof value === 'object' && 'value' in (value as object)) return String((value as { value: unknown }).value);
  return String(value);
}

const HREF = /<a\b[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))[^>]*>([\s\S]*?)<\/a>/gi;
const BARE_URL = /\bhttps?:\/\/[^\s<>"')\]]+/gi;
const HTML_TO_TEXT: HtmlToTextOptions = {
  wordwrap: false,
  selectors: [
    { selector: 'a', options: { ignoreHref: true } },
    { selector: 'img', format: 'skip' },
  ],
};

const decodeEntities = (s: string) =>
  s.replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&nbsp;/g, ' ');

/** Links with the text a reader sees; from the HTML when there is some, else bare URLs in the text. */
export function extractLinks(html: string | undefined, text: string): { href: string; text?: string }[] {
  const out = new Map<string, { href: string; text?: string }>();
  if (html) {
    for (const m of html.matchAll(HREF)) {
      const href = decodeEntities((m[1] ?? m[2] ?? m[3] ?? '').trim());
      if (!href || href.startsWith('#')) continue;
      const visible = decodeEntities(m[4]!.replace(/<[^>]*>/g, ' ')).replace(/\s+/g, ' ').trim();
      if (!out.has(href)) out.set(href, { href, ...(visible ? { text: visible.slice(0, 200) } : {}) });
    }
  }
  for (const m of text.matchAll(BARE_URL)) if (!out.has(m[0])) out.set(m[0], { href: m[0] });
  return [...out.values()].slice(0, 100);
}

/** Parses what was fetched (possibly only the first bytes of a large message). Never throws. */
export async function parseMessage(raw: Buffer, opts: { truncatedFrom?: number } = {}): Promise<ParsedMessage> {
  const warnings: string[] = [];
  if (opts.truncatedFrom) {
    warnings.push(`message is ${opts.truncatedFrom} bytes; analysed from its first ${raw.length} bytes`);
  }
  let mail: ParsedMail;
  try {
    mail = await simpleParser(raw, { skipImageLinks: true, skipTextToHtml: true, maxHtmlLengthToParse: 2_000_000 });
  } catch (err) {
    warnings.push(`MIME parsing failed: ${(err as Error).message}; analysed as plain text`);
    const text = raw.toString('utf8');
    const split = text.search(/\r?\n\r?\n/);
    return {
      to: [],
      cc: [],
      headers: {},
      text: split >= 0 ? text.slice(split).trim() : text,
      links: extractLinks(undefined, text),
      attachments: [],
      sizeBytes: opts.truncatedFrom ?? raw.length,
      warnings,
    };
  }

  const headers: Record<string, string> = {};
  for (const name of KEPT_HEADERS) {
    const v = mail.headers.get(name);
    if (v !== undefined) headers[name] = headerText(v).slice(0, 2000);
  }
  const from = mail.from?.value[0];
  const html = typeof mail.html === 'string' ? mail.html : undefined;
  // An HTML-only message: its text as a reader sees it, links shown once (they are listed apart).
  const plain = mail.text?.trim() ? mail.text : html ? htmlToText(html, HTML_TO_TEXT) : '';
  const text = plain.replace(/\r\n/g, '\n');
  if (!mail.headers.has('from')) warnings.push('no From header');
  if (!text.trim() && !html && mail.attachments.length === 0) warnings.push('no readable body');
  // mailparser puts "now" in place of a Date it cannot read: judge the raw header instead.
  const rawDate = mail.headerLines.find((h) => h.key === 'date')?.line.replace(/^date:\s*/i, '');
  const dateOk = rawDate !== undefined && !Number.isNaN(Date.parse(rawDate.replace(/\s*\([^)]*\)\s*$/, '')));
  if (rawDate !== undefined && !dateOk) warnings.push('unparseable Date header');

  return {
    messageId: mail.messageId,
    from: from ? { address: from.address || undefined, name: from.name || undefined } : undefined,
    replyTo: addresses(mail.replyTo)[0],
    returnPath: headerText(mail.headers.get('return-path')).replace(/[<>]/g, '').trim() || undefined,
    to: addresses(mail.to),
    cc: addresses(mail.cc),
    date: dateOk && mail.date && !Number.isNaN(mail.date.getTime()) ? mail.date : undefined,
    subject: mail.subject,
    headers,
    text,
    links: extractLinks(html, text),
    attachments: mail.attachments.map((a) => ({
      filename: a.filename,
      contentType: a.contentType,
      size: a.size,
    })),
    sizeBytes: opts.truncatedFrom ?? raw.length,
    warnings,
  };
}
