CREATE TABLE "llm_queue_counts" (
	"state" text NOT NULL,
	"n" bigint NOT NULL
);
--> statement-breakpoint
CREATE INDEX "llm_processing_queue_waiting_idx" ON "llm_processing_queue" USING btree ("created_at") WHERE "llm_processing_queue"."state" in ('queued', 'processing');
--> statement-breakpoint
-- Statement triggers append each statement's net change per state (transition tables); a statement
-- that moves no row between states (a lease extension) appends nothing.
CREATE FUNCTION "llm_queue_counts_on_insert"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO llm_queue_counts (state, n) SELECT state, count(*) FROM new_rows GROUP BY state;
	RETURN NULL;
END $$;
--> statement-breakpoint
CREATE FUNCTION "llm_queue_counts_on_update"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO llm_queue_counts (state, n)
	SELECT state, sum(n) FROM (SELECT state, 1 AS n FROM new_rows UNION ALL SELECT state, -1 FROM old_rows) c
	 GROUP BY state HAVING sum(n) <> 0;
	RETURN NULL;
END $$;
--> statement-breakpoint
CREATE FUNCTION "llm_queue_counts_on_delete"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO llm_queue_counts (state, n) SELECT state, -count(*) FROM old_rows GROUP BY state;
	RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER "llm_queue_counts_insert" AFTER INSERT ON "llm_processing_queue" REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION llm_queue_counts_on_insert();
--> statement-breakpoint
CREATE TRIGGER "llm_queue_counts_update" AFTER UPDATE ON "llm_processing_queue" REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION llm_queue_counts_on_update();
--> statement-breakpoint
CREATE TRIGGER "llm_queue_counts_delete" AFTER DELETE ON "llm_processing_queue" REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION llm_queue_counts_on_delete();
--> statement-breakpoint
INSERT INTO llm_queue_counts (state, n) SELECT state, count(*) FROM llm_processing_queue GROUP BY state;
