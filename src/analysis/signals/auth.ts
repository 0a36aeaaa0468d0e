/** SPF, DKIM and DMARC results from Authentication-Results (RFC 8601), as the receiving server wrote them. */

export type AuthResult = 'pass' | 'fail' | 'softfail' | 'neutral' | 'none' | 'temperror' | 'permerror' | 'policy';
export interface AuthSignals {
  spf?: AuthResult;
  dkim?: AuthResult;
  dmarc?: AuthResult;
}

const RESULTS = new Set<AuthResult>(['pass', 'fail', 'softfail', 'neutral', 'none', 'temperror', 'permerror', 'policy']);

/**
 * The first result per method. Several Authentication-Results headers may be present (one per hop);
 * the receiving server's own comes first, which is the one to trust.
 */
export function authResults(header: string | undefined): AuthSignals {
  const out: AuthSignals = {};
  if (!header) return out;
  // Comments in parentheses can contain anything, including "dmarc=pass": drop them first.
  const text = header.replace(/\([^()]*\)/g, ' ').toLowerCase();
  for (const m of text.matchAll(/\b(spf|dkim|dmarc)\s*=\s*([a-z]+)/g)) {
    const method = m[1] as keyof AuthSignals;
    const result = m[2] as AuthResult;
    if (RESULTS.has(result) && out[method] === undefined) out[method] = result;
  }
  return out;
}
