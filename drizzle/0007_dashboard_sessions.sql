CREATE TABLE "llm_dashboard_sessions" (
	"id" text PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"mailbox" text,
	"key_id" text,
	"admin_fingerprint" text,
	"csrf" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE INDEX "llm_dashboard_sessions_expires_idx" ON "llm_dashboard_sessions" USING btree ("expires_at");