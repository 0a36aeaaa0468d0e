-- One name per mailbox: Dovecot's %Lu, ASCII lower case (src/mail/mailbox-name.ts). Rows stored under
-- other spellings are merged into the canonical one; where two rows stood for one message, one stays.
DELETE FROM llm_processing_queue q USING (
  SELECT id, row_number() OVER (
    PARTITION BY translate(mailbox, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), folder, uidvalidity, uid
    ORDER BY (state = 'done') DESC, updated_at DESC, id
  ) AS rn FROM llm_processing_queue
) d WHERE q.id = d.id AND d.rn > 1;
--> statement-breakpoint
UPDATE llm_processing_queue SET mailbox = translate(mailbox, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
WHERE mailbox <> translate(mailbox, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
--> statement-breakpoint
-- The first analysis of a message is the one its mailbox got; the others came from another spelling.
DELETE FROM llm_email_analysis a USING (
  SELECT id, row_number() OVER (
    PARTITION BY translate(mailbox, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), folder, uidvalidity, uid
    ORDER BY (status = 'analyzed') DESC, id
  ) AS rn FROM llm_email_analysis
) d WHERE a.id = d.id AND d.rn > 1;
--> statement-breakpoint
UPDATE llm_email_analysis SET mailbox = translate(mailbox, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
WHERE mailbox <> translate(mailbox, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
--> statement-breakpoint
-- Preferences: the ones changed last are what the user wants now.
DELETE FROM llm_user_preferences p USING (
  SELECT username, row_number() OVER (
    PARTITION BY translate(username, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
    ORDER BY opt_out DESC, updated_at DESC, username
  ) AS rn FROM llm_user_preferences
) d WHERE p.username = d.username AND d.rn > 1;
--> statement-breakpoint
UPDATE llm_user_preferences SET username = translate(username, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
WHERE username <> translate(username, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
--> statement-breakpoint
UPDATE llm_audit_log SET mailbox = translate(mailbox, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
WHERE mailbox <> translate(mailbox, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
--> statement-breakpoint
UPDATE llm_api_keys SET mailbox = translate(mailbox, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
WHERE mailbox <> translate(mailbox, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
--> statement-breakpoint
UPDATE llm_dashboard_sessions SET mailbox = translate(mailbox, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
WHERE mailbox <> translate(mailbox, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
--> statement-breakpoint
-- The sweep's cursor per mailbox: the one written last.
DELETE FROM llm_config c USING (
  SELECT key, row_number() OVER (
    PARTITION BY translate(key, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
    ORDER BY updated_at DESC, key
  ) AS rn FROM llm_config WHERE key LIKE 'reconcile.cursor:%'
) d WHERE c.key = d.key AND d.rn > 1;
--> statement-breakpoint
UPDATE llm_config SET key = translate(key, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
WHERE key LIKE 'reconcile.cursor:%' AND key <> translate(key, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
