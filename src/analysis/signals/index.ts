import type { ParsedMessage } from '../../mail/parse.js';
import type { HiddenTextReport } from '../../mail/hidden-text.js';
import { authResults, type AuthSignals } from './auth.js';
import { BULK_SIGN_POINTS, BULK_SPAM_SCORE, bulkSignals, type BulkSignals } from './bulk.js';
import { riskyAttachments, type RiskyKind } from './attachments.js';
import { promptInjection } from './injection.js';
import { linkSignals, type LinkSignals } from './links.js';
import { sensitiveData, type SensitiveKind } from './sensitive.js';
import { domainOf, senderSignals, type SenderSignals } from './sender.js';
import { rspamd, spamAssassin, type RspamdSignals, type SpamAssassinSignals } from './spam-headers.js';

/**
 * Deterministic evidence about a message, computed before (and independent of) the model: stored
 * with the analysis, given to the model in compact form, and a floor under its verdict. Counts and
 * kinds only: no addresses, link targets or values, so the signals are not message content.
 */
export interface Signals {
  auth: AuthSignals;
  spamAssassin?: SpamAssassinSignals;
  rspamd?: RspamdSignals;
  sender: SenderSignals;
  links: LinkSignals;
  attachments: Partial<Record<RiskyKind, number>>;
  hiddenText: HiddenTextReport;
  injection: string[];
  sensitive: Partial<Record<SensitiveKind, number>>;
  bulk: BulkSignals;
}

export function computeSignals(p: ParsedMessage): Signals {
  const h = p.headers;
  const textForScan = `${p.subject ?? ''}\n${p.text}`;
  return {
    auth: authResults(h['authentication-results']),
    spamAssassin: spamAssassin(h['x-spam-status'], h['x-spam-score'], h['x-spam-flag']),
    rspamd: rspamd(h['x-spamd-result'], h['x-rspamd-score'], h['x-rspamd-action'], h['x-rspamd-symbols']),
    sender: senderSignals(p.from, p.replyTo, p.returnPath),
    links: linkSignals(p.links, domainOf(p.from?.address)),
    attachments: riskyAttachments(p.attachments),
    hiddenText: p.hiddenText,
    injection: promptInjection(textForScan),
    sensitive: sensitiveData(textForScan),
    bulk: bulkSignals(p),
  };
}

export interface Evidence {
  /** 0..1: how strongly the signals alone say phishing (or malware). */
  phishing: number;
  /** 0..1: how strongly upstream filters (SpamAssassin, rspamd) say spam: strong enough to overrule the model. */
  spam: number;
  /** 0..1: how strongly the message's own bulk-mail signs say spam: decides only when no model is asked. */
  bulk: number;
  /** What the signals found, in words, for the stored reasons (kept apart from the model's). */
  reasons: string[];
  /** Each piece of phishing and upstream-spam evidence with its weight (they combine as a noisy OR). */
  items: { kind: 'phishing' | 'spam'; weight: number; reason: string }[];
  /** The bulk-mail points, and the signs that make them up (BULK_SPAM_SCORE decides without a model). */
  bulkScore: number;
  bulkSigns: { name: string; points: number }[];
}

/** At or above this, deterministic evidence decides, whatever the model says. */
export const FLOOR = 0.8;

/** Independent pieces of evidence combine as a noisy OR: 1 - (1-a)(1-b)... */
const combine = (weights: number[]) => 1 - weights.reduce((acc, w) => acc * (1 - w), 1);
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export function evidence(s: Signals): Evidence {
  const phishing: number[] = [];
  const spam: number[] = [];
  const reasons: string[] = [];
  const items: Evidence['items'] = [];
  const add = (into: number[], weight: number, reason: string) => {
    into.push(weight);
    reasons.push(reason);
    items.push({ kind: into === spam ? 'spam' : 'phishing', weight, reason });
  };
  if (s.auth.dmarc === 'fail') add(phishing, 0.5, 'DMARC failed: the sender domain does not vouch for this message');
  if (s.auth.spf === 'fail') add(phishing, 0.2, 'SPF failed');
  if (s.auth.dkim === 'fail') add(phishing, 0.15, 'DKIM signature failed');
  if (s.sender.brandImpersonation) add(phishing, 0.5, `display name claims ${s.sender.brandImpersonation}; the sender's domain is not one of ${s.sender.brandImpersonation}'s`);
  if (s.sender.replyToMismatch) add(phishing, 0.15, 'replies go to another domain than the sender\'s');
  if (s.links.credential) add(phishing, 0.6, `${plural(s.links.credential, 'link')} asking to log in or verify, to a site the sender does not own`);
  if (s.links.lookalike) add(phishing, 0.5, `${plural(s.links.lookalike, 'link')} to a look-alike of a well-known domain`);
  if (s.links.mismatched) add(phishing, 0.3, `${plural(s.links.mismatched, 'link')} whose text shows another domain than the target`);
  if (s.links.ipLiteral) add(phishing, 0.3, `${plural(s.links.ipLiteral, 'link')} to a bare IP address`);
  if (s.links.punycode) add(phishing, 0.2, `${plural(s.links.punycode, 'link')} to a punycode (internationalised) domain`);
  if (s.links.shortener) add(phishing, 0.1, `${plural(s.links.shortener, 'link')} through a URL shortener`);
  const risky = Object.entries(s.attachments);
  if (risky.length) {
    const worst = risky.some(([k]) => ['executable', 'script', 'disk_image', 'html'].includes(k)) ? 0.4 : 0.35;
    add(phishing, worst, `risky attachment: ${risky.map(([k, n]) => `${k.replace('_', ' ')}${n! > 1 ? ` x${n}` : ''}`).join(', ')}`);
  }
  if (s.injection.length) add(phishing, 0.35, `text aimed at AI filters (${s.injection.join(', ').replace(/_/g, ' ')})`);
  if (s.hiddenText.elements) add(phishing, 0.15, `hidden text in the HTML (${plural(s.hiddenText.elements, 'element')}: ${s.hiddenText.techniques.join(', ')})`);

  const sa = s.spamAssassin;
  if (sa && (sa.flagged || (sa.required !== undefined && sa.score >= sa.required))) {
    const strong = sa.required !== undefined && sa.required > 0 && sa.score >= 2 * sa.required;
    add(spam, strong ? 0.97 : 0.9, `SpamAssassin: spam, score ${sa.score}${sa.required !== undefined ? ` (required ${sa.required})` : ''}`);
  }
  const rs = s.rspamd;
  if (rs) {
    if (rs.action === 'reject') add(spam, 0.95, `rspamd: reject, score ${rs.score}`);
    else if (rs.action === 'add header' || rs.action === 'rewrite subject') add(spam, 0.85, `rspamd: ${rs.action}, score ${rs.score}`);
    else if (rs.required !== undefined && rs.score >= rs.required) add(spam, 0.85, `rspamd: score ${rs.score} (required ${rs.required})`);
  }
  const b = s.bulk;
  const bulk = b.score >= BULK_SPAM_SCORE ? 0.85 : Math.max(0, (b.score / BULK_SPAM_SCORE) * 0.75);
  if (b.score >= BULK_SPAM_SCORE / 2) reasons.push(`bulk-mail signs (${b.score} points): ${b.signs.filter((x) => !x.startsWith('a reply') && !x.startsWith('mailing') && !x.startsWith('Message-ID')).join(', ')}`);
  const bulkSigns = b.signs.map((name) => ({ name, points: BULK_SIGN_POINTS[name] ?? 0 }));
  return { phishing: combine(phishing), spam: combine(spam), bulk, reasons, items, bulkScore: b.score, bulkSigns };
}

/** The signals as a few lines for the prompt: what the model should weigh, not re-derive. */
export function promptSignals(s: Signals, ev: Evidence = evidence(s)): string {
  const lines: string[] = [];
  const auth = Object.entries(s.auth).map(([k, v]) => `${k.toUpperCase()}=${v}`);
  if (auth.length) lines.push(`authentication: ${auth.join(', ')}`);
  if (s.spamAssassin) lines.push(`SpamAssassin score ${s.spamAssassin.score}${s.spamAssassin.tests.length ? ` (${s.spamAssassin.tests.slice(0, 8).join(', ')})` : ''}`);
  if (s.rspamd) lines.push(`rspamd score ${s.rspamd.score}${s.rspamd.action ? `, action ${s.rspamd.action}` : ''}`);
  for (const r of ev.reasons.filter((r) => !/^(SpamAssassin|rspamd|DMARC|SPF|DKIM)/.test(r))) lines.push(r);
  const sensitive = Object.entries(s.sensitive).map(([k, n]) => `${k} x${n}`);
  if (sensitive.length) lines.push(`sensitive data detected: ${sensitive.join(', ')}`);
  return lines.map((l) => `- ${l}`).join('\n');
}

/** Detector kinds as the result schema's sensitive types. */
export const SENSITIVE_TYPE: Record<SensitiveKind, string> = {
  payment_card: 'payment_card',
  iban: 'bank_account',
  credentials: 'credentials',
  api_key: 'api_key',
  private_key: 'private_key',
  national_id: 'national_id',
};
