ALTER TABLE "llm_email_analysis" ADD COLUMN "signal_reasons" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "llm_email_analysis" ADD COLUMN "phishing_score" real;--> statement-breakpoint
ALTER TABLE "llm_email_analysis" ADD COLUMN "verdict_source" text;--> statement-breakpoint
ALTER TABLE "llm_email_analysis" ADD COLUMN "rule" text;--> statement-breakpoint
ALTER TABLE "llm_email_analysis" ADD COLUMN "moved_to_folder" text;--> statement-breakpoint
ALTER TABLE "llm_email_analysis" ADD COLUMN "moved_to_uid" bigint;--> statement-breakpoint
ALTER TABLE "llm_email_analysis" ADD COLUMN "keywords" text[] DEFAULT '{}'::text[] NOT NULL;