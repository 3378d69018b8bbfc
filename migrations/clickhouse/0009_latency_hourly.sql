-- Glassbox ClickHouse migration 0009: `latency_hourly`, the model-call latencies per UTC hour,
-- tenant, agent and model as exact quantile states, filled by a materialized view from `usage`,
-- backfilled once from the rows already there.
--
-- `latency` (the dashboard's latency page) reads the whole hours of its range here when its
-- bucket is a whole number of hours, and the partial hours at the two ends from `usage`; both
-- parts are `quantilesExact` states, merged at read time (`quantilesExactMerge`), so the
-- percentiles are exactly those of the rows (`LatencyRow`'s rule, as the SQLite backend
-- computes them). An exact state keeps every value (8 bytes per call), so this saves the
-- per-row grouping and bucketing of `usage`, not storage. `latency_minute` (migration 4) keeps
-- its approximate states for Grafana.
-- Each usage row is a whole model call, so late rows and rows of one trace in several batches
-- need nothing special. A batch retried with its `insert_deduplication_token` is dropped by
-- `usage` and by this table alike (`non_replicated_deduplication_window`: the view's insert
-- carries a token derived from the batch's), so a spool replay is never counted twice.
-- Only calls from 1970-01-01 01:00 to 2100-01-01 UTC enter the rollup (`DateTime` cannot hold
-- the others); readers read hours outside that window from `usage`.
--
-- The backfill (no ON CLUSTER: on a cluster it runs on one replica and replication copies it)
-- carries an `insert_deduplication_token`, so two servers applying this migration at once add
-- the old rows once. Rows another server writes between the view's creation and the backfill (a
-- few seconds) could be counted twice: run `glassbox migrate` before starting writers when
-- upgrading a busy store.
--
-- Placeholders (see 0001_spans.sql): {database}, {on_cluster}, {replicated}, {replica_args}.
CREATE TABLE IF NOT EXISTS {database}.latency_hourly{on_cluster}
(
    Hour DateTime('UTC'),
    Tenant LowCardinality(String),
    Agent LowCardinality(String),
    Model LowCardinality(String),
    Calls SimpleAggregateFunction(sum, UInt64),
    LatencyNs AggregateFunction(quantilesExact(0.5, 0.95, 0.99), UInt64)
)
ENGINE = {replicated}AggregatingMergeTree({replica_args})
PARTITION BY toYYYYMM(Hour)
ORDER BY (Hour, Tenant, Agent, Model)
SETTINGS index_granularity = 1024, non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.latency_hourly_mv{on_cluster}
TO {database}.latency_hourly
AS SELECT
    toStartOfHour(toDateTime(Timestamp, 'UTC')) AS Hour,
    Tenant,
    Agent,
    Model,
    count() AS Calls,
    quantilesExactState(0.5, 0.95, 0.99)(LatencyNs) AS LatencyNs
FROM {database}.usage
WHERE Timestamp >= toDateTime64('1970-01-01 01:00:00', 9, 'UTC') AND Timestamp < toDateTime64('2100-01-01 00:00:00', 9, 'UTC')
GROUP BY Hour, Tenant, Agent, Model;

INSERT INTO {database}.latency_hourly
SELECT
    toStartOfHour(toDateTime(Timestamp, 'UTC')) AS Hour,
    Tenant,
    Agent,
    Model,
    count() AS Calls,
    quantilesExactState(0.5, 0.95, 0.99)(LatencyNs) AS LatencyNs
FROM {database}.usage
WHERE Timestamp >= toDateTime64('1970-01-01 01:00:00', 9, 'UTC') AND Timestamp < toDateTime64('2100-01-01 00:00:00', 9, 'UTC')
GROUP BY Hour, Tenant, Agent, Model
SETTINGS insert_deduplication_token = 'glassbox-migration-0009-latency-hourly-backfill';
