-- The reference sink of the durable writer (ClickHouse 18.16 syntax).
--
-- eng.events holds one row per event as the writer sends it (NDJSON,
-- FORMAT JSONEachRow). A batch the writer resends after a lost answer
-- inserts its rows again: ReplacingMergeTree keeps one row per
-- (content_id, event_id) at merge time, and SELECT ... FINAL (or
-- uniqExact(event_id)) reads exactly one row per event before a merge.
--
-- Retention: 18.16 has no TTL clause. Partitions are months; drop old
-- ones from cron, e.g.
--   ALTER TABLE eng.events DROP PARTITION 202301;
--   ALTER TABLE eng.views_minute DROP PARTITION 202612;
--
-- The rollups are fed by materialized views at insert time. They sum what
-- was inserted: a resent batch (only after the sink committed it but the
-- answer was lost) is summed twice there. Rebuild a day from eng.events
-- FINAL where exact figures matter (see the README).

CREATE DATABASE IF NOT EXISTS eng;

CREATE TABLE IF NOT EXISTS eng.events
(
    event_id     String,
    type         String,
    content_id   String,
    viewer_id    String,
    session_id   String,
    ts           DateTime,
    received_at  DateTime,
    duration_ms  Int64,
    counted      UInt8,
    reason       String,
    country      String,
    device       String,
    source       String,
    channel_id   String,
    category     String,
    reaction     String,
    previous_reaction String,
    edge         String,
    event_date   Date MATERIALIZED toDate(ts)
)
ENGINE = ReplacingMergeTree(counted)
PARTITION BY toYYYYMM(event_date)
ORDER BY (content_id, event_id);

-- rollups: events and counted events per content, country, device, source
CREATE TABLE IF NOT EXISTS eng.views_minute
(
    minute       DateTime,
    content_id   String,
    country      String,
    device       String,
    source       String,
    events       UInt64,
    counted      UInt64,
    duration_ms  Int64
)
ENGINE = SummingMergeTree((events, counted, duration_ms))
PARTITION BY toYYYYMM(minute)
ORDER BY (content_id, minute, country, device, source);

CREATE TABLE IF NOT EXISTS eng.views_hour
(
    hour         DateTime,
    content_id   String,
    country      String,
    device       String,
    source       String,
    events       UInt64,
    counted      UInt64,
    duration_ms  Int64
)
ENGINE = SummingMergeTree((events, counted, duration_ms))
PARTITION BY toYYYYMM(hour)
ORDER BY (content_id, hour, country, device, source);

CREATE TABLE IF NOT EXISTS eng.views_day
(
    day          Date,
    content_id   String,
    country      String,
    device       String,
    source       String,
    events       UInt64,
    counted      UInt64,
    duration_ms  Int64
)
ENGINE = SummingMergeTree((events, counted, duration_ms))
PARTITION BY toYear(day)
ORDER BY (content_id, day, country, device, source);

CREATE MATERIALIZED VIEW IF NOT EXISTS eng.views_minute_mv
TO eng.views_minute AS
SELECT toStartOfMinute(ts) AS minute, content_id, country, device, source,
       count() AS events, sum(counted) AS counted,
       sum(duration_ms) AS duration_ms
FROM eng.events WHERE type = 'view'
GROUP BY minute, content_id, country, device, source;

CREATE MATERIALIZED VIEW IF NOT EXISTS eng.views_hour_mv
TO eng.views_hour AS
SELECT toStartOfHour(ts) AS hour, content_id, country, device, source,
       count() AS events, sum(counted) AS counted,
       sum(duration_ms) AS duration_ms
FROM eng.events WHERE type = 'view'
GROUP BY hour, content_id, country, device, source;

CREATE MATERIALIZED VIEW IF NOT EXISTS eng.views_day_mv
TO eng.views_day AS
SELECT toDate(ts) AS day, content_id, country, device, source,
       count() AS events, sum(counted) AS counted,
       sum(duration_ms) AS duration_ms
FROM eng.events WHERE type = 'view'
GROUP BY day, content_id, country, device, source;
