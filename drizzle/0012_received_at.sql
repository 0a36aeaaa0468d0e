-- When the server received each message (IMAP INTERNALDATE). Rows analysed before this column
-- existed take the time of their analysis, the nearest thing stored.
ALTER TABLE "llm_email_analysis" ADD COLUMN "received_at" timestamp (3) with time zone;--> statement-breakpoint
UPDATE "llm_email_analysis" SET "received_at" = "created_at";--> statement-breakpoint
ALTER TABLE "llm_email_analysis" ALTER COLUMN "received_at" SET DEFAULT now();--> statement-breakpoint
ALTER TABLE "llm_email_analysis" ALTER COLUMN "received_at" SET NOT NULL;--> statement-breakpoint
CREATE INDEX "llm_email_analysis_mailbox_received_idx" ON "llm_email_analysis" USING btree ("mailbox","received_at" DESC NULLS LAST,"id" DESC NULLS LAST);
