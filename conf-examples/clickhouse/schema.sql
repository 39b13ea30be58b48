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
-- was inserted. A batch whose answer was lost after the sink committed it
-- would be summed twice when resent; with the writer's check= (see
-- eng.batches below and conf-examples/clickhouse.conf) the writer asks
-- first and does not resend it. Without check=, rebuild a day from
-- eng.events FINAL where exact figures matter (see the README).
--
-- What a view counted is in views, engaged and replays (1 or 0 each: an
-- engaged-only event or a replay counted no view), the fields of Redis's
-- totals. The rollups sum them per minute, hour and day of received_at,
-- the time the edge accepted the event, which is the time Redis files a
-- flush's deltas under; ts, the player's time, stays in eng.events.
--
-- Upgrading a table made by an earlier version of this file:
--   ALTER TABLE eng.events ADD COLUMN previous_reaction String AFTER reaction;
--   ALTER TABLE eng.events ADD COLUMN batch_id String DEFAULT '' AFTER edge;
--   ALTER TABLE eng.events ADD COLUMN views UInt8 AFTER counted;
--   ALTER TABLE eng.events ADD COLUMN engaged UInt8 AFTER views;
--   ALTER TABLE eng.events ADD COLUMN replays UInt8 AFTER engaged;
--   ALTER TABLE eng.events ADD COLUMN name String DEFAULT '' AFTER previous_reaction;
--   ALTER TABLE eng.events ADD COLUMN position_ms Int64 DEFAULT -1 AFTER name;
-- and, for rollups without views, engaged and replays (their sums and
-- their minutes change: the views are made again, and the tables too,
-- since a SummingMergeTree's summed columns are fixed at creation):
--   DROP TABLE eng.views_minute_mv; DROP TABLE eng.views_minute;
--   DROP TABLE eng.views_hour_mv;   DROP TABLE eng.views_hour;
--   DROP TABLE eng.views_day_mv;    DROP TABLE eng.views_day;
-- then run this file again (and refill the rollups from eng.events FINAL
-- if need be; rows written before the upgrade have views = 0).

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
    views        UInt8,
    engaged      UInt8,
    replays      UInt8,
    reason       String,
    country      String,
    device       String,
    source       String,
    channel_id   String,
    category     String,
    reaction     String,
    previous_reaction String,
    name         String DEFAULT '',
    position_ms  Int64 DEFAULT -1,
    edge         String,
    batch_id     String DEFAULT '',
    event_date   Date MATERIALIZED toDate(ts)
)
ENGINE = ReplacingMergeTree(counted)
PARTITION BY toYYYYMM(event_date)
ORDER BY (content_id, event_id);

-- rollups: events, counted events and what they counted per content,
-- country, device, source, by the time the edge received them
CREATE TABLE IF NOT EXISTS eng.views_minute
(
    minute       DateTime,
    content_id   String,
    country      String,
    device       String,
    source       String,
    events       UInt64,
    counted      UInt64,
    views        UInt64,
    engaged      UInt64,
    replays      UInt64,
    duration_ms  Int64
)
ENGINE = SummingMergeTree((events, counted, views, engaged, replays,
                           duration_ms))
PARTITION BY toYYYYMMDD(minute)
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
    views        UInt64,
    engaged      UInt64,
    replays      UInt64,
    duration_ms  Int64
)
ENGINE = SummingMergeTree((events, counted, views, engaged, replays,
                           duration_ms))
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
    views        UInt64,
    engaged      UInt64,
    replays      UInt64,
    duration_ms  Int64
)
ENGINE = SummingMergeTree((events, counted, views, engaged, replays,
                           duration_ms))
PARTITION BY toYear(day)
ORDER BY (content_id, day, country, device, source);

CREATE MATERIALIZED VIEW IF NOT EXISTS eng.views_minute_mv
TO eng.views_minute AS
SELECT toStartOfMinute(received_at) AS minute, content_id, country, device,
       source, count() AS events, sum(counted) AS counted,
       sum(views) AS views, sum(engaged) AS engaged,
       sum(replays) AS replays, sum(duration_ms) AS duration_ms
FROM eng.events WHERE type = 'view'
GROUP BY minute, content_id, country, device, source;

CREATE MATERIALIZED VIEW IF NOT EXISTS eng.views_hour_mv
TO eng.views_hour AS
SELECT toStartOfHour(received_at) AS hour, content_id, country, device,
       source, count() AS events, sum(counted) AS counted,
       sum(views) AS views, sum(engaged) AS engaged,
       sum(replays) AS replays, sum(duration_ms) AS duration_ms
FROM eng.events WHERE type = 'view'
GROUP BY hour, content_id, country, device, source;

CREATE MATERIALIZED VIEW IF NOT EXISTS eng.views_day_mv
TO eng.views_day AS
SELECT toDate(received_at) AS day, content_id, country, device,
       source, count() AS events, sum(counted) AS counted,
       sum(views) AS views, sum(engaged) AS engaged,
       sum(replays) AS replays, sum(duration_ms) AS duration_ms
FROM eng.events WHERE type = 'view'
GROUP BY day, content_id, country, device, source;

-- Channel rollups: what a channel's contents counted, per category,
-- country, device and source (events whose channel_id is known). A
-- channel's questions read these, not the content rollups: their order
-- starts with channel_id.
CREATE TABLE IF NOT EXISTS eng.channel_minute
(
    minute       DateTime,
    channel_id   String,
    category     String,
    country      String,
    device       String,
    source       String,
    events       UInt64,
    counted      UInt64,
    views        UInt64,
    engaged      UInt64,
    replays      UInt64,
    duration_ms  Int64
)
ENGINE = SummingMergeTree((events, counted, views, engaged, replays,
                           duration_ms))
PARTITION BY toYYYYMMDD(minute)
ORDER BY (channel_id, minute, category, country, device, source);

CREATE TABLE IF NOT EXISTS eng.channel_hour
(
    hour         DateTime,
    channel_id   String,
    category     String,
    country      String,
    device       String,
    source       String,
    events       UInt64,
    counted      UInt64,
    views        UInt64,
    engaged      UInt64,
    replays      UInt64,
    duration_ms  Int64
)
ENGINE = SummingMergeTree((events, counted, views, engaged, replays,
                           duration_ms))
PARTITION BY toYYYYMM(hour)
ORDER BY (channel_id, hour, category, country, device, source);

CREATE TABLE IF NOT EXISTS eng.channel_day
(
    day          Date,
    channel_id   String,
    category     String,
    country      String,
    device       String,
    source       String,
    events       UInt64,
    counted      UInt64,
    views        UInt64,
    engaged      UInt64,
    replays      UInt64,
    duration_ms  Int64
)
ENGINE = SummingMergeTree((events, counted, views, engaged, replays,
                           duration_ms))
PARTITION BY toYear(day)
ORDER BY (channel_id, day, category, country, device, source);

CREATE MATERIALIZED VIEW IF NOT EXISTS eng.channel_minute_mv
TO eng.channel_minute AS
SELECT toStartOfMinute(received_at) AS minute, channel_id, category,
       country, device, source, count() AS events, sum(counted) AS counted,
       sum(views) AS views, sum(engaged) AS engaged,
       sum(replays) AS replays, sum(duration_ms) AS duration_ms
FROM eng.events WHERE type = 'view' AND channel_id != ''
GROUP BY minute, channel_id, category, country, device, source;

CREATE MATERIALIZED VIEW IF NOT EXISTS eng.channel_hour_mv
TO eng.channel_hour AS
SELECT toStartOfHour(received_at) AS hour, channel_id, category,
       country, device, source, count() AS events, sum(counted) AS counted,
       sum(views) AS views, sum(engaged) AS engaged,
       sum(replays) AS replays, sum(duration_ms) AS duration_ms
FROM eng.events WHERE type = 'view' AND channel_id != ''
GROUP BY hour, channel_id, category, country, device, source;

CREATE MATERIALIZED VIEW IF NOT EXISTS eng.channel_day_mv
TO eng.channel_day AS
SELECT toDate(received_at) AS day, channel_id, category,
       country, device, source, count() AS events, sum(counted) AS counted,
       sum(views) AS views, sum(engaged) AS engaged,
       sum(replays) AS replays, sum(duration_ms) AS duration_ms
FROM eng.events WHERE type = 'view' AND channel_id != ''
GROUP BY day, channel_id, category, country, device, source;

-- Likes per content and hour/day: likes (a reaction set where there was
-- none), unlikes (removed) and changes (one reaction for another), each
-- counted only when the edge applied it (counted = 1), per reaction type
-- set (the removed one for an unlike).
CREATE TABLE IF NOT EXISTS eng.reactions_hour
(
    hour         DateTime,
    content_id   String,
    reaction     String,
    likes        UInt64,
    unlikes      UInt64,
    changes      UInt64
)
ENGINE = SummingMergeTree((likes, unlikes, changes))
PARTITION BY toYYYYMM(hour)
ORDER BY (content_id, hour, reaction);

CREATE TABLE IF NOT EXISTS eng.reactions_day
(
    day          Date,
    content_id   String,
    reaction     String,
    likes        UInt64,
    unlikes      UInt64,
    changes      UInt64
)
ENGINE = SummingMergeTree((likes, unlikes, changes))
PARTITION BY toYear(day)
ORDER BY (content_id, day, reaction);

CREATE MATERIALIZED VIEW IF NOT EXISTS eng.reactions_hour_mv
TO eng.reactions_hour AS
SELECT toStartOfHour(received_at) AS hour, content_id,
       if(type = 'unlike', previous_reaction, reaction) AS reaction,
       sum(counted AND type IN ('like', 'react')
           AND previous_reaction = '') AS likes,
       sum(counted AND type = 'unlike') AS unlikes,
       sum(counted AND type IN ('like', 'react')
           AND previous_reaction != '') AS changes
FROM eng.events WHERE type IN ('like', 'react', 'unlike')
GROUP BY hour, content_id, reaction;

CREATE MATERIALIZED VIEW IF NOT EXISTS eng.reactions_day_mv
TO eng.reactions_day AS
SELECT toDate(received_at) AS day, content_id,
       if(type = 'unlike', previous_reaction, reaction) AS reaction,
       sum(counted AND type IN ('like', 'react')
           AND previous_reaction = '') AS likes,
       sum(counted AND type = 'unlike') AS unlikes,
       sum(counted AND type IN ('like', 'react')
           AND previous_reaction != '') AS changes
FROM eng.events WHERE type IN ('like', 'react', 'unlike')
GROUP BY day, content_id, reaction;

-- Interaction events (type 'click', the declared name in name) per
-- content, channel, name, country, device and source, by hour and day.
CREATE TABLE IF NOT EXISTS eng.interactions_hour
(
    hour         DateTime,
    content_id   String,
    channel_id   String,
    name         String,
    country      String,
    device       String,
    source       String,
    clicks       UInt64
)
ENGINE = SummingMergeTree(clicks)
PARTITION BY toYYYYMM(hour)
ORDER BY (content_id, hour, name, channel_id, country, device, source);

CREATE TABLE IF NOT EXISTS eng.interactions_day
(
    day          Date,
    content_id   String,
    channel_id   String,
    name         String,
    country      String,
    device       String,
    source       String,
    clicks       UInt64
)
ENGINE = SummingMergeTree(clicks)
PARTITION BY toYear(day)
ORDER BY (content_id, day, name, channel_id, country, device, source);

CREATE MATERIALIZED VIEW IF NOT EXISTS eng.interactions_hour_mv
TO eng.interactions_hour AS
SELECT toStartOfHour(received_at) AS hour, content_id, channel_id, name,
       country, device, source, sum(counted) AS clicks
FROM eng.events WHERE type = 'click'
GROUP BY hour, content_id, channel_id, name, country, device, source;

CREATE MATERIALIZED VIEW IF NOT EXISTS eng.interactions_day_mv
TO eng.interactions_day AS
SELECT toDate(received_at) AS day, content_id, channel_id, name,
       country, device, source, sum(counted) AS clicks
FROM eng.events WHERE type = 'click'
GROUP BY day, content_id, channel_id, name, country, device, source;

-- rows stored per writer batch: what engagement_writer's check= asks before
-- it sends a spooled batch again, e.g.
--   check=/?query=SELECT%20sum(rows)%20FROM%20eng.batches%20WHERE%20batch_id%20%3D
-- (ClickHouse appends the POSTed '<batch id>' to the query). Drop old
-- months like the other tables: ALTER TABLE eng.batches DROP PARTITION 202612;
CREATE TABLE IF NOT EXISTS eng.batches
(
    day          Date,
    batch_id     String,
    rows         UInt64
)
ENGINE = SummingMergeTree(rows)
PARTITION BY toYYYYMM(day)
ORDER BY batch_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS eng.batches_mv
TO eng.batches AS
SELECT today() AS day, batch_id, count() AS rows
FROM eng.events WHERE batch_id != ''
GROUP BY batch_id;
