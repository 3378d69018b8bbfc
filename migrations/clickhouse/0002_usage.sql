-- Glassbox ClickHouse migration 0002: the `usage` table, one row per model call (UsageRow).
--
-- Billing data: no TTL. Partitioned by day of the call like `spans`; ordered by tenant first
-- so budget settlement (one tenant, one period) reads a narrow range. The key ends with the
-- DateTime64 itself, not `toDateTime(Timestamp)` as in `spans`: `toDateTime` wraps times before
-- 1970 to 2106, and the index would then skip them (spans that old are dropped by the TTL). `CostUsd` is exact
-- (`Decimal(18, 9)`, billionths of a dollar). `idx_trace_id` finds one trace's calls without a
-- full scan. `non_replicated_deduplication_window` makes `insert_deduplication_token` work on a
-- single server.
--
-- Placeholders (see 0001_spans.sql): {database}, {on_cluster}, {replicated}, {replica_args}.
--
-- Every statement must be idempotent (IF NOT EXISTS): two servers may run a migration at once.
CREATE TABLE IF NOT EXISTS {database}.usage{on_cluster}
(
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    Tenant LowCardinality(String) CODEC(ZSTD(1)),
    ApiKeyId LowCardinality(String) CODEC(ZSTD(1)),
    Agent LowCardinality(String) CODEC(ZSTD(1)),
    Workflow LowCardinality(String) CODEC(ZSTD(1)),
    Provider LowCardinality(String) CODEC(ZSTD(1)),
    Model LowCardinality(String) CODEC(ZSTD(1)),
    InputTokens UInt64 CODEC(T64, ZSTD(1)),
    OutputTokens UInt64 CODEC(T64, ZSTD(1)),
    CachedInputTokens UInt64 CODEC(T64, ZSTD(1)),
    ReasoningTokens UInt64 CODEC(T64, ZSTD(1)),
    CostUsd Decimal(18, 9) CODEC(ZSTD(1)),
    CostUnknown Bool CODEC(ZSTD(1)),
    LatencyNs UInt64 CODEC(T64, ZSTD(1)),
    TimeToFirstTokenNs UInt64 CODEC(T64, ZSTD(1)),
    Status LowCardinality(String) CODEC(ZSTD(1)),
    ErrorType LowCardinality(String) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = {replicated}MergeTree({replica_args})
PARTITION BY toDate(Timestamp)
ORDER BY (Tenant, Agent, Model, Timestamp)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;
