CREATE TABLE "llm_audit_log" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"mailbox" text NOT NULL,
	"folder" text,
	"uidvalidity" bigint,
	"uid" bigint,
	"message_id" text,
	"verdict" text,
	"confidence" real,
	"rule" text,
	"action" text NOT NULL,
	"reason" text,
	"details" jsonb
);
--> statement-breakpoint
CREATE TABLE "llm_config" (
	"key" text PRIMARY KEY NOT NULL,
	"value" jsonb NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "llm_email_analysis" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"mailbox" text NOT NULL,
	"folder" text NOT NULL,
	"uidvalidity" bigint NOT NULL,
	"uid" bigint NOT NULL,
	"status" text DEFAULT 'analyzed' NOT NULL,
	"skip_reason" text,
	"message_id" text,
	"from_address" text,
	"from_name" text,
	"subject" text,
	"sent_at" timestamp with time zone,
	"size_bytes" integer,
	"summary" text,
	"category" text,
	"tags" text[] DEFAULT '{}'::text[] NOT NULL,
	"verdict" text,
	"confidence" real,
	"reasons" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"is_spam" boolean,
	"is_phishing" boolean,
	"priority" smallint,
	"priority_reason" text,
	"sensitive" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"language" text,
	"reply_suggestion" text,
	"signals" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"parse_warnings" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"model" text,
	"prompt_version" text,
	"content_hash" text,
	"cache_hit" boolean DEFAULT false NOT NULL,
	"prompt_tokens" integer,
	"completion_tokens" integer,
	"fetch_ms" integer,
	"llm_ms" integer,
	"total_ms" integer,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "llm_processing_queue" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"mailbox" text NOT NULL,
	"folder" text NOT NULL,
	"uidvalidity" bigint NOT NULL,
	"uid" bigint NOT NULL,
	"state" text DEFAULT 'queued' NOT NULL,
	"source" text NOT NULL,
	"priority" smallint DEFAULT 1 NOT NULL,
	"event" text,
	"message_id" text,
	"from_header" text,
	"subject" text,
	"attempts" integer DEFAULT 0 NOT NULL,
	"run_at" timestamp with time zone DEFAULT now() NOT NULL,
	"lease_until" timestamp with time zone,
	"locked_by" text,
	"last_error" text,
	"force" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "llm_user_preferences" (
	"username" text PRIMARY KEY NOT NULL,
	"auto_analysis" boolean DEFAULT true NOT NULL,
	"auto_categorize" boolean DEFAULT true NOT NULL,
	"phishing_alerts" boolean DEFAULT true NOT NULL,
	"summary_enabled" boolean DEFAULT true NOT NULL,
	"reply_suggestions" boolean DEFAULT false NOT NULL,
	"summary_language" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "llm_audit_log_mailbox_idx" ON "llm_audit_log" USING btree ("mailbox","at");--> statement-breakpoint
CREATE UNIQUE INDEX "llm_email_analysis_message_key" ON "llm_email_analysis" USING btree ("mailbox","folder","uidvalidity","uid");--> statement-breakpoint
CREATE INDEX "llm_email_analysis_mailbox_recent_idx" ON "llm_email_analysis" USING btree ("mailbox","created_at","id");--> statement-breakpoint
CREATE INDEX "llm_email_analysis_content_idx" ON "llm_email_analysis" USING btree ("content_hash");--> statement-breakpoint
CREATE UNIQUE INDEX "llm_processing_queue_message_key" ON "llm_processing_queue" USING btree ("mailbox","folder","uidvalidity","uid");--> statement-breakpoint
CREATE INDEX "llm_processing_queue_claim_idx" ON "llm_processing_queue" USING btree ("priority","run_at") WHERE "llm_processing_queue"."state" = 'queued';--> statement-breakpoint
CREATE INDEX "llm_processing_queue_lease_idx" ON "llm_processing_queue" USING btree ("lease_until") WHERE "llm_processing_queue"."state" = 'processing';--> statement-breakpoint
CREATE INDEX "llm_processing_queue_mailbox_idx" ON "llm_processing_queue" USING btree ("mailbox","folder","uidvalidity");