-- Glassbox ClickHouse migration 0003: the trace index, one row per trace (after merges), so the
-- traces list and a trace's time bounds are found without scanning `spans`.
--
-- `trace_index_mv` turns every block inserted into `spans` (by Glassbox or by a Collector) into
-- partial per-trace rows; the AggregatingMergeTree merges them in the background, and readers
-- always finish the aggregation with GROUP BY TraceId (never trust one row to be complete).
-- What each column means (the SQLite backend answers identically; see TraceSummary in query.rs):
--   Start         min(Timestamp)
--   End           max(Timestamp + Duration)
--   RootSpanName  SpanName of the earliest span (ties: smallest SpanId)
--   Agent         `gen_ai.agent.name` of the earliest span that has a non-empty one
--   Tenant        `glassbox.tenant` of the earliest span that has a non-empty one
--   HasError      1 when any span has StatusCode = 'Error'
--   SpanCount     number of spans
--   InputTokens / OutputTokens  sums of `gen_ai.usage.input_tokens` / `.output_tokens` over the
--                 spans whose `gen_ai.operation.name` is 'chat' (a value that is not an
--                 unsigned 64-bit integer counts 0)
--   CostNanoUsd   sum of `glassbox.cost_usd` (USD as `-?digits[.digits]`) over all spans, in
--                 billionths of a dollar (digits past the 9th decimal are dropped; anything else,
--                 and a value beyond Int64 nano-USD, counts 0)
--   Models        the distinct non-empty `gen_ai.request.model` of 'chat' spans
--
-- Layout: ORDER BY TraceId, so one trace's partial rows merge and a lookup by id reads a few
-- granules; PARTITION BY toDate(Start), so listing a time range prunes whole days (a reader
-- first picks the ids of partial rows whose Start is in the range, then aggregates every partial
-- row of those ids; see src/clickhouse/read.rs). The TTL matches `spans`.
--
-- Placeholders (see 0001_spans.sql): {database}, {on_cluster}, {replicated}, {replica_args},
-- {ttl_days}.
--
-- The view must never throw (ClickHouse would keep the `spans` block and lose its index rows,
-- and the retry of the batch is deduplicated): every attribute is parsed with *OrZero
-- functions, and the cost is range-checked before the one conversion that could overflow.
--
-- Every statement must be idempotent (IF NOT EXISTS): two servers may run a migration at once.
CREATE TABLE IF NOT EXISTS {database}.trace_index{on_cluster}
(
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime64(9)) CODEC(Delta, ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime64(9)) CODEC(Delta, ZSTD(1)),
    RootSpanName AggregateFunction(argMin, String, Tuple(DateTime64(9), String)),
    Agent AggregateFunction(argMin, String, Tuple(UInt8, DateTime64(9), String)),
    Tenant AggregateFunction(argMin, String, Tuple(UInt8, DateTime64(9), String)),
    HasError SimpleAggregateFunction(max, UInt8),
    SpanCount SimpleAggregateFunction(sum, UInt64),
    InputTokens SimpleAggregateFunction(sum, UInt64),
    OutputTokens SimpleAggregateFunction(sum, UInt64),
    CostNanoUsd SimpleAggregateFunction(sum, Int64),
    Models SimpleAggregateFunction(groupUniqArrayArray, Array(String)),
    INDEX idx_start Start TYPE minmax GRANULARITY 1
)
ENGINE = {replicated}AggregatingMergeTree({replica_args})
PARTITION BY toDate(Start)
ORDER BY TraceId
TTL toDateTime(Start) + toIntervalDay({ttl_days})
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.trace_index_mv{on_cluster}
TO {database}.trace_index
AS SELECT
    TraceId,
    min(Timestamp) AS Start,
    max(fromUnixTimestamp64Nano(toUnixTimestamp64Nano(Timestamp) + toInt64(Duration))) AS End,
    argMinState(CAST(SpanName, 'String'), (Timestamp, SpanId)) AS RootSpanName,
    argMinState(SpanAttributes['gen_ai.agent.name'], (SpanAttributes['gen_ai.agent.name'] = '', Timestamp, SpanId)) AS Agent,
    argMinState(SpanAttributes['glassbox.tenant'], (SpanAttributes['glassbox.tenant'] = '', Timestamp, SpanId)) AS Tenant,
    max(StatusCode = 'Error') AS HasError,
    count() AS SpanCount,
    sumIf(toUInt64OrZero(SpanAttributes['gen_ai.usage.input_tokens']), SpanAttributes['gen_ai.operation.name'] = 'chat') AS InputTokens,
    sumIf(toUInt64OrZero(SpanAttributes['gen_ai.usage.output_tokens']), SpanAttributes['gen_ai.operation.name'] = 'chat') AS OutputTokens,
    sum(toInt64(1000000000 * if(
        match(SpanAttributes['glassbox.cost_usd'], '^-?[0-9]+(\\.[0-9]*)?$')
            AND abs(toDecimal128OrZero(SpanAttributes['glassbox.cost_usd'], 9)) <= toDecimal128('9223372036.854775807', 9),
        toDecimal128OrZero(SpanAttributes['glassbox.cost_usd'], 9),
        toDecimal128(0, 9)))) AS CostNanoUsd,
    groupUniqArrayIf(SpanAttributes['gen_ai.request.model'], SpanAttributes['gen_ai.operation.name'] = 'chat' AND SpanAttributes['gen_ai.request.model'] != '') AS Models
FROM {database}.spans
WHERE TraceId != ''
GROUP BY TraceId;
