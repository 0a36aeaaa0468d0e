/** Text shaping for the prompt: what a human reads first, without quoted history or signatures. */

const SIGNATURE_DELIMITER = /^-- ?$/m;
const QUOTE_INTRO = /^(On .{5,200} wrote:|Am .{5,200} schrieb .{0,80}:|Le .{5,200} a écrit ?:|-{2,} ?Original Message ?-{2,}|-{2,} ?Ursprüngliche Nachricht ?-{2,}|From: .+\nSent: .+)$/im;

/** Drops quoted replies (`>` lines, "On … wrote:" and what follows) and the signature. */
export function trimQuotesAndSignature(text: string): string {
  let t = text.replace(/\r\n/g, '\n');
  const sig = SIGNATURE_DELIMITER.exec(t);
  if (sig) t = t.slice(0, sig.index);
  const intro = QUOTE_INTRO.exec(t);
  // Only when something of the new message precedes it; a forward is all quote and is kept.
  if (intro && t.slice(0, intro.index).trim().length > 0) t = t.slice(0, intro.index);
  t = t
    .split('\n')
    .filter((line) => !/^\s*>/.test(line))
    .join('\n');
  return t.replace(/\n{3,}/g, '\n\n').trim();
}

/** Cuts to at most `max` characters, at a word boundary when there is one in the last 20%. */
export function cutAtWord(text: string, max: number): { text: string; cut: boolean } {
  if (text.length <= max) return { text, cut: false };
  const slice = text.slice(0, max);
  const lastSpace = slice.search(/\s\S*$/);
  const end = lastSpace > max * 0.8 ? lastSpace : max;
  return { text: slice.slice(0, end).trimEnd(), cut: true };
}
