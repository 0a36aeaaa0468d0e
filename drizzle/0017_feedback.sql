CREATE TABLE "llm_feedback" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"mailbox" text NOT NULL,
	"message" text NOT NULL,
	"folder" text NOT NULL,
	"uidvalidity" bigint NOT NULL,
	"uid" bigint NOT NULL,
	"said" text NOT NULL,
	"how" text NOT NULL,
	"verdict" text,
	"verdict_source" text,
	"model" text,
	"prompt_version" text,
	"sender" text,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX "llm_feedback_message_key" ON "llm_feedback" USING btree ("mailbox","message");--> statement-breakpoint
CREATE INDEX "llm_feedback_at_idx" ON "llm_feedback" USING btree ("at");