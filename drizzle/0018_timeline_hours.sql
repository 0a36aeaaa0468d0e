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
	CONSTRAINT "llm_stats_hourly_hour_status_verdict_category_pk" PRIMARY KEY("hour","status","verdict","category")
);
--> statement-breakpoint
-- The timeline's rollups per minute (0016) and now per hour, kept by one function: the same
-- statements for each grain, named by it (llm_stats_<grain>ly, llm_latency_<grain>ly, column <grain>).
CREATE OR REPLACE FUNCTION "llm_timeline_apply"(changes "llm_timeline_change"[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	grain text;
BEGIN
	FOREACH grain IN ARRAY ARRAY['minute', 'hour'] LOOP
		-- As llm_stats_apply: signed changes summed per key, applied in key order, emptied keys removed.
		EXECUTE format($q$
			INSERT INTO %1$I AS s (%2$I, status, verdict, category, n)
			SELECT date_trunc(%3$L, c.created_at, 'UTC'), c.status, coalesce(c.verdict, ''), coalesce(c.category, ''), sum(c.sign)
			FROM unnest($1) AS c GROUP BY 1, 2, 3, 4 HAVING sum(c.sign) <> 0 ORDER BY 1, 2, 3, 4
			ON CONFLICT (%2$I, status, verdict, category) DO UPDATE SET n = s.n + excluded.n$q$,
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
-- The hours of what the minutes hold.
INSERT INTO llm_stats_hourly (hour, status, verdict, category, n)
SELECT date_trunc('hour', minute, 'UTC'), status, verdict, category, sum(n) FROM llm_stats_minutely GROUP BY 1, 2, 3, 4;
--> statement-breakpoint
INSERT INTO llm_latency_hourly (hour, bin, n)
SELECT date_trunc('hour', minute, 'UTC'), bin, sum(n) FROM llm_latency_minutely GROUP BY 1, 2;
