-- Glassbox ClickHouse migration 0001: the `spans` table.
--
-- The column layout, codecs, skip indexes, partitioning, ordering, TTL and settings are those of
-- the OpenTelemetry Collector ClickHouse exporter's `otel_traces` table
-- (opentelemetry-collector-contrib, exporter/clickhouseexporter/internal/sqltemplates/traces_table.sql),
-- so Grafana's ClickHouse trace view and spans written by a Collector share this table.
-- `Duration` is `UInt64`, as in the exporter's current DDL (older exporter releases used `Int64`).
-- Added to the exporter's settings: `non_replicated_deduplication_window`, so that a batch
-- inserted again with the same `insert_deduplication_token` is dropped on a single server too.
--
-- Placeholders, substituted by the migration runner (src/clickhouse/migrations.rs) in one pass
-- over each statement; any other `{...}` (the server's `{shard}`, `{replica}`, `{table}` macros)
-- is left as written:
--   {database}      the database, as a back-quoted identifier
--   {on_cluster}    empty, or ` ON CLUSTER '<cluster>'` when a cluster is configured
--   {replicated}    empty, or `Replicated` (prefix of the engine name) when a cluster is configured
--   {replica_args}  empty, or `'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'`
--   {ttl_days}      span retention in days (ClickHouseSettings::span_ttl_days)
--
-- Every statement must be idempotent (IF NOT EXISTS): two servers may run a migration at once.
CREATE TABLE IF NOT EXISTS {database}.spans{on_cluster}
(
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested
    (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested
    (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
)
ENGINE = {replicated}MergeTree({replica_args})
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))
TTL toDateTime(Timestamp) + toIntervalDay({ttl_days})
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000;
