import { sql, type SQL } from 'drizzle-orm';
import { z } from 'zod';

/**
 * A mailbox owner's switches (llm_user_preferences), defined once: each one's name in the API and
 * the table (snake_case), its name in code (camelCase), its default, and the words that explain it.
 * The types, the defaults, the API schemas, the claim's SQL projection and the dashboard's form are
 * all derived from this list.
 */
export const SWITCHES = [
  { name: 'auto_analysis', key: 'autoAnalysis', default: true, label: 'Analyse new mail automatically', hint: 'Off: new mail is recorded as skipped, with no model call.' },
  { name: 'auto_categorize', key: 'autoCategorize', default: true, label: 'Store a category and tags', hint: '' },
  {
    name: 'phishing_alerts',
    key: 'phishingAlerts',
    default: true,
    label: 'Flag phishing in the mailbox',
    hint: 'Sets the $Phishing keyword and may move the message to Junk, when the operator has turned actions on.',
  },
  { name: 'summary_enabled', key: 'summaryEnabled', default: true, label: 'Store a summary', hint: '' },
  { name: 'reply_suggestions', key: 'replySuggestions', default: false, label: 'Suggest a reply', hint: '' },
  {
    name: 'learn_senders',
    key: 'learnSenders',
    default: true,
    label: 'Learn from my Junk and Not junk',
    hint: 'A sender whose mail you rescue from Junk is not junked again, and a sender you mark as junk is junked from then on: in this mailbox only. Phishing evidence (a forged sender) still wins.',
  },
  { name: 'opt_out', key: 'optOut', default: false, label: 'Opt out of mailsight', hint: 'Erases everything stored about this mailbox’s mail at once and stores nothing from now on.' },
] as const;

/** The one setting that is not a switch. */
export const SUMMARY_LANGUAGE = { name: 'summary_language', key: 'summaryLanguage' } as const;

type Switch = (typeof SWITCHES)[number];
export type SwitchName = Switch['name'];
export type SwitchKey = Switch['key'];

/** The preferences in code (camelCase); parsing `{}` gives the defaults. */
export const preferencesSchema = z.object({
  ...(Object.fromEntries(SWITCHES.map((s) => [s.key, z.boolean().default(s.default)])) as { [K in SwitchKey]: z.ZodDefault<z.ZodBoolean> }),
  summaryLanguage: z.string().nullable().default(null),
});
export type Preferences = z.infer<typeof preferencesSchema>;
export const DEFAULT_PREFERENCES: Preferences = preferencesSchema.parse({});

/** snake_case (API, table) -> camelCase (code), for every preference. */
export const PREFERENCE_COLUMNS = {
  ...(Object.fromEntries(SWITCHES.map((s) => [s.name, s.key])) as { [S in Switch as S['name']]: S['key'] }),
  [SUMMARY_LANGUAGE.name]: SUMMARY_LANGUAGE.key,
} as const satisfies Record<string, keyof Preferences>;
export type PreferenceName = keyof typeof PREFERENCE_COLUMNS;

/** The preferences as the API shows them (snake_case). */
export type PreferencesJson = { [K in PreferenceName]: Preferences[(typeof PREFERENCE_COLUMNS)[K]] };

/** A mailbox's preferences as one JSON object in code's names, read from llm_user_preferences aliased `alias`. */
export function preferencesJsonSql(alias: string): SQL {
  const pairs = Object.entries(PREFERENCE_COLUMNS).map(([column, key]) => `'${key}', ${alias}.${column}`);
  return sql.raw(`json_build_object(${pairs.join(', ')})`);
}
