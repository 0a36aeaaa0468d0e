/**
 * One mailbox, one name. Dovecot's default `auth_username_format = %Lu` lower-cases a login with
 * ASCII rules only, so `Alice@Example.org` and `alice@example.org` are the same user to it. mailsight
 * keys everything (queue, analyses, preferences, keys, sweep cursors, audit) by this canonical form,
 * and compares names only in it: a mailbox cannot get a second identity by changing case.
 *
 * Only printable ASCII is accepted. Full Unicode lower-casing would make `K` (U+212A, the Kelvin
 * sign) equal `k`, and Dovecot does not fold such characters, so a name with them is refused rather
 * than matched loosely.
 */

export class MailboxNameError extends Error {}

const PRINTABLE_ASCII = /^[\x21-\x7e]+$/;

/** The canonical form of a mailbox name, or a MailboxNameError saying why there is none. */
export function canonicalMailbox(name: string): string {
  const trimmed = name.trim();
  if (!trimmed) throw new MailboxNameError('must not be empty');
  if (!PRINTABLE_ASCII.test(trimmed)) throw new MailboxNameError('must be printable ASCII without spaces (Dovecot login names are compared in lower case, ASCII only)');
  return trimmed.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** For zod: the canonical name, or the reason as an issue. */
export function canonicalMailboxOr(name: string, issue: (message: string) => void): string {
  try {
    return canonicalMailbox(name);
  } catch (err) {
    issue((err as Error).message);
    return name;
  }
}
