-- Glassbox ClickHouse migration 0005: eval results.
--
-- `eval_runs`: one row per suite run; `eval_results`: one row per case and scorer of a run;
-- `eval_scores`: one row per online scorer on a sampled request, found by trace id. Score is
-- NULL when the scorer errored. ReplacingMergeTree on the natural key, read with FINAL, so a
-- repeated write never doubles a row.
--
-- Placeholders (see 0001_spans.sql): {database}, {on_cluster}, {replicated}, {replica_args}.
CREATE TABLE IF NOT EXISTS {database}.eval_runs{on_cluster}
(
    RunId String,
    Suite LowCardinality(String),
    Target LowCardinality(String),
    Mode LowCardinality(String),
    StartedAt DateTime64(9),
    DurationMs Float64,
    Total UInt64,
    Passed UInt64,
    Errored UInt64,
    PassRate Float64,
    GatePassed Bool
)
ENGINE = {replicated}ReplacingMergeTree({replica_args})
ORDER BY (Suite, StartedAt, RunId);

CREATE TABLE IF NOT EXISTS {database}.eval_results{on_cluster}
(
    RunId String,
    CaseId String,
    Scorer LowCardinality(String),
    Score Nullable(Float64),
    Passed Bool,
    Reason String CODEC(ZSTD(1)),
    Error String CODEC(ZSTD(1)),
    LatencyMs Float64
)
ENGINE = {replicated}ReplacingMergeTree({replica_args})
ORDER BY (RunId, CaseId, Scorer);

CREATE TABLE IF NOT EXISTS {database}.eval_scores{on_cluster}
(
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String,
    SpanId String,
    Agent LowCardinality(String),
    Scorer LowCardinality(String),
    Score Nullable(Float64),
    Passed Bool,
    Reason String CODEC(ZSTD(1)),
    Error String CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = {replicated}ReplacingMergeTree({replica_args})
PARTITION BY toDate(Timestamp)
ORDER BY (Agent, Scorer, TraceId, SpanId);
