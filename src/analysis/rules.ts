import { z } from 'zod';
import type { ParsedMessage } from '../mail/parse.js';
import { VERDICTS } from './result.js';
import type { Signals } from './signals/index.js';

/**
 * Escalation rules (YAML `rules:`), in the spirit of Mailwarden: the first rule whose every
 * condition holds decides whether a message gets the full LLM call (`analyze`) or is settled on its
 * signals alone (`skip`, no LLM call). No rule matching: analyse. Checked in order.
 */

const pattern = z.string().refine((p) => {
  try {
    new RegExp(p, 'i');
    return true;
  } catch {
    return false;
  }
}, 'must be a valid regular expression');

export const ruleSchema = z
  .object({
    name: z.string().trim().min(1).max(100),
    match: z
      .object({
        /** Any of these SpamAssassin tests or rspamd symbols present. */
        spam_tests: z.array(z.string().trim().min(1)).min(1).optional(),
        /** The upstream filter's score (SpamAssassin, else rspamd) at least / at most this. */
        min_score: z.number().optional(),
        max_score: z.number().optional(),
        /** Header name -> regular expression (case-insensitive); every one must match. */
        headers: z.record(z.string().min(1), pattern).optional(),
        /** The sender's address matches one of these (`*` is a wildcard): allow or deny lists. */
        from: z.array(z.string().trim().min(1)).min(1).optional(),
      })
      .strict()
      .refine((m) => Object.keys(m).length > 0, 'a rule needs at least one condition'),
    action: z.enum(['analyze', 'skip']),
    /** For `skip`: the verdict to record (an allow list says legit, a deny list spam); default: the signals'. */
    verdict: z.enum(VERDICTS).optional(),
  })
  .strict();

export type Rule = z.infer<typeof ruleSchema>;
export const rulesSchema = z.array(ruleSchema).default([]);

export interface RuleDecision {
  action: 'analyze' | 'skip';
  rule?: Rule;
}

const globToRegExp = (glob: string) => new RegExp(`^${glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`, 'i');

/** Compiled once at start-up: the first matching rule's decision for a message. */
export function compileRules(rules: Rule[]) {
  const compiled = rules.map((rule) => ({
    rule,
    tests: rule.match.spam_tests?.map((t) => t.toUpperCase()),
    headers: Object.entries(rule.match.headers ?? {}).map(([name, re]) => [name.toLowerCase(), new RegExp(re, 'i')] as const),
    from: rule.match.from?.map(globToRegExp),
  }));
  return (p: Pick<ParsedMessage, 'from' | 'allHeaders'>, s: Pick<Signals, 'spamAssassin' | 'rspamd'>): RuleDecision => {
    const present = new Set([...(s.spamAssassin?.tests ?? []), ...(s.rspamd?.symbols ?? [])]);
    const score = s.spamAssassin?.score ?? s.rspamd?.score;
    const sender = p.from?.address ?? '';
    for (const c of compiled) {
      const m = c.rule.match;
      if (c.tests && !c.tests.some((t) => present.has(t))) continue;
      if (m.min_score !== undefined && !(score !== undefined && score >= m.min_score)) continue;
      if (m.max_score !== undefined && !(score !== undefined && score <= m.max_score)) continue;
      if (c.headers.some(([name, re]) => p.allHeaders[name] === undefined || !re.test(p.allHeaders[name]!))) continue;
      if (c.from && !c.from.some((re) => re.test(sender))) continue;
      return { action: c.rule.action, rule: c.rule };
    }
    return { action: 'analyze' };
  };
}

/**
 * The rules the README recommends as a start (not active unless configured): mail an upstream
 * filter already condemned outright gets no LLM call.
 */
export const RECOMMENDED_RULES: Rule[] = [
  { name: 'upstream-spam', match: { min_score: 15 }, action: 'skip' },
  {
    name: 'upstream-blocklists',
    match: { spam_tests: ['URIBL_BLACK', 'URIBL_DBL_SPAM', 'RCVD_IN_SBL', 'RCVD_IN_XBL', 'RBL_SPAMHAUS_SBL', 'RBL_SPAMHAUS_XBL', 'DBL_SPAM'] },
    action: 'skip',
  },
];
