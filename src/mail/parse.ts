import { convert as htmlToText, type HtmlToTextOptions } from 'html-to-text';
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
import { stripHiddenText, type HiddenTextReport } from './hidden-text.js';

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
  /** Every header, lower-case name -> text (for escalation rules' header patterns). */
  allHeaders: Record<string, string>;
  /** Body text: text/plain, or the HTML part converted to text. */
  text: string;
  links: { href: string; text?: string }[];
  attachments: { filename?: string; contentType: string; size: number; encrypted?: boolean }[];
  /** The message has an HTML part, and a text/plain one. */
  html: boolean;
  hasPlainText: boolean;
  /** Text hidden from the reader in the HTML part: reported, and kept out of `text`. */
  hiddenText: HiddenTextReport;
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

/** Drops the mbox "From " separator line that can precede a message saved from a mailbox file. */
export function stripMboxFrom(raw: Buffer): Buffer {
  if (raw.subarray(0, 5).toString('latin1') !== 'From ') return raw;
  const nl = raw.indexOf(0x0a);
  return nl < 0 ? Buffer.alloc(0) : raw.subarray(nl + 1);
}

/** A ZIP whose first entry is encrypted (general-purpose flag bit 0): its content cannot be scanned. */
function isEncryptedZip(content: Buffer | undefined): boolean {
  return Boolean(content && content.length >= 8 && content.readUInt32LE(0) === 0x04034b50 && (content.readUInt16LE(6) & 1) === 1);
}

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
    // We convert HTML to text ourselves (hidden text removed, no line wrapping): mailparser need not.
    mail = await simpleParser(raw, { skipImageLinks: true, skipTextToHtml: true, skipHtmlToText: true, maxHtmlLengthToParse: 2_000_000 });
  } catch (err) {
    warnings.push(`MIME parsing failed: ${(err as Error).message}; analysed as plain text`);
    const text = raw.toString('utf8');
    const split = text.search(/\r?\n\r?\n/);
    return {
      to: [],
      cc: [],
      headers: {},
      allHeaders: {},
      text: split >= 0 ? text.slice(split).trim() : text,
      links: extractLinks(undefined, text),
      attachments: [],
      html: false,
      hasPlainText: true,
      hiddenText: { elements: 0, chars: 0, techniques: [] },
      sizeBytes: opts.truncatedFrom ?? raw.length,
      warnings,
    };
  }

  const headers: Record<string, string> = {};
  for (const name of KEPT_HEADERS) {
    const v = mail.headers.get(name);
    if (v !== undefined) headers[name] = headerText(v).slice(0, 2000);
  }
  // From the raw lines: mailparser folds some headers (List-*) into structured values under other names.
  const allHeaders: Record<string, string> = {};
  for (const h of mail.headerLines) {
    const value = h.line.slice(h.line.indexOf(':') + 1).replace(/\r?\n[ \t]+/g, ' ').trim();
    allHeaders[h.key] = allHeaders[h.key] === undefined ? value.slice(0, 2000) : `${allHeaders[h.key]}\n${value}`.slice(0, 2000);
  }
  const from = mail.from?.value[0];
  const html = typeof mail.html === 'string' ? mail.html : undefined;
  const visible = html ? stripHiddenText(html) : undefined;
  // The text is what a reader sees: the plain part, or the HTML converted with hidden text removed
  // and links shown once (they are listed apart). With skipHtmlToText mailparser's `text` holds
  // only real plain parts.
  const hasPlainText = html === undefined || Boolean(mail.text?.trim());
  const plain = visible && (visible.hidden.elements > 0 || !hasPlainText) ? htmlToText(visible.html, HTML_TO_TEXT) : (mail.text ?? '');
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
    allHeaders,
    text,
    links: extractLinks(html, text),
    attachments: mail.attachments.map((a) => ({
      filename: a.filename,
      contentType: a.contentType,
      size: a.size,
      ...(isEncryptedZip(a.content) ? { encrypted: true } : {}),
    })),
    html: html !== undefined,
    hasPlainText,
    hiddenText: visible?.hidden ?? { elements: 0, chars: 0, techniques: [] },
    sizeBytes: opts.truncatedFrom ?? raw.length,
    warnings,
  };
}
