-- One row per trace, so the traces page finds and filters traces without scanning spans.
-- Maintained by the span insert, in the same transaction, from the spans that insert
-- actually added (a duplicate span ignored by the primary key is not counted again).
-- Rules shared with the ClickHouse backend:
--   StartNs = min(Timestamp); EndNs = max(Timestamp + Duration);
--   RootSpanName = SpanName of the earliest span (ties: smallest SpanId);
--   Agent / Tenant = the non-empty `gen_ai.agent.name` / `glassbox.tenant` of the earliest
--   span carrying one (ties: smallest SpanId), '' when no span does;
--   HasError = any StatusCode 'Error'; SpanCount = distinct spans;
--   InputTokens / OutputTokens = sums of `gen_ai.usage.input_tokens` / `.output_tokens` over
--   spans whose `gen_ai.operation.name` is 'chat' (unparsable values count 0);
--   CostNanoUsd = sum of `glassbox.cost_usd` (a decimal string) over all spans, in nano-USD.
-- The *Timestamp / *SpanId columns remember which span won each "earliest" rule, so a
-- later batch can be merged in without reading the spans again.
CREATE TABLE trace_index (
    TraceId TEXT NOT NULL PRIMARY KEY,
    StartNs INTEGER NOT NULL,
    EndNs INTEGER NOT NULL,
    RootSpanName TEXT NOT NULL,
    RootSpanId TEXT NOT NULL,
    Agent TEXT NOT NULL,
    AgentTimestamp INTEGER NOT NULL,
    AgentSpanId TEXT NOT NULL,
    Tenant TEXT NOT NULL,
    TenantTimestamp INTEGER NOT NULL,
    TenantSpanId TEXT NOT NULL,
    HasError INTEGER NOT NULL,
    SpanCount INTEGER NOT NULL,
    InputTokens INTEGER NOT NULL,
    OutputTokens INTEGER NOT NULL,
    CostNanoUsd INTEGER NOT NULL
);

-- Newest-first listing and its cursor: (StartNs, TraceId) descending.
CREATE INDEX trace_index_start ON trace_index (StartNs, TraceId);

-- The set of `gen_ai.request.model` values of a trace's chat spans (the model filter).
CREATE TABLE trace_index_models (
    TraceId TEXT NOT NULL,
    Model TEXT NOT NULL,
    PRIMARY KEY (TraceId, Model)
) WITHOUT ROWID;

CREATE INDEX trace_index_models_model ON trace_index_models (Model, TraceId);
