/** What an upstream SpamAssassin or rspamd already said about the message (X-Spam-Status, X-Spamd-Result, ...). */

export interface SpamAssassinSignals {
  flagged: boolean;
  score: number;
  required?: number;
  tests: string[];
}

export interface RspamdSignals {
  score: number;
  required?: number;
  action?: string;
  symbols: string[];
}

const num = (s: string | undefined) => (s === undefined || Number.isNaN(Number(s)) ? undefined : Number(s));

/** `Yes, score=12.3 required=5.0 tests=A,B,C autolearn=spam version=3.4.6` */
export function spamAssassin(status: string | undefined, scoreHeader?: string, flag?: string): SpamAssassinSignals | undefined {
  if (!status && !scoreHeader) return undefined;
  const s = (status ?? '').replace(/\s+/g, ' ');
  const score = num(/\b(?:score|hits)=(-?[\d.]+)/i.exec(s)?.[1]) ?? num(scoreHeader?.trim());
  if (score === undefined) return undefined;
  const testsText = /\btests=(.*?)(?:\s+[a-z_]+=|$)/i.exec(s)?.[1] ?? '';
  return {
    flagged: /^\s*yes\b/i.test(s) || /^\s*yes\b/i.test(flag ?? ''),
    score,
    required: num(/\brequired=(-?[\d.]+)/i.exec(s)?.[1]),
    tests: testsText.split(/[,\s]+/).map((t) => t.trim().toUpperCase()).filter((t) => /^[A-Z0-9_]+$/.test(t)),
  };
}

/** `default: False [3.40 / 15.00]; SYMBOL_A(1.00)[...]; SYMBOL_B(0.50)` and X-Rspamd-Score / -Action. */
export function rspamd(result: string | undefined, scoreHeader?: string, action?: string, symbolsHeader?: string): RspamdSignals | undefined {
  const head = result ? /\[\s*(-?[\d.]+)\s*\/\s*(-?[\d.]+)\s*\]/.exec(result) : null;
  const score = num(head?.[1]) ?? num(scoreHeader?.trim());
  if (score === undefined) return undefined;
  const source = `${result ?? ''};${symbolsHeader ?? ''}`;
  const symbols = [...new Set([...source.matchAll(/(?:^|[;,\s])([A-Z][A-Z0-9_]{2,})\s*\(/g)].map((m) => m[1]!))];
  return { score, required: num(head?.[2]), action: action?.trim().toLowerCase() || undefined, symbols };
}
