-- Glassbox ClickHouse migration 0004: dashboard rollups, filled by materialized views from
-- `usage`.
--
-- `usage_daily`: calls, tokens and cost per UTC day, tenant, agent and model (SummingMergeTree:
-- rows with the same key are summed by merges; readers still sum with GROUP BY). `usage_by`
-- reads it when the asked range is whole UTC days.
-- `latency_minute`: per minute, agent and model, the call count and `quantilesState` of the
-- model-call latency (nanoseconds), for Grafana and long-range charts. These states are
-- approximate (reservoir sampling), so the store's own `latency` query reads `usage` with
-- `quantilesExact`, which is what the SQLite backend computes too.
--
-- Placeholders (see 0001_spans.sql): {database}, {on_cluster}, {replicated}, {replica_args}.
--
-- Every statement must be idempotent (IF NOT EXISTS): two servers may run a migration at once.
CREATE TABLE IF NOT EXISTS {database}.usage_daily{on_cluster}
(
    Day Date,
    Tenant LowCardinality(String),
    Agent LowCardinality(String),
    Model LowCardinality(String),
    Calls UInt64,
    ErrorCalls UInt64,
    CostUnknownCalls UInt64,
    InputTokens UInt64,
    OutputTokens UInt64,
    CachedInputTokens UInt64,
    ReasoningTokens UInt64,
    CostUsd Decimal(38, 9)
)
ENGINE = {replicated}SummingMergeTree({replica_args})
PARTITION BY toYYYYMM(Day)
ORDER BY (Day, Tenant, Agent, Model)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.usage_daily_mv{on_cluster}
TO {database}.usage_daily
AS SELECT
    toDate(Timestamp, 'UTC') AS Day,
    Tenant,
    Agent,
    Model,
    count() AS Calls,
    countIf(Status != 'ok') AS ErrorCalls,
    countIf(CostUnknown) AS CostUnknownCalls,
    sum(InputTokens) AS InputTokens,
    sum(OutputTokens) AS OutputTokens,
    sum(CachedInputTokens) AS CachedInputTokens,
    sum(ReasoningTokens) AS ReasoningTokens,
    sum(CostUsd) AS CostUsd
FROM {database}.usage
GROUP BY Day, Tenant, Agent, Model;

CREATE TABLE IF NOT EXISTS {database}.latency_minute{on_cluster}
(
    Minute DateTime('UTC'),
    Agent LowCardinality(String),
    Model LowCardinality(String),
    Calls SimpleAggregateFunction(sum, UInt64),
    LatencyNs AggregateFunction(quantiles(0.5, 0.95, 0.99), UInt64)
)
ENGINE = {replicated}AggregatingMergeTree({replica_args})
PARTITION BY toYYYYMM(Minute)
ORDER BY (Agent, Model, Minute)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.latency_minute_mv{on_cluster}
TO {database}.latency_minute
AS SELECT
    toStartOfMinute(toDateTime(Timestamp, 'UTC')) AS Minute,
    Agent,
    Model,
    count() AS Calls,
    quantilesState(0.5, 0.95, 0.99)(LatencyNs) AS LatencyNs
FROM {database}.usage
GROUP BY Minute, Agent, Model;
