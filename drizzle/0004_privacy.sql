ALTER TABLE "llm_email_analysis" ADD COLUMN "sealed_headers" text;--> statement-breakpoint
ALTER TABLE "llm_email_analysis" ADD COLUMN "sealed_content" text;--> statement-breakpoint
ALTER TABLE "llm_email_analysis" ADD COLUMN "key_id" text;--> statement-breakpoint
ALTER TABLE "llm_processing_queue" ADD COLUMN "sealed_headers" text;--> statement-breakpoint
ALTER TABLE "llm_processing_queue" ADD COLUMN "key_id" text;--> statement-breakpoint
ALTER TABLE "llm_user_preferences" ADD COLUMN "opt_out" boolean DEFAULT false NOT NULL;