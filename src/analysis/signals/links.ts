import { domainToUnicode } from 'node:url';
import { baseDomain, BRANDS } from './sender.js';

/** What the links in a message do, counted by kind; never the links themselves. */
export interface LinkSignals {
  total: number;
  /** Visible text shows a domain other than the one the link goes to. */
  mismatched: number;
  ipLiteral: number;
  punycode: number;
  /** A domain made to look like a well-known brand's (paypa1.com, rnicrosoft.com). */
  lookalike: number;
  shortener: number;
  /** Asks for a login, verification or payment update, and goes somewhere the sender does not own. */
  credential: number;
}

export const SHORTENERS = new Set([
  'bit.ly', 'tinyurl.com', 't.co', 'goo.gl', 'ow.ly', 'is.gd', 'buff.ly', 'rebrand.ly', 'cutt.ly', 'shorturl.at',
  'rb.gy', 'tiny.cc', 'bl.ink', 'lnkd.in', 'soo.gd', 's.id', 't.ly', 'v.gd', 'qrco.de', 'short.io',
]);

const CREDENTIAL_WORDS = /\b(log ?in|sign ?in|verify|verification|validate|confirm|password|account|unlock|suspend|update (your )?(billing|payment|details)|secure message|reactivate)\b/i;
const DOMAIN_IN_TEXT = /\b((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24})\b/i;

function hostOf(href: string): string | undefined {
  try {
    const u = new URL(href);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
    return u.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  } catch {
    return undefined;
  }
}

/** Dotted IPv4, IPv6, or an IPv4 written as one number (http://3232235777/), which URL() already turned dotted. */
const isIp = (host: string) => /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(':');

const LOOKALIKE_SWAPS: [RegExp, string][] = [
  [/rn/g, 'm'],
  [/vv/g, 'w'],
  [/0/g, 'o'],
  [/1/g, 'l'],
  [/3/g, 'e'],
  [/5/g, 's'],
  [/\$/g, 's'],
];
const BRAND_BASES = new Set(Object.values(BRANDS).flat().map(baseDomain));

function isLookalike(host: string): boolean {
  const base = baseDomain(domainToUnicode(host) || host);
  if (BRAND_BASES.has(base)) return false;
  let folded = base.normalize('NFKD').replace(/[\u0300-\u036f]/g, '');
  for (const [from, to] of LOOKALIKE_SWAPS) folded = folded.replace(from, to);
  // Cyrillic letters that render like Latin ones.
  folded = folded.replace(/[а]/g, 'a').replace(/[е]/g, 'e').replace(/[о]/g, 'o').replace(/[р]/g, 'p').replace(/[с]/g, 'c').replace(/[х]/g, 'x');
  return folded !== base && BRAND_BASES.has(folded);
}

export function linkSignals(links: { href: string; text?: string }[], senderDomain: string | undefined): LinkSignals {
  const out: LinkSignals = { total: 0, mismatched: 0, ipLiteral: 0, punycode: 0, lookalike: 0, shortener: 0, credential: 0 };
  const sender = senderDomain ? baseDomain(senderDomain) : undefined;
  for (const link of links) {
    const host = hostOf(link.href);
    if (!host) continue;
    out.total++;
    const ip = isIp(host);
    const puny = host.split('.').some((l) => l.startsWith('xn--'));
    const lookalike = !ip && isLookalike(host);
    const short = SHORTENERS.has(host) || SHORTENERS.has(host.replace(/^www\./, ''));
    const shown = link.text ? DOMAIN_IN_TEXT.exec(link.text.replace(/^https?:\/\//i, ''))?.[1]?.toLowerCase() : undefined;
    const mismatched = Boolean(shown && !ip && baseDomain(shown) !== baseDomain(host) && /\.[a-z]{2,}$/.test(shown));
    if (ip) out.ipLiteral++;
    if (puny) out.punycode++;
    if (lookalike) out.lookalike++;
    if (short) out.shortener++;
    if (mismatched) out.mismatched++;
    const suspicious = ip || puny || lookalike || short || mismatched;
    const asksCredentials = CREDENTIAL_WORDS.test(link.text ?? '') || CREDENTIAL_WORDS.test(link.href.replace(/[/_.?=&-]+/g, ' '));
    const elsewhere = ip || !sender || baseDomain(host) !== sender;
    if (asksCredentials && (suspicious || elsewhere)) out.credential++;
  }
  return out;
}
