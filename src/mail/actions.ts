import type { Verdict } from '../domain/states.js';

/**
 * What mailsight does in a mailbox after a verdict, as a plan (pure, so a dry run can record it
 * exactly) and its execution through the master user (ImapSessions.act).
 */

/** ACTIONS in the configuration (YAML `actions:`). */
export interface ActionSettings {
  keywords: boolean;
  moveToJunk: boolean;
  junkThreshold: number;
  junkFolder: string;
  markSeen: boolean;
}

export interface ActionPlan {
  keywords: string[];
  /** Move to the Junk folder (the SPECIAL-USE \Junk one, else `junkFolder`, created if missing). */
  moveToJunk: boolean;
  junkFolder: string;
  markSeen: boolean;
}

/**
 * Category keywords. Thunderbird shows its five built-in tags ($label1 Important .. $label5 Later)
 * out of the box and any other keyword once a tag with that key exists; Roundcube shows keywords
 * through its markasjunk/flag plugins. The two categories that have a built-in tag use it.
 */
export const CATEGORY_KEYWORD: Record<string, string> = {
  work: '$label2',
  personal: '$label3',
};
export const IMPORTANT_KEYWORD = '$label1';
/** Priority from which a message gets Thunderbird's Important tag. */
export const IMPORTANT_PRIORITY = 8;

export function categoryKeyword(category: string): string {
  return CATEGORY_KEYWORD[category] ?? category.toLowerCase().replace(/[^a-z0-9_-]/g, '');
}

export function planActions(
  decision: { verdict: Verdict; confidence: number; isPhishing: boolean },
  result: { category?: string | null; priority?: number | null },
  prefs: { phishingAlerts: boolean; autoCategorize: boolean },
  settings: ActionSettings,
  folder: string,
): ActionPlan {
  const keywords: string[] = [];
  const bad = decision.verdict === 'spam' || decision.verdict === 'scam' || decision.verdict === 'phishing';
  const moveToJunk = settings.moveToJunk && bad && decision.confidence >= settings.junkThreshold && folder.toLowerCase() !== settings.junkFolder.toLowerCase();
  if (settings.keywords) {
    if (decision.isPhishing && prefs.phishingAlerts) keywords.push('$Phishing');
    if (moveToJunk || (bad && decision.confidence >= settings.junkThreshold)) keywords.push('$Junk');
    if (prefs.autoCategorize && result.category && !bad) {
      keywords.push(categoryKeyword(result.category));
      if ((result.priority ?? 0) >= IMPORTANT_PRIORITY) keywords.push(IMPORTANT_KEYWORD);
    }
  }
  return { keywords, moveToJunk, junkFolder: settings.junkFolder, markSeen: moveToJunk && settings.markSeen };
}

export type ActOutcome =
  | { status: 'done'; keywords: string[]; movedTo?: { folder: string; uid?: number } }
  | { status: 'gone' }
  | { status: 'stale'; uidvalidity: number };

export interface ActHooks {
  /** Called with the keywords just before the STORE (mailsight records them: their FlagsSet push is its own, not a user's). */
  beforeFlag?(keywords: string[]): Promise<void>;
  /** Called with the target folder just before the MOVE (mailsight records the move it is making). */
  beforeMove?(target: string): Promise<void>;
}
