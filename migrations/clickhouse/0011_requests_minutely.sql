-- Glassbox ClickHouse migration 0011: `requests_minutely`, the API requests and guardrail blocks
-- per UTC hour and tenant, filled by a materialized view from `spans`, backfilled once.
--
-- The dashboard's overview (`request_stats`, see RequestStats in src/query.rs) reads the whole
-- hours of its range here and the partial hours at the two ends from `spans`. A request is a
-- `Server` span carrying `glassbox.request` (the server's request span of an API call); a block
-- is a span carrying a non-empty `glassbox.tripwire.processor`. Each figure is one span's, so
-- spans arriving late or a trace split over many batches need nothing special (the reason the
-- per-trace figures of `trace_index` could not be rolled up). Latencies are kept as exact
-- `quantilesExact` states (every value), so the percentiles are exactly those of the spans.
-- A batch retried with its `insert_deduplication_token` is dropped by `spans` and by this table
-- alike (`non_replicated_deduplication_window`; the view's insert carries a derived token), so a
-- spool replay is never counted twice. Only spans from 1970-01-01 01:00 to 2100-01-01 UTC enter
-- the rollup (`DateTime` cannot hold the others); readers read other minutes from `spans`.
--
-- The backfill (no ON CLUSTER: on a cluster it runs on one replica and replication copies it)
-- carries an `insert_deduplication_token`, so two servers applying this migration at once add
-- the old rows once. It runs with `max_threads = 1`: the token is extended per inserted block,
-- and a parallel SELECT cut its output into a varying number of blocks, so a second run was
-- sometimes not recognised (seen in the conformance test, 2 runs in 4). As with migration 8, run `glassbox migrate` before starting writers when
-- upgrading a busy store.
--
-- Placeholders (see 0001_spans.sql): {database}, {on_cluster}, {replicated}, {replica_args}.
CREATE TABLE IF NOT EXISTS {database}.requests_minutely{on_cluster}
(
    Minute DateTime('UTC'),
    Tenant LowCardinality(String),
    Requests SimpleAggregateFunction(sum, UInt64),
    Errors SimpleAggregateFunction(sum, UInt64),
    Refused SimpleAggregateFunction(sum, UInt64),
    Blocked SimpleAggregateFunction(sum, UInt64),
    DurationNs AggregateFunction(quantilesExact(0.5, 0.95, 0.99), UInt64)
)
ENGINE = {replicated}AggregatingMergeTree({replica_args})
PARTITION BY toYYYYMM(Minute)
ORDER BY (Minute, Tenant)
SETTINGS index_granularity = 1024, non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.requests_minutely_mv{on_cluster}
TO {database}.requests_minutely
AS SELECT
    toStartOfMinute(toDateTime(Timestamp, 'UTC')) AS Minute,
    SpanAttributes['glassbox.tenant'] AS Tenant,
    countIf(SpanKind = 'Server' AND SpanAttributes['glassbox.request'] != '') AS Requests,
    countIf(SpanKind = 'Server' AND SpanAttributes['glassbox.request'] != '' AND StatusCode = 'Error') AS Errors,
    countIf(SpanKind = 'Server' AND SpanAttributes['glassbox.request'] != ''
        AND SpanAttributes['http.response.status_code'] IN ('402', '429')) AS Refused,
    countIf(SpanAttributes['glassbox.tripwire.processor'] != '') AS Blocked,
    quantilesExactStateIf(0.5, 0.95, 0.99)(Duration, SpanKind = 'Server' AND SpanAttributes['glassbox.request'] != '') AS DurationNs
FROM {database}.spans
WHERE ((SpanKind = 'Server' AND SpanAttributes['glassbox.request'] != '') OR SpanAttributes['glassbox.tripwire.processor'] != '')
    AND Timestamp >= toDateTime64('1970-01-01 01:00:00', 9, 'UTC') AND Timestamp < toDateTime64('2100-01-01 00:00:00', 9, 'UTC')
GROUP BY Minute, Tenant;

INSERT INTO {database}.requests_minutely
SELECT
    toStartOfMinute(toDateTime(Timestamp, 'UTC')) AS Minute,
    SpanAttributes['glassbox.tenant'] AS Tenant,
    countIf(SpanKind = 'Server' AND SpanAttributes['glassbox.request'] != '') AS Requests,
    countIf(SpanKind = 'Server' AND SpanAttributes['glassbox.request'] != '' AND StatusCode = 'Error') AS Errors,
    countIf(SpanKind = 'Server' AND SpanAttributes['glassbox.request'] != ''
        AND SpanAttributes['http.response.status_code'] IN ('402', '429')) AS Refused,
    countIf(SpanAttributes['glassbox.tripwire.processor'] != '') AS Blocked,
    quantilesExactStateIf(0.5, 0.95, 0.99)(Duration, SpanKind = 'Server' AND SpanAttributes['glassbox.request'] != '') AS DurationNs
FROM {database}.spans
WHERE ((SpanKind = 'Server' AND SpanAttributes['glassbox.request'] != '') OR SpanAttributes['glassbox.tripwire.processor'] != '')
    AND Timestamp >= toDateTime64('1970-01-01 01:00:00', 9, 'UTC') AND Timestamp < toDateTime64('2100-01-01 00:00:00', 9, 'UTC')
GROUP BY Minute, Tenant
SETTINGS insert_deduplication_token = 'glassbox-migration-0011-requests-minutely-backfill', max_threads = 1;
