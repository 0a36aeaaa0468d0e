import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';

/**
 * AES-256-GCM for message content at rest. A sealed value is `ms1.<keyId>.<base64url(iv|tag|ct)>`:
 * it names its key, so rows sealed under an earlier key stay readable while a rotation runs. The
 * mailbox is bound in as additional data: a sealed value copied into another mailbox's row fails.
 */

const VERSION = 'ms1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

export class SealError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SealError';
  }
}

/** A key given as 64 hex characters or as base64 of 32 bytes. */
export function parseKey(text: string): Buffer {
  const t = text.trim();
  const key = /^[0-9a-f]{64}$/i.test(t) ? Buffer.from(t, 'hex') : /^[A-Za-z0-9+/_-]{43}=?$/.test(t) ? Buffer.from(t, 'base64') : null;
  if (!key || key.length !== KEY_BYTES) {
    throw new SealError('must be 32 random bytes, as 64 hex characters or base64 (create one with: openssl rand -hex 32)');
  }
  return key;
}

/** A key's public name: derived from it, reveals nothing of it. */
export function keyId(key: Buffer): string {
  return createHmac('sha256', key).update('mailsight key id v1').digest('hex').slice(0, 16);
}

export class Sealer {
  readonly currentId: string;
  private readonly keys = new Map<string, Buffer>();

  constructor(current: Buffer, previous: Buffer[] = []) {
    this.currentId = keyId(current);
    this.keys.set(this.currentId, current);
    for (const k of previous) this.keys.set(keyId(k), k);
  }

  get keyIds(): string[] {
    return [...this.keys.keys()];
  }

  /**
   * Keyed hashes of `text` for lookups by equality where the text itself is sealed (a learned
   * sender): `<key id>.<HMAC-SHA256, 128 bits>`, one per configured key, the current key's first, so
   * a row written under an earlier key is still found while a rotation runs. `purpose` separates
   * the uses: the same text hashes differently for each.
   */
  tags(text: string, purpose: string): string[] {
    return [...this.keys].map(([kid, key]) => {
      const sub = createHmac('sha256', key).update(`mailsight tag v1 ${purpose}`).digest();
      return `${kid}.${createHmac('sha256', sub).update(text).digest('base64url').slice(0, 22)}`;
    });
  }

  seal(value: unknown, mailbox: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.currentId)!, iv);
    cipher.setAAD(Buffer.from(mailbox));
    const ct = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
    return `${VERSION}.${this.currentId}.${Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64url')}`;
  }

  open<T = unknown>(sealed: string, mailbox: string): T {
    const [version, kid, body] = sealed.split('.');
    if (version !== VERSION || !kid || !body) throw new SealError('not a sealed value');
    const key = this.keys.get(kid);
    if (!key) throw new SealError(`sealed with key ${kid}, which is not configured`);
    const raw = Buffer.from(body, 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(mailbox));
    decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    try {
      return JSON.parse(Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8')) as T;
    } catch {
      throw new SealError(`sealed value does not open with key ${kid} (altered, or moved from another mailbox)`);
    }
  }
}
