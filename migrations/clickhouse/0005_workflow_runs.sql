-- Glassbox ClickHouse migration 0005: workflow runs, one logical row per run.
--
-- Every save of a run inserts a full row with a larger `Version`; the ReplacingMergeTree keeps
-- the row with the largest version per `RunId` after merges, and readers use FINAL so they see
-- exactly that row before the merges have run. A late save with a smaller version (two
-- parallel steps finishing at once) therefore never rolls a run back. Same rules as the
-- SQLite `workflow_runs` table.
--
-- Placeholders (see 0001_spans.sql): {database}, {on_cluster}, {replicated},
-- {replica_args_comma} (the replication path and replica followed by a comma, or nothing).
CREATE TABLE IF NOT EXISTS {database}.workflow_runs{on_cluster}
(
    RunId String,
    WorkflowId LowCardinality(String),
    Status LowCardinality(String),
    Input String CODEC(ZSTD(1)),
    Snapshot String CODEC(ZSTD(1)),
    Result String CODEC(ZSTD(1)),
    Error String CODEC(ZSTD(1)),
    CreatedNs Int64,
    UpdatedNs Int64,
    Version UInt64
)
ENGINE = {replicated}ReplacingMergeTree({replica_args_comma}Version)
ORDER BY RunId
SETTINGS index_granularity = 8192;
