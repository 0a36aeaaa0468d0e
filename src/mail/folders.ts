/**
 * Which folders' new and appended mail is analysed (FOLDERS_INCLUDE / FOLDERS_EXCLUDE).
 *
 * An entry is a SPECIAL-USE flag (`\Junk`, RFC 6154) or a folder name, where `*` stands for any
 * characters (`Archive/*`); names compare without regard to case. A flag matches the folder the
 * server marks with it; when the server's marks are not known (at push time, or a server without
 * SPECIAL-USE), it matches the names clients commonly give that folder.
 */

/** The flags FOLDERS_* may name. */
export const SPECIAL_USE_FLAGS = ['\\All', '\\Archive', '\\Drafts', '\\Flagged', '\\Junk', '\\Sent', '\\Trash'] as const;
export type SpecialUse = (typeof SPECIAL_USE_FLAGS)[number];

/** Drafts, Sent, Trash and Junk: mail the user wrote, threw away, or that is already sorted as junk. */
export const DEFAULT_EXCLUDE = ['\\Drafts', '\\Sent', '\\Trash', '\\Junk'];

/**
 * Names mail clients and servers give these folders (Thunderbird, Outlook, Apple Mail, Roundcube,
 * SOGo, Gmail's IMAP; English, German, French, Spanish), lower case.
 */
const USUAL_NAMES: Partial<Record<SpecialUse, string[]>> = {
  '\\Drafts': ['drafts', 'draft', 'entwürfe', 'brouillons', 'borradores'],
  '\\Sent': ['sent', 'sent items', 'sent messages', 'sent mail', 'gesendet', 'gesendete elemente', 'gesendete objekte', 'envoyés', 'éléments envoyés', 'enviados'],
  '\\Trash': ['trash', 'deleted items', 'deleted messages', 'bin', 'papierkorb', 'gelöschte elemente', 'corbeille', 'éléments supprimés', 'papelera'],
  '\\Junk': ['junk', 'spam', 'junk e-mail', 'junk email', 'bulk mail', 'spamverdacht', 'junk-e-mail', 'courrier indésirable', 'indésirables', 'correo no deseado'],
  '\\Archive': ['archive', 'archives', 'archiv'],
};

/**
 * Whether `folder` is where junk goes: the configured Junk folder (ACTIONS junk_folder) or a name
 * clients give it. At push time the server's SPECIAL-USE marks are not known; names are.
 */
export function isJunkFolder(folder: string, junkFolder: string): boolean {
  return folder.toLowerCase() === junkFolder.toLowerCase() || (USUAL_NAMES['\\Junk'] ?? []).includes(leafName(folder));
}

export type FolderDecision = { analyse: true } | { analyse: false; reason: string };

type Matcher = { entry: string; test: (folder: string, flags: readonly string[] | undefined) => boolean };

function flagOf(entry: string): SpecialUse | undefined {
  return SPECIAL_USE_FLAGS.find((f) => f.toLowerCase() === entry.toLowerCase());
}

/** The folder's own name, without its parents ("INBOX/Spam" -> "spam"), for the usual-name fallback. */
function leafName(folder: string): string {
  return (folder.split(/[/.]/).at(-1) ?? folder).toLowerCase();
}

function matcher(entry: string): Matcher {
  const flag = flagOf(entry);
  if (flag) {
    const names = USUAL_NAMES[flag] ?? [];
    return { entry: flag, test: (folder, flags) => (flags ? flags.includes(flag) : names.includes(leafName(folder))) };
  }
  const re = new RegExp(`^${entry.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 'iu');
  return { entry, test: (folder) => re.test(folder) };
}

/** Checks one FOLDERS_* entry; the message says what is wrong with it. */
export function folderEntryProblem(entry: string): string | undefined {
  if (entry.startsWith('\\') && !flagOf(entry)) return `${entry} is not a SPECIAL-USE flag (${SPECIAL_USE_FLAGS.join(' ')})`;
  if (entry.length === 0 || entry.length > 1024) return 'a folder entry must have 1 to 1024 characters';
  return undefined;
}

export class FolderFilter {
  private readonly include: Matcher[];
  private readonly exclude: Matcher[];

  constructor(include: readonly string[] = [], exclude: readonly string[] = DEFAULT_EXCLUDE) {
    this.include = include.map(matcher);
    this.exclude = exclude.map(matcher);
  }

  /**
   * Whether mail arriving in `folder` is analysed. `flags`: the folder's SPECIAL-USE flags when the
   * server's are known (an empty list: it has none), undefined when not (then usual names count).
   */
  decide(folder: string, flags?: readonly string[]): FolderDecision {
    if (this.include.length > 0 && !this.include.some((m) => m.test(folder, flags))) {
      return { analyse: false, reason: `folder ${folder} is not in FOLDERS_INCLUDE` };
    }
    const excluded = this.exclude.find((m) => m.test(folder, flags));
    if (excluded) return { analyse: false, reason: `folder ${folder} is excluded (FOLDERS_EXCLUDE ${excluded.entry})` };
    return { analyse: true };
  }

  /** Whether the answer for `folder` could depend on the server's SPECIAL-USE flags. */
  get usesFlags(): boolean {
    return [...this.include, ...this.exclude].some((m) => flagOf(m.entry) !== undefined);
  }
}
