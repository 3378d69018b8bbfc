-- Glassbox ClickHouse migration 0008: `usage_hourly`, calls, tokens and cost per UTC hour,
-- tenant, agent and model, filled by a materialized view from `usage`, backfilled once from the
-- rows already there.
--
-- `usage_by` (the dashboard's overview and cost pages) reads the whole hours of its range here
-- and only the partial hours at its two ends from `usage`, so a 7-day page sums ~170 rows per
-- group instead of every model call, exactly (SummingMergeTree: rows with the same key are
-- summed by merges; readers still sum with GROUP BY). ORDER BY starts with the hour, so the
-- range (and the tenant filter next to it) prunes granules.
-- Only calls from 1970-01-01 01:00 to 2100-01-01 UTC enter the rollup (`DateTime` cannot hold
-- the others); readers read hours outside that window from `usage`.
--
-- The backfill (no ON CLUSTER: on a cluster it runs on one replica and replication copies it)
-- carries an `insert_deduplication_token`, so two servers applying this migration
-- at once add the old rows once. Rows another server writes between the view's creation and
-- the backfill (a few seconds) could be counted twice: run `glassbox migrate` before starting
-- writers when upgrading a busy store.
--
-- Placeholders (see 0001_spans.sql): {database}, {on_cluster}, {replicated}, {replica_args}.
CREATE TABLE IF NOT EXISTS {database}.usage_hourly{on_cluster}
(
    Hour DateTime('UTC'),
    Tenant LowCardinality(String),
    Agent LowCardinality(String),
    Model LowCardinality(String),
    Calls UInt64,
    InputTokens UInt64,
    OutputTokens UInt64,
    CachedInputTokens UInt64,
    CostUsd Decimal(38, 9)
)
ENGINE = {replicated}SummingMergeTree({replica_args})
PARTITION BY toYYYYMM(Hour)
ORDER BY (Hour, Tenant, Agent, Model)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.usage_hourly_mv{on_cluster}
TO {database}.usage_hourly
AS SELECT
    toStartOfHour(toDateTime(Timestamp, 'UTC')) AS Hour,
    Tenant,
    Agent,
    Model,
    count() AS Calls,
    sum(InputTokens) AS InputTokens,
    sum(OutputTokens) AS OutputTokens,
    sum(CachedInputTokens) AS CachedInputTokens,
    sum(CostUsd) AS CostUsd
FROM {database}.usage
WHERE Timestamp >= toDateTime64('1970-01-01 01:00:00', 9, 'UTC') AND Timestamp < toDateTime64('2100-01-01 00:00:00', 9, 'UTC')
GROUP BY Hour, Tenant, Agent, Model;

INSERT INTO {database}.usage_hourly
SELECT
    toStartOfHour(toDateTime(Timestamp, 'UTC')) AS Hour,
    Tenant,
    Agent,
    Model,
    count() AS Calls,
    sum(InputTokens) AS InputTokens,
    sum(OutputTokens) AS OutputTokens,
    sum(CachedInputTokens) AS CachedInputTokens,
    sum(CostUsd) AS CostUsd
FROM {database}.usage
WHERE Timestamp >= toDateTime64('1970-01-01 01:00:00', 9, 'UTC') AND Timestamp < toDateTime64('2100-01-01 00:00:00', 9, 'UTC')
GROUP BY Hour, Tenant, Agent, Model
SETTINGS insert_deduplication_token = 'glassbox-migration-0008-usage-hourly-backfill';
