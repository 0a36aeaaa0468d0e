CREATE TABLE "llm_mailboxes" (
	"mailbox" text PRIMARY KEY NOT NULL,
	"first_seen" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
-- Filled once from the queue; from now on the queue's insert trigger adds each new mailbox (one
-- index probe per insert statement for a mailbox already known).
INSERT INTO llm_mailboxes (mailbox, first_seen) SELECT mailbox, min(created_at) FROM llm_processing_queue GROUP BY mailbox;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "llm_queue_counts_on_insert"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO llm_queue_counts (state, n) SELECT state, count(*) FROM new_rows GROUP BY state;
	INSERT INTO llm_mailboxes (mailbox) SELECT DISTINCT mailbox FROM new_rows ON CONFLICT DO NOTHING;
	RETURN NULL;
END $$;
