CREATE TABLE "llm_campaign_members" (
	"campaign_key" text NOT NULL,
	"mailbox" text NOT NULL,
	"folder" text NOT NULL,
	"uidvalidity" bigint NOT NULL,
	"uid" bigint NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "llm_campaign_members_campaign_key_mailbox_folder_uidvalidity_uid_pk" PRIMARY KEY("campaign_key","mailbox","folder","uidvalidity","uid")
);
--> statement-breakpoint
CREATE TABLE "llm_campaigns" (
	"campaign_key" text PRIMARY KEY NOT NULL,
	"verdict" text NOT NULL,
	"confidence" real NOT NULL,
	"mailbox" text NOT NULL,
	"folder" text NOT NULL,
	"uidvalidity" bigint NOT NULL,
	"uid" bigint NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE INDEX "llm_campaign_members_message_idx" ON "llm_campaign_members" USING btree ("mailbox","folder","uidvalidity","uid");--> statement-breakpoint
CREATE INDEX "llm_campaign_members_at_idx" ON "llm_campaign_members" USING btree ("at");--> statement-breakpoint
CREATE INDEX "llm_campaigns_at_idx" ON "llm_campaigns" USING btree ("at");