/** Sensitive data in the text, by detector, as counts: the values are never kept or logged. */

export type SensitiveKind = 'payment_card' | 'iban' | 'credentials' | 'api_key' | 'private_key' | 'national_id';

export function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** ISO 13616: move the first four characters to the end, letters to numbers, mod 97 must be 1. */
export function ibanValid(iban: string): boolean {
  const s = iban.replace(/\s+/g, '').toUpperCase();
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$/.test(s)) return false;
  const rearranged = s.slice(4) + s.slice(0, 4);
  let rest = 0;
  for (const ch of rearranged) {
    const v = ch >= 'A' ? String(ch.charCodeAt(0) - 55) : ch;
    for (const digit of v) rest = (rest * 10 + Number(digit)) % 97;
  }
  return rest === 1;
}

// Card numbers as people write them: 13-19 digits, in groups split by spaces or dashes.
const CARD = /\b(?:\d[ -]?){12,18}\d\b/g;
const CARD_PREFIX = /^(4|5[1-5]|2[2-7]|3[47]|6011|65|3[068]|35)/;
const IBAN = /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b/g;
const CREDENTIAL = /\b(password|passwort|passwd|pwd|passcode|kennwort|mot de passe)\s*[:=]\s*\S{4,}/gi;
const API_KEYS = [
  /\bAKIA[0-9A-Z]{16}\b/g,
  /\bgh[pousr]_[A-Za-z0-9]{36,}\b/g,
  /\bxox[baprs]-[A-Za-z0-9-]{10,}\b/g,
  /\b[sr]k_live_[0-9a-zA-Z]{20,}\b/g,
  /\bAIza[0-9A-Za-z_-]{35}\b/g,
  /\bsk-(?:proj-)?[A-Za-z0-9_-]{32,}\b/g,
  /\bapi[_-]?key\s*[:=]\s*["']?[A-Za-z0-9_-]{20,}/gi,
];
const PRIVATE_KEY = /-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----/g;
const NATIONAL_IDS = [
  /\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b/g, // US social security number
  /\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b/g, // UK National Insurance number
];

const count = (text: string, re: RegExp, valid: (m: string) => boolean = () => true) => [...text.matchAll(re)].filter((m) => valid(m[0])).length;

export function sensitiveData(text: string): Partial<Record<SensitiveKind, number>> {
  const found: Partial<Record<SensitiveKind, number>> = {
    payment_card: count(text, CARD, (m) => {
      const digits = m.replace(/\D/g, '');
      return digits.length >= 13 && digits.length <= 19 && CARD_PREFIX.test(digits) && luhnValid(digits);
    }),
    iban: count(text, IBAN, ibanValid),
    credentials: count(text, CREDENTIAL),
    api_key: API_KEYS.reduce((n, re) => n + count(text, re), 0),
    private_key: count(text, PRIVATE_KEY),
    national_id: NATIONAL_IDS.reduce((n, re) => n + count(text, re), 0),
  };
  return Object.fromEntries(Object.entries(found).filter(([, n]) => n! > 0));
}
