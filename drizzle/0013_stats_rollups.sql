CREATE TABLE "llm_stats_daily" (
	"mailbox" text NOT NULL,
	"day" date NOT NULL,
	"status" text NOT NULL,
	"verdict" text NOT NULL,
	"category" text NOT NULL,
	"n" bigint DEFAULT 0 NOT NULL,
	"cache_hits" bigint DEFAULT 0 NOT NULL,
	"prompt_tokens" bigint DEFAULT 0 NOT NULL,
	"completion_tokens" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "llm_stats_daily_mailbox_day_status_verdict_category_pk" PRIMARY KEY("mailbox","day","status","verdict","category")
);
--> statement-breakpoint
CREATE TABLE "llm_stats_mailbox" (
	"mailbox" text PRIMARY KEY NOT NULL,
	"analyses" bigint NOT NULL,
	"phishing" bigint NOT NULL,
	"latest" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "llm_stats_server_daily" (
	"day" date NOT NULL,
	"status" text NOT NULL,
	"verdict" text NOT NULL,
	"category" text NOT NULL,
	"n" bigint DEFAULT 0 NOT NULL,
	"cache_hits" bigint DEFAULT 0 NOT NULL,
	"prompt_tokens" bigint DEFAULT 0 NOT NULL,
	"completion_tokens" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "llm_stats_server_daily_day_status_verdict_category_pk" PRIMARY KEY("day","status","verdict","category")
);
--> statement-breakpoint
CREATE INDEX "llm_stats_mailbox_latest_idx" ON "llm_stats_mailbox" USING btree ("latest" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "llm_audit_log_at_idx" ON "llm_audit_log" USING btree ("at");--> statement-breakpoint
CREATE INDEX "llm_email_analysis_failed_idx" ON "llm_email_analysis" USING btree ("updated_at") WHERE "llm_email_analysis"."status" = 'failed';--> statement-breakpoint
CREATE INDEX "llm_processing_queue_failed_idx" ON "llm_processing_queue" USING btree ("updated_at") WHERE "llm_processing_queue"."state" in ('failed', 'dead');--> statement-breakpoint
CREATE INDEX "llm_processing_queue_finished_idx" ON "llm_processing_queue" USING btree (coalesce("finished_at", "updated_at")) WHERE "llm_processing_queue"."state" not in ('queued', 'processing');
--> statement-breakpoint
-- The rollups are kept exact by statement triggers on llm_email_analysis: a statement's changed rows
-- (transition tables) become one signed change each, summed per key and applied in key order, so
-- two writers lock rollup rows in the same order. An INSERT ... ON CONFLICT DO UPDATE fires the
-- insert trigger for the rows it inserted and the update trigger for those it replaced.
CREATE TYPE "llm_stats_change" AS (
	"mailbox" text, "created_at" timestamp with time zone, "status" text, "verdict" text, "category" text,
	"cache_hit" boolean, "prompt_tokens" integer, "completion_tokens" integer, "is_phishing" boolean, "sign" integer
);
--> statement-breakpoint
CREATE FUNCTION "llm_stats_apply"(changes "llm_stats_change"[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	-- Per mailbox and UTC day, then the whole server's: signed changes summed per key, applied in key
	-- order (two writers lock rows in the same order); a key whose last analysis went is removed.
	INSERT INTO llm_stats_daily AS s (mailbox, day, status, verdict, category, n, cache_hits, prompt_tokens, completion_tokens)
	SELECT c.mailbox, (c.created_at AT TIME ZONE 'UTC')::date, c.status, coalesce(c.verdict, ''), coalesce(c.category, ''), sum(c.sign),
		sum(c.sign * c.cache_hit::int), sum(c.sign * coalesce(c.prompt_tokens, 0)), sum(c.sign * coalesce(c.completion_tokens, 0))
	FROM unnest(changes) AS c GROUP BY 1, 2, 3, 4, 5
	HAVING sum(c.sign) <> 0 OR sum(c.sign * c.cache_hit::int) <> 0 OR sum(c.sign * coalesce(c.prompt_tokens, 0)) <> 0 OR sum(c.sign * coalesce(c.completion_tokens, 0)) <> 0
	ORDER BY 1, 2, 3, 4, 5
	ON CONFLICT (mailbox, day, status, verdict, category) DO UPDATE SET n = s.n + excluded.n, cache_hits = s.cache_hits + excluded.cache_hits,
		prompt_tokens = s.prompt_tokens + excluded.prompt_tokens, completion_tokens = s.completion_tokens + excluded.completion_tokens;
	DELETE FROM llm_stats_daily s USING (
		SELECT DISTINCT c.mailbox, (c.created_at AT TIME ZONE 'UTC')::date AS day, c.status, coalesce(c.verdict, '') AS verdict, coalesce(c.category, '') AS category
		FROM unnest(changes) AS c WHERE c.sign < 0
	) k
	WHERE s.n = 0 AND s.mailbox = k.mailbox AND s.day = k.day AND s.status = k.status AND s.verdict = k.verdict AND s.category = k.category;

	INSERT INTO llm_stats_server_daily AS s (day, status, verdict, category, n, cache_hits, prompt_tokens, completion_tokens)
	SELECT (c.created_at AT TIME ZONE 'UTC')::date, c.status, coalesce(c.verdict, ''), coalesce(c.category, ''), sum(c.sign),
		sum(c.sign * c.cache_hit::int), sum(c.sign * coalesce(c.prompt_tokens, 0)), sum(c.sign * coalesce(c.completion_tokens, 0))
	FROM unnest(changes) AS c GROUP BY 1, 2, 3, 4
	HAVING sum(c.sign) <> 0 OR sum(c.sign * c.cache_hit::int) <> 0 OR sum(c.sign * coalesce(c.prompt_tokens, 0)) <> 0 OR sum(c.sign * coalesce(c.completion_tokens, 0)) <> 0
	ORDER BY 1, 2, 3, 4
	ON CONFLICT (day, status, verdict, category) DO UPDATE SET n = s.n + excluded.n, cache_hits = s.cache_hits + excluded.cache_hits,
		prompt_tokens = s.prompt_tokens + excluded.prompt_tokens, completion_tokens = s.completion_tokens + excluded.completion_tokens;
	DELETE FROM llm_stats_server_daily s USING (
		SELECT DISTINCT (c.created_at AT TIME ZONE 'UTC')::date AS day, c.status, coalesce(c.verdict, '') AS verdict, coalesce(c.category, '') AS category
		FROM unnest(changes) AS c WHERE c.sign < 0
	) k
	WHERE s.n = 0 AND s.day = k.day AND s.status = k.status AND s.verdict = k.verdict AND s.category = k.category;

	INSERT INTO llm_stats_mailbox AS s (mailbox, analyses, phishing, latest)
	SELECT mailbox, n, phishing, coalesce(added_latest, removed_latest) FROM (
		SELECT c.mailbox, sum(c.sign) AS n, sum(c.sign * coalesce(c.is_phishing::int, 0)) AS phishing,
			max(c.created_at) FILTER (WHERE c.sign > 0) AS added_latest, max(c.created_at) FILTER (WHERE c.sign < 0) AS removed_latest
		FROM unnest(changes) AS c GROUP BY c.mailbox
	) d
	WHERE n <> 0 OR phishing <> 0 OR removed_latest IS NULL OR added_latest > removed_latest
	ORDER BY mailbox
	ON CONFLICT (mailbox) DO UPDATE SET analyses = s.analyses + excluded.analyses, phishing = s.phishing + excluded.phishing,
		latest = greatest(s.latest, excluded.latest);
	DELETE FROM llm_stats_mailbox s WHERE s.analyses = 0 AND s.mailbox IN (SELECT c.mailbox FROM unnest(changes) AS c WHERE c.sign < 0);
	-- The newest analysis of a mailbox went, and none as new came: its newest is looked up again.
	UPDATE llm_stats_mailbox s SET latest = (SELECT max(a.created_at) FROM llm_email_analysis a WHERE a.mailbox = s.mailbox)
	  FROM (SELECT c.mailbox, max(c.created_at) AS removed_latest FROM unnest(changes) AS c WHERE c.sign < 0 GROUP BY c.mailbox) r
	 WHERE s.mailbox = r.mailbox AND r.removed_latest >= s.latest
	   AND NOT EXISTS (SELECT 1 FROM unnest(changes) AS p WHERE p.sign > 0 AND p.mailbox = r.mailbox AND p.created_at >= r.removed_latest);
END $$;
--> statement-breakpoint
CREATE FUNCTION "llm_stats_on_insert"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM llm_stats_apply(array(SELECT row(mailbox, created_at, status, verdict, category, cache_hit, prompt_tokens, completion_tokens, is_phishing, 1)::llm_stats_change FROM new_rows));
	RETURN NULL;
END $$;
--> statement-breakpoint
CREATE FUNCTION "llm_stats_on_update"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM llm_stats_apply(array(
		SELECT row(mailbox, created_at, status, verdict, category, cache_hit, prompt_tokens, completion_tokens, is_phishing, 1)::llm_stats_change FROM new_rows
		UNION ALL
		SELECT row(mailbox, created_at, status, verdict, category, cache_hit, prompt_tokens, completion_tokens, is_phishing, -1)::llm_stats_change FROM old_rows));
	RETURN NULL;
END $$;
--> statement-breakpoint
CREATE FUNCTION "llm_stats_on_delete"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM llm_stats_apply(array(SELECT row(mailbox, created_at, status, verdict, category, cache_hit, prompt_tokens, completion_tokens, is_phishing, -1)::llm_stats_change FROM old_rows));
	RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER "llm_stats_insert" AFTER INSERT ON "llm_email_analysis" REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION llm_stats_on_insert();
--> statement-breakpoint
CREATE TRIGGER "llm_stats_update" AFTER UPDATE ON "llm_email_analysis" REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION llm_stats_on_update();
--> statement-breakpoint
CREATE TRIGGER "llm_stats_delete" AFTER DELETE ON "llm_email_analysis" REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION llm_stats_on_delete();
--> statement-breakpoint
-- What was stored before the rollups existed.
INSERT INTO llm_stats_daily (mailbox, day, status, verdict, category, n, cache_hits, prompt_tokens, completion_tokens)
SELECT mailbox, (created_at AT TIME ZONE 'UTC')::date, status, coalesce(verdict, ''), coalesce(category, ''), count(*),
	count(*) FILTER (WHERE cache_hit), coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0)
  FROM llm_email_analysis GROUP BY 1, 2, 3, 4, 5;
--> statement-breakpoint
INSERT INTO llm_stats_server_daily (day, status, verdict, category, n, cache_hits, prompt_tokens, completion_tokens)
SELECT day, status, verdict, category, sum(n), sum(cache_hits), sum(prompt_tokens), sum(completion_tokens)
  FROM llm_stats_daily GROUP BY 1, 2, 3, 4;
--> statement-breakpoint
INSERT INTO llm_stats_mailbox (mailbox, analyses, phishing, latest)
SELECT mailbox, count(*), count(*) FILTER (WHERE is_phishing), max(created_at) FROM llm_email_analysis GROUP BY mailbox;
