CREATE TABLE "llm_learned_senders" (
	"mailbox" text NOT NULL,
	"sender_key" text NOT NULL,
	"sender" text,
	"sealed_sender" text,
	"key_id" text,
	"said" text NOT NULL,
	"how" text NOT NULL,
	"message" text NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "llm_learned_senders_mailbox_sender_key_pk" PRIMARY KEY("mailbox","sender_key")
);
--> statement-breakpoint
ALTER TABLE "llm_email_analysis" ADD COLUMN "model_verdict" text;--> statement-breakpoint
ALTER TABLE "llm_email_analysis" ADD COLUMN "model_confidence" real;--> statement-breakpoint
ALTER TABLE "llm_user_preferences" ADD COLUMN "learn_senders" boolean DEFAULT true NOT NULL;