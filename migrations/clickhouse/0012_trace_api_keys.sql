-- Glassbox ClickHouse migration 0012: `trace_api_keys`, which traces each API key made requests
-- in, so the traces list can be filtered by API key (SQLite keeps the same set in
-- `trace_index.ApiKeys`). A trace's keys are the distinct non-empty `glassbox.api_key_id` of its
-- spans: a set, as the models are, because a caller may carry one trace across requests made
-- with different keys.
--
-- A table of its own rather than a column of `trace_index`: adding one there would mean
-- changing `trace_index_mv`'s query, which ClickHouse 24.3 allows only behind an experimental
-- setting (or by dropping and re-creating the view, which loses the spans inserted in between).
-- ORDER BY (ApiKeyId, TraceId): a filter reads one key's granules; the reader then keeps the
-- `trace_index` rows whose TraceId is among them. PARTITION BY and TTL as `trace_index`, on the
-- earliest span carrying the key.
--
-- The backfill needs no deduplication token: a row that arrives twice (two servers migrating at
-- once) changes neither the set nor its min(Start), and merges fold it away. It writes one
-- partition per day of the spans it reads, so it lifts the limit of 100 partitions per
-- inserted block (`max_partitions_per_insert_block`), which a store keeping more than 100 days
-- of spans would hit.
--
-- Placeholders (see 0001_spans.sql): {database}, {on_cluster}, {replicated}, {replica_args},
-- {ttl_days}.
CREATE TABLE IF NOT EXISTS {database}.trace_api_keys{on_cluster}
(
    ApiKeyId LowCardinality(String),
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime64(9)) CODEC(Delta, ZSTD(1))
)
ENGINE = {replicated}AggregatingMergeTree({replica_args})
PARTITION BY toDate(Start)
ORDER BY (ApiKeyId, TraceId)
TTL toDateTime(Start) + toIntervalDay({ttl_days})
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.trace_api_keys_mv{on_cluster}
TO {database}.trace_api_keys
AS SELECT
    SpanAttributes['glassbox.api_key_id'] AS ApiKeyId,
    TraceId,
    min(Timestamp) AS Start
FROM {database}.spans
WHERE TraceId != '' AND SpanAttributes['glassbox.api_key_id'] != ''
GROUP BY ApiKeyId, TraceId;

INSERT INTO {database}.trace_api_keys
SELECT
    SpanAttributes['glassbox.api_key_id'] AS ApiKeyId,
    TraceId,
    min(Timestamp) AS Start
FROM {database}.spans
WHERE TraceId != '' AND SpanAttributes['glassbox.api_key_id'] != ''
GROUP BY ApiKeyId, TraceId
SETTINGS max_partitions_per_insert_block = 0;
