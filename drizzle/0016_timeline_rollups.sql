CREATE TABLE "llm_latency_minutely" (
	"minute" timestamp with time zone NOT NULL,
	"bin" smallint NOT NULL,
	"n" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "llm_latency_minutely_minute_bin_pk" PRIMARY KEY("minute","bin")
);
--> statement-breakpoint
CREATE TABLE "llm_stats_minutely" (
	"minute" timestamp with time zone NOT NULL,
	"status" text NOT NULL,
	"verdict" text NOT NULL,
	"category" text NOT NULL,
	"n" bigint DEFAULT 0 NOT NULL,
	"cache_hits" bigint DEFAULT 0 NOT NULL,
	"prompt_tokens" bigint DEFAULT 0 NOT NULL,
	"completion_tokens" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "llm_stats_minutely_minute_status_verdict_category_pk" PRIMARY KEY("minute","status","verdict","category")
);
--> statement-breakpoint
CREATE TABLE "llm_latency_hourly" (
	"hour" timestamp with time zone NOT NULL,
	"bin" smallint NOT NULL,
	"n" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "llm_latency_hourly_hour_bin_pk" PRIMARY KEY("hour","bin")
);
--> statement-breakpoint
CREATE TABLE "llm_stats_hourly" (
	"hour" timestamp with time zone NOT NULL,
	"status" text NOT NULL,
	"verdict" text NOT NULL,
	"category" text NOT NULL,
	"n" bigint DEFAULT 0 NOT NULL,
	"cache_hits" bigint DEFAULT 0 NOT NULL,
	"prompt_tokens" bigint DEFAULT 0 NOT NULL,
	"completion_tokens" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "llm_stats_hourly_hour_status_verdict_category_pk" PRIMARY KEY("hour","status","verdict","category")
);
--> statement-breakpoint
-- The timeline's rollups (the whole server, per minute and per hour, with the daily rollups' sums)
-- cover the last eight days: the timeline shows at most seven (MAX_TIMELINE_MINUTES), and a day of
-- slack keeps what it shows exact while the sweep prunes older ones (pruneTimelineRollups). Kept by
-- the statement triggers of 0013, which now also hand this window's changes to llm_timeline_apply.
CREATE FUNCTION "llm_timeline_from"() RETURNS timestamptz LANGUAGE sql STABLE AS $$ SELECT now() - interval '8 days' $$;
--> statement-breakpoint
-- Latency bins 5 % wide: bin b holds (1.05^(b-1), 1.05^b] ms; 0 holds 0 and 1 ms.
CREATE FUNCTION "llm_latency_bin"(ms integer) RETURNS smallint LANGUAGE sql IMMUTABLE AS $$
	SELECT greatest(0, ceil(ln(greatest(ms, 1)) / ln(1.05)))::smallint
$$;
--> statement-breakpoint
CREATE TYPE "llm_timeline_change" AS (
	"created_at" timestamp with time zone, "status" text, "verdict" text, "category" text, "cache_hit" boolean, "llm_ms" integer, "sign" integer,
	"prompt_tokens" integer, "completion_tokens" integer
);
--> statement-breakpoint
-- The same statements for each grain, named by it (llm_stats_<grain>ly, llm_latency_<grain>ly, column <grain>).
CREATE FUNCTION "llm_timeline_apply"(changes "llm_timeline_change"[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	grain text;
BEGIN
	FOREACH grain IN ARRAY ARRAY['minute', 'hour'] LOOP
		-- As llm_stats_apply: signed changes summed per key, applied in key order, emptied keys removed.
		EXECUTE format($q$
			INSERT INTO %1$I AS s (%2$I, status, verdict, category, n, cache_hits, prompt_tokens, completion_tokens)
			SELECT date_trunc(%3$L, c.created_at, 'UTC'), c.status, coalesce(c.verdict, ''), coalesce(c.category, ''), sum(c.sign),
				sum(c.sign * c.cache_hit::int), sum(c.sign * coalesce(c.prompt_tokens, 0)), sum(c.sign * coalesce(c.completion_tokens, 0))
			FROM unnest($1) AS c GROUP BY 1, 2, 3, 4
			HAVING sum(c.sign) <> 0 OR sum(c.sign * c.cache_hit::int) <> 0 OR sum(c.sign * coalesce(c.prompt_tokens, 0)) <> 0 OR sum(c.sign * coalesce(c.completion_tokens, 0)) <> 0
			ORDER BY 1, 2, 3, 4
			ON CONFLICT (%2$I, status, verdict, category) DO UPDATE SET n = s.n + excluded.n, cache_hits = s.cache_hits + excluded.cache_hits,
				prompt_tokens = s.prompt_tokens + excluded.prompt_tokens, completion_tokens = s.completion_tokens + excluded.completion_tokens$q$,
			'llm_stats_' || grain || 'ly', grain, grain) USING changes;
		EXECUTE format($q$
			DELETE FROM %1$I s USING (
				SELECT DISTINCT date_trunc(%3$L, c.created_at, 'UTC') AS t, c.status, coalesce(c.verdict, '') AS verdict, coalesce(c.category, '') AS category
				FROM unnest($1) AS c WHERE c.sign < 0
			) k
			WHERE s.n = 0 AND s.%2$I = k.t AND s.status = k.status AND s.verdict = k.verdict AND s.category = k.category$q$,
			'llm_stats_' || grain || 'ly', grain, grain) USING changes;
		EXECUTE format($q$
			INSERT INTO %1$I AS s (%2$I, bin, n)
			SELECT date_trunc(%3$L, c.created_at, 'UTC'), llm_latency_bin(c.llm_ms), sum(c.sign)
			FROM unnest($1) AS c WHERE c.status = 'analyzed' AND NOT c.cache_hit AND c.llm_ms IS NOT NULL
			GROUP BY 1, 2 HAVING sum(c.sign) <> 0 ORDER BY 1, 2
			ON CONFLICT (%2$I, bin) DO UPDATE SET n = s.n + excluded.n$q$,
			'llm_latency_' || grain || 'ly', grain, grain) USING changes;
		EXECUTE format($q$
			DELETE FROM %1$I s USING (
				SELECT DISTINCT date_trunc(%3$L, c.created_at, 'UTC') AS t, llm_latency_bin(c.llm_ms) AS bin
				FROM unnest($1) AS c WHERE c.sign < 0 AND c.llm_ms IS NOT NULL
			) k
			WHERE s.n = 0 AND s.%2$I = k.t AND s.bin = k.bin$q$,
			'llm_latency_' || grain || 'ly', grain, grain) USING changes;
	END LOOP;
END $$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "llm_stats_on_insert"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM llm_stats_apply(array(SELECT row(mailbox, created_at, status, verdict, category, cache_hit, prompt_tokens, completion_tokens, is_phishing, 1)::llm_stats_change FROM new_rows));
	PERFORM llm_timeline_apply(array(SELECT row(created_at, status, verdict, category, cache_hit, llm_ms, 1, prompt_tokens, completion_tokens)::llm_timeline_change FROM new_rows WHERE created_at >= llm_timeline_from()));
	RETURN NULL;
END $$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "llm_stats_on_update"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM llm_stats_apply(array(
		SELECT row(mailbox, created_at, status, verdict, category, cache_hit, prompt_tokens, completion_tokens, is_phishing, 1)::llm_stats_change FROM new_rows
		UNION ALL
		SELECT row(mailbox, created_at, status, verdict, category, cache_hit, prompt_tokens, completion_tokens, is_phishing, -1)::llm_stats_change FROM old_rows));
	PERFORM llm_timeline_apply(array(
		SELECT row(created_at, status, verdict, category, cache_hit, llm_ms, 1, prompt_tokens, completion_tokens)::llm_timeline_change FROM new_rows WHERE created_at >= llm_timeline_from()
		UNION ALL
		SELECT row(created_at, status, verdict, category, cache_hit, llm_ms, -1, prompt_tokens, completion_tokens)::llm_timeline_change FROM old_rows WHERE created_at >= llm_timeline_from()));
	RETURN NULL;
END $$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "llm_stats_on_delete"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM llm_stats_apply(array(SELECT row(mailbox, created_at, status, verdict, category, cache_hit, prompt_tokens, completion_tokens, is_phishing, -1)::llm_stats_change FROM old_rows));
	PERFORM llm_timeline_apply(array(SELECT row(created_at, status, verdict, category, cache_hit, llm_ms, -1, prompt_tokens, completion_tokens)::llm_timeline_change FROM old_rows WHERE created_at >= llm_timeline_from()));
	RETURN NULL;
END $$;
--> statement-breakpoint
-- What the window held before these rollups existed.
SELECT llm_timeline_apply(array(
	SELECT row(created_at, status, verdict, category, cache_hit, llm_ms, 1, prompt_tokens, completion_tokens)::llm_timeline_change
	  FROM llm_email_analysis WHERE created_at >= llm_timeline_from()));
