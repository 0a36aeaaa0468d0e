import { eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { userPreferences } from '../db/schema.js';
import { DEFAULT_PREFERENCES, PREFERENCE_COLUMNS, type Preferences, type PreferencesJson } from '../domain/preferences.js';
import { eraseMailbox } from './erase.js';

function toJson(username: string, p: Preferences, stored: boolean, updatedAt: Date | null) {
  const out = Object.fromEntries(Object.entries(PREFERENCE_COLUMNS).map(([k, col]) => [k, p[col]])) as PreferencesJson;
  return { username, ...out, stored, updated_at: updatedAt?.toISOString() ?? null };
}

/** A user's preferences; the defaults (stored: false) for a user who never changed any. */
export async function getPreferences(db: Db, username: string) {
  const [row] = await db.orm.select().from(userPreferences).where(eq(userPreferences.username, username));
  return row ? toJson(username, row, true, row.updatedAt) : toJson(username, DEFAULT_PREFERENCES, false, null);
}

/**
 * Changes the given switches only; the others keep their value (or default). Opting out erases
 * everything stored about the mailbox's mail first; from then on nothing of it is stored.
 */
export async function updatePreferences(db: Db, username: string, changes: Partial<PreferencesJson>) {
  if (changes.opt_out === true) await eraseMailbox(db, username, { keepAccess: true });
  const set: Partial<Preferences> = {};
  for (const [k, col] of Object.entries(PREFERENCE_COLUMNS)) {
    const v = changes[k as keyof PreferencesJson];
    if (v !== undefined) (set as Record<string, unknown>)[col] = v;
  }
  await db.orm
    .insert(userPreferences)
    .values({ username, ...set })
    .onConflictDoUpdate({ target: userPreferences.username, set: { ...set, updatedAt: sql`now()` } });
  return getPreferences(db, username);
}
