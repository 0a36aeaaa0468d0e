CREATE TABLE "llm_api_keys" (
	"id" text PRIMARY KEY NOT NULL,
	"mailbox" text NOT NULL,
	"name" text,
	"hash" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_used_at" timestamp with time zone,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
DROP INDEX "llm_email_analysis_mailbox_recent_idx";--> statement-breakpoint
CREATE INDEX "llm_api_keys_mailbox_idx" ON "llm_api_keys" USING btree ("mailbox");--> statement-breakpoint
CREATE INDEX "llm_email_analysis_mailbox_id_idx" ON "llm_email_analysis" USING btree ("mailbox","id");--> statement-breakpoint
CREATE INDEX "llm_email_analysis_created_idx" ON "llm_email_analysis" USING btree ("created_at");