-- Analyses and audit entries partitioned by UTC month (of created_at, of at), so that retention
-- drops whole months instead of deleting rows one by one, and leaves no dead rows behind.
--
-- A unique index on a partitioned table must hold the partition key, and the message key does not:
-- each partition gets its own unique index on (mailbox, folder, uidvalidity, uid), and the pipeline
-- writes a row through llm_write_analysis (below), which holds an advisory lock on the key, so a
-- key has one row over all partitions.
--
-- llm_ensure_month(parent, month) makes one month's partition; rows that the default partition
-- caught for that month move into it. Rows older than five years at the upgrade stay in the default. src/db/partitions.ts keeps this month and the next ones made.
CREATE FUNCTION "llm_ensure_month"(parent text, month date) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
	first date := date_trunc('month', month)::date;
	lo timestamptz := first::timestamp AT TIME ZONE 'UTC';
	hi timestamptz := (first + interval '1 month')::timestamp AT TIME ZONE 'UTC';
	part text := parent || '_p' || to_char(first, 'YYYYMM');
	col text := CASE parent WHEN 'llm_audit_log' THEN 'at' ELSE 'created_at' END;
BEGIN
	-- Instances starting together take turns; the check after the lock sees what the one before made.
	PERFORM pg_advisory_xact_lock(hashtext('llm_ensure_month'));
	IF to_regclass(part) IS NOT NULL THEN RETURN false; END IF;
	EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS)', part, parent);
	-- Straight from the default partition, which fires none of the parent's statement triggers:
	-- the rows only change place, so the rollups stay as they are.
	EXECUTE format('WITH moved AS (DELETE FROM %I WHERE %I >= $1 AND %I < $2 RETURNING *) INSERT INTO %I SELECT * FROM moved',
		parent || '_default', col, col, part) USING lo, hi;
	IF parent = 'llm_email_analysis' THEN
		EXECUTE format('CREATE UNIQUE INDEX %I ON %I (mailbox, folder, uidvalidity, uid)', part || '_message_key', part);
	END IF;
	EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', parent, part, lo, hi);
	RETURN true;
END $$;
--> statement-breakpoint
ALTER TABLE "llm_email_analysis" RENAME TO "llm_email_analysis_unpartitioned";
--> statement-breakpoint
ALTER SEQUENCE "llm_email_analysis_id_seq" OWNED BY NONE;
--> statement-breakpoint
CREATE TABLE "llm_email_analysis" (LIKE "llm_email_analysis_unpartitioned" INCLUDING DEFAULTS) PARTITION BY RANGE ("created_at");
--> statement-breakpoint
ALTER TABLE "llm_email_analysis" ADD CONSTRAINT "llm_email_analysis_id_created_at_pk" PRIMARY KEY ("id", "created_at");
--> statement-breakpoint
CREATE TABLE "llm_email_analysis_default" PARTITION OF "llm_email_analysis" DEFAULT;
--> statement-breakpoint
CREATE UNIQUE INDEX "llm_email_analysis_default_message_key" ON "llm_email_analysis_default" ("mailbox", "folder", "uidvalidity", "uid");
--> statement-breakpoint
SELECT llm_ensure_month('llm_email_analysis', m::date)
  FROM generate_series(date_trunc('month', greatest(coalesce((SELECT min(created_at) FROM llm_email_analysis_unpartitioned), now()), now() - interval '5 years') AT TIME ZONE 'UTC'),
                       date_trunc('month', now() AT TIME ZONE 'UTC') + interval '2 months', interval '1 month') m;
--> statement-breakpoint
INSERT INTO "llm_email_analysis" SELECT * FROM "llm_email_analysis_unpartitioned";
--> statement-breakpoint
DROP TABLE "llm_email_analysis_unpartitioned";
--> statement-breakpoint
ALTER SEQUENCE "llm_email_analysis_id_seq" OWNED BY "llm_email_analysis"."id";
--> statement-breakpoint
CREATE INDEX "llm_email_analysis_mailbox_id_idx" ON "llm_email_analysis" USING btree ("mailbox", "id");
--> statement-breakpoint
CREATE INDEX "llm_email_analysis_created_idx" ON "llm_email_analysis" USING btree ("created_at");
--> statement-breakpoint
CREATE INDEX "llm_email_analysis_content_idx" ON "llm_email_analysis" USING btree ("content_hash");
--> statement-breakpoint
CREATE INDEX "llm_email_analysis_message_id_idx" ON "llm_email_analysis" USING btree ("mailbox", "message_id");
--> statement-breakpoint
CREATE INDEX "llm_email_analysis_mailbox_received_idx" ON "llm_email_analysis" USING btree ("mailbox", "received_at" DESC NULLS LAST, "id" DESC NULLS LAST);
--> statement-breakpoint
CREATE INDEX "llm_email_analysis_failed_idx" ON "llm_email_analysis" USING btree ("updated_at") WHERE "status" = 'failed';
--> statement-breakpoint
-- Writes one message's analysis: replaces its row in whatever month holds it, or inserts it. `cols`
-- names the columns written (the rest keep their defaults on insert, their values on replace); `vals`
-- holds them as JSON, keyed by column name. One call is one statement for the client (no client-side
-- transaction), and in a VOLATILE function each statement takes a fresh snapshot: after the lock,
-- the UPDATE sees a row that another writer of the key committed meanwhile.
CREATE FUNCTION "llm_write_analysis"(cols text[], vals jsonb) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	r llm_email_analysis := jsonb_populate_record(NULL::llm_email_analysis, vals);
	list text := (SELECT string_agg(quote_ident(c), ', ') FROM unnest(cols) c);
	n integer;
BEGIN
	PERFORM pg_advisory_xact_lock(hashtextextended('analysis:' || r.mailbox || '/' || r.folder || '/' || r.uidvalidity || '/' || r.uid, 0));
	EXECUTE format('UPDATE llm_email_analysis t SET (%1$s, updated_at) = (SELECT %1$s, now() FROM (SELECT ($1).*) x)
		WHERE t.mailbox = ($1).mailbox AND t.folder = ($1).folder AND t.uidvalidity = ($1).uidvalidity AND t.uid = ($1).uid', list) USING r;
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n = 0 THEN
		EXECUTE format('INSERT INTO llm_email_analysis (%1$s) SELECT %1$s FROM (SELECT ($1).*) x', list) USING r;
	END IF;
END $$;
--> statement-breakpoint
CREATE TRIGGER "llm_stats_insert" AFTER INSERT ON "llm_email_analysis" REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION llm_stats_on_insert();
--> statement-breakpoint
CREATE TRIGGER "llm_stats_update" AFTER UPDATE ON "llm_email_analysis" REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION llm_stats_on_update();
--> statement-breakpoint
CREATE TRIGGER "llm_stats_delete" AFTER DELETE ON "llm_email_analysis" REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION llm_stats_on_delete();
--> statement-breakpoint
ALTER TABLE "llm_audit_log" RENAME TO "llm_audit_log_unpartitioned";
--> statement-breakpoint
ALTER SEQUENCE "llm_audit_log_id_seq" OWNED BY NONE;
--> statement-breakpoint
CREATE TABLE "llm_audit_log" (LIKE "llm_audit_log_unpartitioned" INCLUDING DEFAULTS) PARTITION BY RANGE ("at");
--> statement-breakpoint
ALTER TABLE "llm_audit_log" ADD CONSTRAINT "llm_audit_log_id_at_pk" PRIMARY KEY ("id", "at");
--> statement-breakpoint
CREATE TABLE "llm_audit_log_default" PARTITION OF "llm_audit_log" DEFAULT;
--> statement-breakpoint
SELECT llm_ensure_month('llm_audit_log', m::date)
  FROM generate_series(date_trunc('month', greatest(coalesce((SELECT min(at) FROM llm_audit_log_unpartitioned), now()), now() - interval '5 years') AT TIME ZONE 'UTC'),
                       date_trunc('month', now() AT TIME ZONE 'UTC') + interval '2 months', interval '1 month') m;
--> statement-breakpoint
INSERT INTO "llm_audit_log" SELECT * FROM "llm_audit_log_unpartitioned";
--> statement-breakpoint
DROP TABLE "llm_audit_log_unpartitioned";
--> statement-breakpoint
ALTER SEQUENCE "llm_audit_log_id_seq" OWNED BY "llm_audit_log"."id";
--> statement-breakpoint
CREATE INDEX "llm_audit_log_mailbox_idx" ON "llm_audit_log" USING btree ("mailbox", "at");
--> statement-breakpoint
CREATE INDEX "llm_audit_log_at_idx" ON "llm_audit_log" USING btree ("at");
--> statement-breakpoint
CREATE INDEX "llm_audit_log_message_idx" ON "llm_audit_log" USING btree ("mailbox", "folder", "uidvalidity", "uid");
--> statement-breakpoint
CREATE INDEX "llm_stats_daily_day_idx" ON "llm_stats_daily" USING btree ("day");
