import type { MessageKey } from '../domain/message-key.js';
import type { ActHooks, ActionPlan, ActOutcome } from '../mail/actions.js';
import type { FetchOutcome } from '../mail/imap.js';

/** Where the pipeline gets messages from, and acts on them: the IMAP sessions in production. */
export interface MessageSource {
  fetchMessage(key: MessageKey): Promise<FetchOutcome>;
  act?(key: MessageKey, plan: ActionPlan, hooks?: ActHooks): Promise<ActOutcome>;
  /** The folder's SPECIAL-USE flags ([] for none, null: no such folder). */
  folderFlags?(mailbox: string, folder: string): Promise<string[] | null>;
  /** Whether the folder still holds the message with this UID (false when the folder is gone). */
  hasMessage?(mailbox: string, folder: string, uid: number): Promise<boolean>;
}

