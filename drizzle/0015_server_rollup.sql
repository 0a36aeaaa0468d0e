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
-- The whole server's rows move from llm_stats_daily (mailbox '') to a table of their own.
INSERT INTO llm_stats_server_daily (day, status, verdict, category, n, cache_hits, prompt_tokens, completion_tokens)
SELECT day, status, verdict, category, n, cache_hits, prompt_tokens, completion_tokens FROM llm_stats_daily WHERE mailbox = '';
--> statement-breakpoint
DELETE FROM llm_stats_daily WHERE mailbox = '';
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "llm_stats_apply"(changes "llm_stats_change"[]) RETURNS void LANGUAGE plpgsql AS $$
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
